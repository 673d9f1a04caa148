// Per-user brute-force protection: after MAX_FAILURES failed logins within WINDOW_MS the name is
// locked for LOCK_MS, whether or not the user exists (so locking does not reveal user names).
// The per-address limit is @fastify/rate-limit on the login route.

export const MAX_FAILURES = 5;
export const WINDOW_MS = 15 * 60_000;
export const LOCK_MS = 5 * 60_000;
/** Names tracked at most; the oldest are forgotten first, so a flood of names cannot exhaust memory. */
const MAX_TRACKED = 10_000;

interface Failures {
  times: number[];
  lockedUntil: number;
}

export class LoginThrottle {
  private readonly byUser = new Map<string, Failures>();

  /** Seconds until the name is unlocked, 0 when it is not locked. */
  retryAfterS(user: string, now = Date.now()): number {
    const f = this.byUser.get(user);
    if (!f || f.lockedUntil <= now) return 0;
    return Math.ceil((f.lockedUntil - now) / 1000);
  }

  /** Records a failure; true when this failure locks the name. */
  fail(user: string, now = Date.now()): boolean {
    let f = this.byUser.get(user);
    if (!f) {
      if (this.byUser.size >= MAX_TRACKED) this.byUser.delete(this.byUser.keys().next().value as string);
      f = { times: [], lockedUntil: 0 };
      this.byUser.set(user, f);
    }
    f.times = f.times.filter((t) => now - t < WINDOW_MS);
    f.times.push(now);
    if (f.times.length >= MAX_FAILURES) {
      f.lockedUntil = now + LOCK_MS;
      f.times = [];
      return true;
    }
    return false;
  }

  succeed(user: string): void {
    this.byUser.delete(user);
  }
}
