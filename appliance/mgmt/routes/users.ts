// User administration (admin only). The last admin can be neither removed nor demoted, and nobody
// removes themselves, so the appliance always keeps someone who can manage it.
// Passwords are hashed (an await) before the checks: checks and save then run with no await in
// between, so concurrent requests cannot both pass them.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hashSecret } from '../auth/passwords';
import * as s from '../schemas';
import type { Role } from '../auth/roles';
import type { UserRecord } from '../state/store';
import { HttpError, sessionOf, type MgmtContext } from './context';

const publicUser = (u: UserRecord) => ({ name: u.name, role: u.role, createdAt: u.createdAt, lastLoginAt: u.lastLoginAt });

export function userRoutes(app: FastifyInstance, ctx: MgmtContext): void {
  const admin = { role: 'admin' as const };
  const mustExist = (name: string): UserRecord => {
    const user = ctx.store.user(name);
    if (!user) throw new HttpError(404, `no user '${name}'`);
    return user;
  };
  const admins = () => ctx.store.users().filter((u) => u.role === 'admin').length;

  app.get('/api/v1/users', {
    schema: { summary: 'Users', response: s.responses({ 200: s.usersResponse }) },
    config: admin,
  }, async () => ({ users: ctx.store.users().map(publicUser) }));

  app.post('/api/v1/users', {
    schema: { summary: 'Add a user', body: s.userBody, response: s.responses({ 201: s.userResponse }) },
    config: admin,
  }, async (req: FastifyRequest<{ Body: { name: string; role: Role; password: string } }>, reply) => {
    const { name, role, password } = req.body;
    const passwordHash = await hashSecret(password);
    if (ctx.store.user(name)) throw new HttpError(409, `name: user '${name}' already exists`);
    const user: UserRecord = { name, role, passwordHash, createdAt: new Date().toISOString(), lastLoginAt: null };
    ctx.store.saveUsers([...ctx.store.users(), user]);
    ctx.audit({ type: 'admin.change', severity: 'notice', user: sessionOf(req).user, from: req.ip, action: 'user.add',
      detail: `${name} (${role})` });
    return reply.code(201).send({ user: publicUser(user) });
  });

  app.patch('/api/v1/users/:name', {
    schema: { summary: "Change a user's role or password", params: s.userNameParams, body: s.userPatchBody,
      response: s.responses({ 200: s.userResponse }) },
    config: admin,
  }, async (req: FastifyRequest<{ Params: { name: string }; Body: { role?: Role; password?: string } }>) => {
    const { role, password } = req.body;
    const newHash = password ? await hashSecret(password) : undefined;
    const user = mustExist(req.params.name);
    if (role && role !== 'admin' && user.role === 'admin' && admins() === 1) {
      throw new HttpError(409, `role: '${user.name}' is the last admin and cannot be demoted`);
    }
    const updated: UserRecord = { ...user, role: role ?? user.role, passwordHash: newHash ?? user.passwordHash };
    ctx.store.saveUsers(ctx.store.users().map((u) => (u.name === user.name ? updated : u)));
    // A changed role or password takes effect at once: the user's sessions end.
    ctx.sessions.destroyUser(user.name);
    const changes = [role && `role ${user.role} → ${role}`, password && 'password'].filter(Boolean).join(', ');
    ctx.audit({ type: 'admin.change', severity: 'notice', user: sessionOf(req).user, from: req.ip, action: 'user.change',
      detail: `${user.name}: ${changes}` });
    return { user: publicUser(updated) };
  });

  app.delete('/api/v1/users/:name', {
    schema: { summary: 'Remove a user', params: s.userNameParams, response: s.responses({ 204: s.noContent }) },
    config: admin,
  }, async (req: FastifyRequest<{ Params: { name: string } }>, reply) => {
    const me = sessionOf(req).user;
    const user = mustExist(req.params.name);
    if (user.name === me) throw new HttpError(409, 'you cannot remove yourself');
    if (user.role === 'admin' && admins() === 1) throw new HttpError(409, `'${user.name}' is the last admin`);
    ctx.store.saveUsers(ctx.store.users().filter((u) => u.name !== user.name));
    ctx.sessions.destroyUser(user.name);
    ctx.audit({ type: 'admin.change', severity: 'notice', user: me, from: req.ip, action: 'user.remove', detail: user.name });
    return reply.code(204).send();
  });
}
