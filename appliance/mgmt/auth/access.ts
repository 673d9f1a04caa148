// Who may call what. Every route under /api/v1 and /metrics passes requireRole (the server adds it
// to each route as it is registered), except the routes in PUBLIC_ROUTES: the one list of what an
// anonymous client may call. Routes declare the least role they need in config.role; a route
// that declares nothing needs admin, so a forgotten declaration fails closed. Must not import
// routes/ or services/: it reads only the users and sessions it is handed.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { StateStore } from '../state/store';
import { hasRole, type Role } from './roles';
import { csrfTokenMatches, SESSION_COOKIE, type Session, type SessionStore } from './sessions';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by requireRole on every route that needs a login (null on public routes). */
    session: Session | null;
  }
  interface FastifyContextConfig {
    /** Least role the route needs (default admin). */
    role?: Role;
    /** The route also accepts `Authorization: Bearer <metrics token>` (GET /metrics). */
    metricsToken?: boolean;
  }
}

/** "METHOD url" of the API routes an anonymous client may call. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  'POST /api/v1/auth/login',
  'GET /api/v1/auth/setup',
  'HEAD /api/v1/auth/setup',
  'POST /api/v1/auth/setup',
  'GET /api/v1/meta',
  'HEAD /api/v1/meta',
]);

/** Everything outside the API and /metrics is the web UI's static files, which are public. */
export function isProtectedUrl(url: string): boolean {
  return url.startsWith('/api/') || url === '/metrics';
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** What the access check reads: the users (and metrics token) and the live sessions. */
export interface AccessState {
  store: StateStore;
  sessions: SessionStore;
}

/** The metrics token is a random secret of at least 16 characters; a plain SHA-256 is enough for it. */
export function hashMetricsToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function metricsTokenMatches(state: AccessState, header: string | undefined): boolean {
  const stored = state.store.settings().metricsTokenHash;
  const match = /^Bearer (\S+)$/.exec(header ?? '');
  if (!stored || !match) return false;
  const given = Buffer.from(hashMetricsToken(match[1]));
  const expected = Buffer.from(stored);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The access check, run before the body is parsed or validated: 401 without a live session of a
 * user whose role and password are still those it logged in with, 403 for a role below `role`,
 * 403 for a state-changing request without the session's CSRF token.
 */
export function requireRole(role: Role, state: AccessState) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.routeOptions.config.metricsToken && metricsTokenMatches(state, req.headers.authorization)) return;
    const session = state.sessions.get(req.cookies[SESSION_COOKIE]);
    // `gatekeeper user remove|passwd` change users.json from outside this process, so the session is
    // checked against the current user on every request.
    const user = session && state.store.user(session.user);
    if (!session || !user || user.role !== session.role || user.passwordHash !== session.passwordHash) {
      if (session) state.sessions.destroy(session.id);
      await reply.code(401).send({ error: 'not logged in' });
      return;
    }
    if (!hasRole(session.role, role)) {
      await reply.code(403).send({ error: `this needs the ${role} role; you are ${session.role}` });
      return;
    }
    if (STATE_CHANGING.has(req.method) && !csrfTokenMatches(session, req.headers['x-csrf-token'])) {
      await reply.code(403).send({ error: 'missing or wrong x-csrf-token header' });
      return;
    }
    req.session = session;
  };
}

/** Gives every route under /api/v1 and /metrics the access check, unless it is in PUBLIC_ROUTES. */
export function guardRoutes(app: FastifyInstance, state: AccessState): void {
  app.decorateRequest('session', null);
  app.addHook('onRoute', (route) => {
    const methods = ([] as string[]).concat(route.method);
    if (!isProtectedUrl(route.url) || methods.every((m) => PUBLIC_ROUTES.has(`${m} ${route.url}`))) return;
    const guard = requireRole(route.config?.role ?? 'admin', state);
    route.onRequest = [...([] as unknown[]).concat(route.onRequest ?? []), guard] as typeof route.onRequest;
  });
}

/** The logged-in user of a request that passed requireRole. */
export function sessionOf(req: FastifyRequest): Session {
  if (!req.session) throw new Error(`route ${req.method} ${req.url} used a session without requireRole`);
  return req.session;
}
