// Login, logout, session, first-admin setup and own password change.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hashSecret, unknownUserHash, verifySecret } from '../auth/passwords';
import { SESSION_COOKIE, SESSION_MAX_AGE_MS, type Session } from '../auth/sessions';
import * as s from '../schemas';
import type { UserRecord } from '../state/store';
import { HttpError, sessionOf, type MgmtContext } from './context';

/** Login and setup attempts per client address per minute (on top of the per-user lockout). */
export const LOGIN_RATE_PER_MINUTE = 30;

export const SETUP_TOKEN_FILE = 'setup-token';

export function authRoutes(app: FastifyInstance, ctx: MgmtContext): void {
  const rateLimit = { max: LOGIN_RATE_PER_MINUTE, timeWindow: 60_000 };

  const startSession = (reply: FastifyReply, session: Session) =>
    reply.setCookie(SESSION_COOKIE, session.id, {
      httpOnly: true,
      secure: ctx.secureCookies,
      sameSite: 'strict',
      path: '/',
      maxAge: SESSION_MAX_AGE_MS / 1000,
    });
  const sessionBody = (session: Session) => ({ user: { name: session.user, role: session.role }, csrfToken: session.csrfToken });

  app.post('/api/v1/auth/login', {
    schema: { summary: 'Log in', body: s.loginBody, response: s.responses({ 200: s.sessionResponse }) },
    config: { rateLimit },
  }, async (req: FastifyRequest<{ Body: { username: string; password: string } }>, reply) => {
    const { username, password } = req.body;
    const from = req.ip;
    // A reserved attempt (released in finally) counts against the limit while scrypt runs, so
    // concurrent guesses cannot all get past the check.
    const waitS = ctx.throttle.begin(username);
    if (waitS > 0) {
      ctx.metrics.logins.inc({ result: 'locked' });
      throw new HttpError(429, `too many failed logins for '${username}'; try again in ${waitS} s`, undefined, waitS);
    }
    const user = ctx.store.user(username);
    try {
      const ok = await verifySecret(password, user?.passwordHash ?? (await unknownUserHash()));
      if (!user || !ok) {
        ctx.metrics.logins.inc({ result: 'failed' });
        const locked = ctx.throttle.fail(username);
        ctx.audit({ type: 'auth.login_failed', severity: 'warning', user: username, from, action: 'auth.login_failed',
          detail: user ? 'wrong password' : 'unknown user' });
        if (locked) {
          ctx.audit({ type: 'auth.lockout', severity: 'warning', user: username, from, action: 'auth.lockout',
            detail: 'too many failed logins' });
        }
        throw new HttpError(401, 'invalid username or password');
      }
      ctx.throttle.succeed(username);
    } finally {
      ctx.throttle.end(username);
    }
    ctx.metrics.logins.inc({ result: 'ok' });
    ctx.store.saveUsers(ctx.store.users().map((u) => (u.name === user.name ? { ...u, lastLoginAt: new Date().toISOString() } : u)));
    ctx.audit({ type: 'auth.login', severity: 'info', user: user.name, from, action: 'auth.login', detail: '' });
    const session = ctx.sessions.create(user);
    startSession(reply, session);
    return sessionBody(session);
  });

  app.post('/api/v1/auth/logout', {
    schema: { summary: 'Log out', response: s.responses({ 204: s.noContent }) },
    config: { role: 'viewer' },
  }, async (req, reply) => {
    const session = sessionOf(req);
    ctx.sessions.destroy(session.id);
    ctx.audit({ type: 'auth.logout', severity: 'info', user: session.user, from: req.ip, action: 'auth.logout', detail: '' });
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.code(204).send();
  });

  app.get('/api/v1/auth/session', {
    schema: { summary: 'The current session and its CSRF token', response: s.responses({ 200: s.sessionResponse }) },
    config: { role: 'viewer' },
  }, async (req) => sessionBody(sessionOf(req)));

  app.get('/api/v1/auth/setup', {
    schema: { summary: 'Whether the first admin still has to be created', response: s.responses({ 200: s.setupNeededResponse }) },
  }, async () => ({ needed: ctx.setupToken !== null && ctx.store.users().length === 0 }));

  app.post('/api/v1/auth/setup', {
    schema: { summary: 'Create the first admin with the one-time token from the service log', body: s.setupBody,
      response: s.responses({ 201: s.sessionResponse }) },
    config: { rateLimit },
  }, async (req: FastifyRequest<{ Body: { token: string; username: string; password: string } }>, reply) => {
    const { token, username, password } = req.body;
    if (ctx.setupToken === null || ctx.store.users().length > 0) throw new HttpError(409, 'setup is already done');
    const given = Buffer.from(token);
    const expected = Buffer.from(ctx.setupToken);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      ctx.audit({ type: 'auth.login_failed', severity: 'warning', user: username, from: req.ip, action: 'auth.setup_failed',
        detail: 'wrong setup token' });
      throw new HttpError(401, 'wrong setup token');
    }
    // Consumed before the await, so a concurrent request with the same token finds none; given back
    // if this one fails.
    const setupToken = ctx.setupToken;
    ctx.setupToken = null;
    let first: UserRecord;
    try {
      const now = new Date().toISOString();
      first = { name: username, role: 'admin', passwordHash: await hashSecret(password), createdAt: now, lastLoginAt: now };
      // `gatekeeper user add` may have created a user meanwhile.
      if (ctx.store.users().length > 0) throw new HttpError(409, 'setup is already done');
      ctx.store.saveUsers([first]);
    } catch (err) {
      ctx.setupToken = setupToken;
      throw err;
    }
    rmSync(join(ctx.store.dir, SETUP_TOKEN_FILE), { force: true });
    ctx.audit({ type: 'admin.change', severity: 'notice', user: username, from: req.ip, action: 'user.add',
      detail: `${username} (admin, first user, by setup token)` });
    const session = ctx.sessions.create(first);
    startSession(reply, session);
    return reply.code(201).send(sessionBody(session));
  });

  app.post('/api/v1/auth/password', {
    schema: { summary: 'Change your own password', body: s.passwordBody, response: s.responses({ 204: s.noContent }) },
    config: { role: 'viewer' },
  }, async (req: FastifyRequest<{ Body: { current: string; password: string } }>, reply) => {
    const session = sessionOf(req);
    const user = ctx.store.user(session.user);
    if (!user) throw new HttpError(401, 'your user no longer exists');
    if (!(await verifySecret(req.body.current, user.passwordHash))) throw new HttpError(400, 'current: the current password is wrong');
    const passwordHash = await hashSecret(req.body.password);
    ctx.store.saveUsers(ctx.store.users().map((u) => (u.name === user.name ? { ...u, passwordHash } : u)));
    ctx.sessions.destroyUser(user.name, session.id);
    session.passwordHash = passwordHash;
    ctx.audit({ type: 'admin.change', severity: 'notice', user: user.name, from: req.ip, action: 'user.passwd', detail: user.name });
    return reply.code(204).send();
  });
}
