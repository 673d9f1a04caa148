// /api/v1/users (registered with that prefix; admin only): list, add, change role or password,
// remove. The rules (unique names, the last admin) are the user service's (services/users.ts),
// shared with `gatekeeper user ...`; here: hashing before the service call, ending sessions, the
// audit trail.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sessionOf } from '../auth/access';
import { hashSecret } from '../auth/passwords';
import * as s from '../schemas';
import type { UserRecord } from '../state/store';

const publicUser = (u: UserRecord) => ({ name: u.name, role: u.role, createdAt: u.createdAt, lastLoginAt: u.lastLoginAt });

export async function userRoutes(app: FastifyInstance): Promise<void> {
  const admin = { role: 'admin' as const };
  const audit = (req: FastifyRequest, action: string, detail: string) =>
    app.recorder.audit({ type: 'admin.change', severity: 'notice', user: sessionOf(req).user, from: req.ip, action, detail });

  app.get('', {
    schema: { summary: 'Users', response: s.responses({ 200: s.usersResponse }) },
    config: admin,
  }, async () => ({ users: app.users.list().map(publicUser) }));

  app.post('', {
    schema: { summary: 'Add a user', body: s.userBody, response: s.responses({ 201: s.userResponse }) },
    config: admin,
  }, async (req: FastifyRequest<{ Body: s.UserBody }>, reply) => {
    const { name, role, password } = req.body;
    const user: UserRecord = { name, role, passwordHash: await hashSecret(password), createdAt: new Date().toISOString(), lastLoginAt: null };
    app.users.add(user);
    audit(req, 'user.add', `${name} (${role})`);
    return reply.code(201).send({ user: publicUser(user) });
  });

  app.patch('/:name', {
    schema: { summary: "Change a user's role or password", params: s.userNameParams, body: s.userPatchBody,
      response: s.responses({ 200: s.userResponse }) },
    config: admin,
  }, async (req: FastifyRequest<{ Params: s.UserNameParams; Body: s.UserPatchBody }>) => {
    const { role, password } = req.body;
    const passwordHash = password ? await hashSecret(password) : undefined;
    const { before, after } = app.users.change(req.params.name, { role, passwordHash });
    // A changed role or password takes effect at once: the user's sessions end.
    app.sessions.destroyUser(before.name);
    const changes = [role && `role ${before.role} → ${role}`, password && 'password'].filter(Boolean).join(', ');
    audit(req, 'user.change', `${before.name}: ${changes}`);
    return { user: publicUser(after) };
  });

  app.delete('/:name', {
    schema: { summary: 'Remove a user', params: s.userNameParams, response: s.responses({ 204: s.noContent }) },
    config: admin,
  }, async (req: FastifyRequest<{ Params: s.UserNameParams }>, reply) => {
    const user = app.users.remove(req.params.name, sessionOf(req).user);
    app.sessions.destroyUser(user.name);
    audit(req, 'user.remove', user.name);
    return reply.code(204).send();
  });
}
