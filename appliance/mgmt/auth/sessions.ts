// Login sessions, in memory only: a management restart logs everyone out (sessions are cheap to
// recreate, and no secret session material is ever written to disk).
// Each session has an idle timeout (settings.sessionTimeoutMin) and an absolute lifetime of 12 h,
// and its own CSRF token.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { UserRecord } from '../state/store';
import type { Role } from './roles';

export const SESSION_COOKIE = 'gk_session';
export const SESSION_MAX_AGE_MS = 12 * 3600_000;

export interface Session {
  id: string;
  user: string;
  role: Role;
  /** The user's password hash at login: a session ends when it no longer matches (auth/access.ts). */
  passwordHash: string;
  csrfToken: string;
  createdAt: number;
  lastUsed: number;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly idleTimeoutMs: () => number) {}

  create(user: Pick<UserRecord, 'name' | 'role' | 'passwordHash'>, now = Date.now()): Session {
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      user: user.name,
      role: user.role,
      passwordHash: user.passwordHash,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: now,
      lastUsed: now,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id (its idle timer restarted), or undefined. */
  get(id: string | undefined, now = Date.now()): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (now - session.lastUsed > this.idleTimeoutMs() || now - session.createdAt > SESSION_MAX_AGE_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    session.lastUsed = now;
    return session;
  }

  destroy(id: string): void {
    this.sessions.delete(id);
  }

  /** Ends every session of a user (password or role changed, user removed), except `keep`. */
  destroyUser(user: string, keep?: string): void {
    for (const [id, s] of this.sessions) if (s.user === user && id !== keep) this.sessions.delete(id);
  }

  count(now = Date.now()): number {
    for (const id of [...this.sessions.keys()]) this.get(id, now);
    return this.sessions.size;
  }
}

export function csrfTokenMatches(session: Session, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string') return false;
  const given = Buffer.from(header);
  const expected = Buffer.from(session.csrfToken);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
