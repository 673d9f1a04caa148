// Login sessions, in memory only: a management restart logs everyone out (sessions are cheap to
// recreate, and no secret session material is ever written to disk).
// Each session has an idle timeout (settings.sessionTimeoutMin) and an absolute lifetime of 12 h,
// and its own CSRF token. Memory is bounded: at most MAX_SESSIONS_PER_USER per user and
// MAX_SESSIONS in all. A new login never fails for want of room: it ends the least recently used
// session of the same user (user cap) or of anyone (total cap), reported through onEvicted. Ending
// an idle session is safer than refusing an administrator who needs to get in.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { UserRecord } from '../state/store';
import type { Role } from './roles';

export const SESSION_COOKIE = 'gk_session';
export const SESSION_MAX_AGE_MS = 12 * 3600_000;
/** Far more browsers and scripts than one person uses; a login loop ends its own old sessions. */
export const MAX_SESSIONS_PER_USER = 16;
/** 1000 sessions held 0.3–1.2 MiB of heap in test/mgmt-abuse.test.ts. */
export const MAX_SESSIONS = 1000;

export type EvictionReason = 'user_cap' | 'total_cap';

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
  /** Least recently used first; the cache itself enforces MAX_SESSIONS. */
  private readonly sessions: LRUCache<string, Session>;

  constructor(
    private readonly idleTimeoutMs: () => number,
    private readonly onEvicted: (session: Session, reason: EvictionReason) => void = () => undefined,
  ) {
    this.sessions = new LRUCache<string, Session>({
      max: MAX_SESSIONS,
      dispose: (session, _id, reason) => {
        if (reason === 'evict') this.onEvicted(session, 'total_cap');
      },
    });
  }

  create(user: Pick<UserRecord, 'name' | 'role' | 'passwordHash'>, now = Date.now()): Session {
    const own: Session[] = [];
    for (const s of this.sessions.rvalues()) if (s?.user === user.name) own.push(s);
    // rvalues() runs from the least recently used, so own[0] is the one to end.
    if (own.length >= MAX_SESSIONS_PER_USER) {
      this.sessions.delete(own[0].id);
      this.onEvicted(own[0], 'user_cap');
    }
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
    for (const [id, s] of [...this.sessions.entries()]) if (s.user === user && id !== keep) this.sessions.delete(id);
  }

  /** Live sessions (expired ones are dropped on the way), without touching their recency. */
  count(now = Date.now()): number {
    const idle = this.idleTimeoutMs();
    for (const [id, s] of [...this.sessions.entries()]) {
      if (now - s.lastUsed > idle || now - s.createdAt > SESSION_MAX_AGE_MS) this.sessions.delete(id);
    }
    return this.sessions.size;
  }

  /** Sessions held for one user (for the abuse test). */
  countOf(user: string): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.user === user) n++;
    return n;
  }
}

export function csrfTokenMatches(session: Session, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string') return false;
  const given = Buffer.from(header);
  const expected = Buffer.from(session.csrfToken);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
