// /api/v1/auth (registered with that prefix): login, logout, session, first-admin setup and own
// password change. A plugin: sessions, throttle, setup token and user rules are decorators
// (auth/, services/users.ts); nothing here keeps state. Logins keep working on a full state disk
// (the last-login time and the audit line are then only logged), so an operator can get in to
// see why; bodies are small, so every route here takes at most AUTH_BODY_BYTES.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sessionOf } from '../auth/access';
import { HashBusy, hashSecret, unknownUserHash, verifySecret } from '../auth/passwords';
import { SESSION_COOKIE, SESSION_MAX_AGE_MS, type Session } from '../auth/sessions';
import { HttpError } from '../http-error';
import * as s from '../schemas';
import type { AuditRecord } from '../services/recorder';
import { isDiskFull } from '../state/atomic';
import type { UserRecord } from '../state/store';

/** Login and setup attempts per client address per minute (on top of the per-user lockout). */
export const LOGIN_RATE_PER_MINUTE = 30;
/** A name, a password of up to 1024 characters (4 bytes each at most) and a token, in JSON. */
export const AUTH_BODY_BYTES = 16 * 1024;

export async function authRoutes(app: FastifyInstance): Promise<void> {
  const rateLimit = { max: LOGIN_RATE_PER_MINUTE, timeWindow: 60_000 };
  const bodyLimit = AUTH_BODY_BYTES;
  /** A login's own records are not worth refusing the login for when the state disk is full. */
  const unlessDiskFull = (what: string, write: () => void) => {
    try {
      write();
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      app.log.error({ err }, `${what} not written: the state disk is full`);
    }
  };
  const auditLogin = (record: AuditRecord) => unlessDiskFull(`audit line ${record.action}`, () => app.recorder.audit(record));

  const startSession = (reply: FastifyReply, session: Session) =>
    reply.setCookie(SESSION_COOKIE, session.id, {
      httpOnly: true,
      secure: app.runtime.secureCookies,
      sameSite: 'strict',
      path: '/',
      maxAge: SESSION_MAX_AGE_MS / 1000,
    });
  const sessionBody = (session: Session) => ({ user: { name: session.user, role: session.role }, csrfToken: session.csrfToken });

  app.post('/login', {
    schema: { summary: 'Log in', body: s.loginBody, response: s.responses({ 200: s.sessionResponse }) },
    config: { rateLimit },
    bodyLimit,
  }, async (req: FastifyRequest<{ Body: s.LoginBody }>, reply) => {
    const { username, password } = req.body;
    const from = req.ip;
    // A reserved attempt (released in finally) counts against the limit while scrypt runs, so
    // concurrent guesses cannot all get past the check.
    const waitS = app.throttle.begin(username);
    if (waitS > 0) {
      app.metrics.logins.inc({ result: 'locked' });
      throw new HttpError(429, `too many failed logins for '${username}'; try again in ${waitS} s`, undefined, waitS);
    }
    const user = app.users.get(username);
    try {
      let ok: boolean;
      try {
        ok = await verifySecret(password, user?.passwordHash ?? (await unknownUserHash()));
      } catch (err) {
        // Every hash slot is taken (a flood): 503 with Retry-After, not counted as a failure.
        if (err instanceof HashBusy) app.metrics.logins.inc({ result: 'busy' });
        throw err;
      }
      if (!user || !ok) {
        app.metrics.logins.inc({ result: 'failed' });
        const locked = app.throttle.fail(username);
        auditLogin({ type: 'auth.login_failed', severity: 'warning', user: username, from, action: 'auth.login_failed',
          detail: user ? 'wrong password' : 'unknown user' });
        if (locked) {
          auditLogin({ type: 'auth.lockout', severity: 'warning', user: username, from, action: 'auth.lockout',
            detail: 'too many failed logins' });
        }
        throw new HttpError(401, 'invalid username or password');
      }
      app.throttle.succeed(username);
    } finally {
      app.throttle.end(username);
    }
    app.metrics.logins.inc({ result: 'ok' });
    unlessDiskFull(`last login time of ${user.name}`, () => app.users.change(user.name, { lastLoginAt: new Date().toISOString() }));
    auditLogin({ type: 'auth.login', severity: 'info', user: user.name, from, action: 'auth.login', detail: '' });
    const session = app.sessions.create(user);
    startSession(reply, session);
    return sessionBody(session);
  });

  app.post('/logout', {
    schema: { summary: 'Log out', response: s.responses({ 204: s.noContent }) },
    config: { role: 'viewer' },
    bodyLimit,
  }, async (req, reply) => {
    const session = sessionOf(req);
    app.sessions.destroy(session.id);
    auditLogin({ type: 'auth.logout', severity: 'info', user: session.user, from: req.ip, action: 'auth.logout', detail: '' });
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.code(204).send();
  });

  app.get('/session', {
    schema: { summary: 'The current session and its CSRF token', response: s.responses({ 200: s.sessionResponse }) },
    config: { role: 'viewer' },
  }, async (req) => sessionBody(sessionOf(req)));

  app.get('/setup', {
    schema: { summary: 'Whether the first admin still has to be created', response: s.responses({ 200: s.setupNeededResponse }) },
  }, async () => ({ needed: app.setup.pending && app.users.list().length === 0 }));

  app.post('/setup', {
    schema: { summary: 'Create the first admin with the one-time token from the service log', body: s.setupBody,
      response: s.responses({ 201: s.sessionResponse }) },
    config: { rateLimit },
    bodyLimit,
  }, async (req: FastifyRequest<{ Body: s.SetupBody }>, reply) => {
    const { token, username, password } = req.body;
    if (!app.setup.pending || app.users.list().length > 0) throw new HttpError(409, 'setup is already done');
    if (!app.setup.matches(token)) {
      app.recorder.audit({ type: 'auth.login_failed', severity: 'warning', user: username, from: req.ip, action: 'auth.setup_failed',
        detail: 'wrong setup token' });
      throw new HttpError(401, 'wrong setup token');
    }
    const held = app.setup.take()!;
    let first: UserRecord;
    try {
      const now = new Date().toISOString();
      first = { name: username, role: 'admin', passwordHash: await hashSecret(password), createdAt: now, lastLoginAt: now };
      app.users.addFirst(first);
    } catch (err) {
      app.setup.giveBack(held);
      throw err;
    }
    app.setup.used();
    app.recorder.audit({ type: 'admin.change', severity: 'notice', user: username, from: req.ip, action: 'user.add',
      detail: `${username} (admin, first user, by setup token)` });
    const session = app.sessions.create(first);
    startSession(reply, session);
    return reply.code(201).send(sessionBody(session));
  });

  app.post('/password', {
    schema: { summary: 'Change your own password', body: s.passwordBody, response: s.responses({ 204: s.noContent }) },
    config: { role: 'viewer' },
    bodyLimit,
  }, async (req: FastifyRequest<{ Body: s.PasswordBody }>, reply) => {
    const session = sessionOf(req);
    const user = app.users.get(session.user);
    if (!user) throw new HttpError(401, 'your user no longer exists');
    if (!(await verifySecret(req.body.current, user.passwordHash))) throw new HttpError(400, 'current: the current password is wrong');
    const passwordHash = await hashSecret(req.body.password);
    app.users.change(user.name, { passwordHash });
    app.sessions.destroyUser(user.name, session.id);
    session.passwordHash = passwordHash;
    app.recorder.audit({ type: 'admin.change', severity: 'notice', user: user.name, from: req.ip, action: 'user.passwd', detail: user.name });
    return reply.code(204).send();
  });
}
