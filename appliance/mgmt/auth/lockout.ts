// Per-user brute-force protection: after MAX_FAILURES failed logins within WINDOW_MS the name is
// locked for LOCK_MS, whether or not the user exists (so locking does not reveal user names).
// Attempts still being verified count against the limit too (begin/end), so concurrent guesses
// cannot all pass the check before the first failure is recorded.
// Memory is bounded whatever names a flood makes up: recent failures sit in an LRU of
// MAX_TRACKED names (a flood forgets the least recently failed name's few failures, never a
// lock), locks in their own table of MAX_LOCKED names, and attempts in progress are bounded by
// the requests in flight. The per-address limit is @fastify/rate-limit on the login route.

import { LRUCache } from 'lru-cache';

export const MAX_FAILURES = 5;
export const WINDOW_MS = 15 * 60_000;
export const LOCK_MS = 5 * 60_000;
/** Names whose recent failures are remembered: 10 000 names of 50 characters held 3.5–4.4 MiB in test/mgmt-abuse.test.ts. */
export const MAX_TRACKED = 10_000;
/**
 * Locked names kept at most. Filling it takes MAX_FAILURES × 10 000 failed logins within LOCK_MS,
 * far beyond what the hash slots (auth/passwords.ts) let through; should it fill anyway, names not
 * yet locked are refused rather than a lock dropped.
 */
export const MAX_LOCKED = 10_000;
/** Retry hint when the name's attempts are all in progress or no more names can be locked. */
const BUSY_RETRY_S = 1;

export class LoginThrottle {
  /** Failure times within the window, per name; least recently failed forgotten first. */
  private readonly failures = new LRUCache<string, number[]>({ max: MAX_TRACKED });
  /** lockedUntil per name, in the order locked (= the order they expire: every lock is LOCK_MS). */
  private readonly locks = new Map<string, number>();
  /** Attempts being verified per name. */
  private readonly pending = new Map<string, number>();

  /** Seconds until the name is unlocked, 0 when it is not locked. */
  retryAfterS(user: string, now = Date.now()): number {
    const until = this.locks.get(user);
    if (until === undefined || until <= now) return 0;
    return Math.ceil((until - now) / 1000);
  }

  /**
   * Reserves a login attempt for the name: 0 when reserved (verify, then fail() or succeed(), then
   * end() in any case), otherwise the seconds to wait.
   */
  begin(user: string, now = Date.now()): number {
    const locked = this.retryAfterS(user, now);
    if (locked > 0) return locked;
    this.expireLocks(now);
    if (this.locks.size >= MAX_LOCKED) return BUSY_RETRY_S;
    const pending = this.pending.get(user) ?? 0;
    if (pending + this.recentFailures(user, now).length >= MAX_FAILURES) return BUSY_RETRY_S;
    this.pending.set(user, pending + 1);
    return 0;
  }

  /** Records a failure of a reserved attempt; true when this failure locks the name. */
  fail(user: string, now = Date.now()): boolean {
    const failures = [...this.recentFailures(user, now), now];
    if (failures.length < MAX_FAILURES) {
      this.failures.set(user, failures);
      return false;
    }
    this.failures.delete(user);
    this.locks.delete(user); // re-inserted at the end: the map stays in expiry order
    this.locks.set(user, now + LOCK_MS);
    return true;
  }

  succeed(user: string): void {
    this.failures.delete(user);
  }

  /** Releases a reservation from begin(); a name with nothing left to remember is forgotten. */
  end(user: string, now = Date.now()): void {
    const pending = (this.pending.get(user) ?? 0) - 1;
    if (pending > 0) {
      this.pending.set(user, pending);
      return;
    }
    this.pending.delete(user);
    if (this.recentFailures(user, now).length === 0) this.failures.delete(user);
  }

  /** Names held in memory (for the abuse test and the metrics). */
  tracked(): { failing: number; locked: number; pending: number } {
    return { failing: this.failures.size, locked: this.locks.size, pending: this.pending.size };
  }

  private recentFailures(user: string, now: number): number[] {
    return (this.failures.peek(user) ?? []).filter((t) => now - t < WINDOW_MS);
  }

  /** Drops expired locks, oldest first, stopping at the first one still running. */
  private expireLocks(now: number): void {
    for (const [name, until] of this.locks) {
      if (until > now) return;
      this.locks.delete(name);
    }
  }
}
