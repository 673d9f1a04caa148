// Per-user brute-force protection: after MAX_FAILURES failed logins within WINDOW_MS the name is
// locked for LOCK_MS, whether or not the user exists (so locking does not reveal user names).
// Attempts still being verified count against the limit too (begin/end), so concurrent guesses
// cannot all pass the check before the first failure is recorded.
// The per-address limit is @fastify/rate-limit on the login route.

export const MAX_FAILURES = 5;
export const WINDOW_MS = 15 * 60_000;
export const LOCK_MS = 5 * 60_000;
/**
 * Names tracked at most, so a flood of names cannot exhaust memory. To make room, names with
 * nothing to remember go first, then the oldest unlocked ones; a flood can never unlock a locked
 * name. Only when every tracked name is locked or in progress are new names refused.
 */
export const MAX_TRACKED = 10_000;
/** Retry hint when the name's attempts are all in progress or no name can be tracked. */
const BUSY_RETRY_S = 1;

interface Attempts {
  failures: number[];
  lockedUntil: number;
  pending: number;
}

export class LoginThrottle {
  private readonly byUser = new Map<string, Attempts>();

  /** Seconds until the name is unlocked, 0 when it is not locked. */
  retryAfterS(user: string, now = Date.now()): number {
    const a = this.byUser.get(user);
    if (!a || a.lockedUntil <= now) return 0;
    return Math.ceil((a.lockedUntil - now) / 1000);
  }

  /**
   * Reserves a login attempt for the name: 0 when reserved (verify, then fail() or succeed(), then
   * end() in any case), otherwise the seconds to wait.
   */
  begin(user: string, now = Date.now()): number {
    const locked = this.retryAfterS(user, now);
    if (locked > 0) return locked;
    const a = this.track(user, now);
    if (!a) return BUSY_RETRY_S;
    a.failures = a.failures.filter((t) => now - t < WINDOW_MS);
    if (a.pending + a.failures.length >= MAX_FAILURES) return BUSY_RETRY_S;
    a.pending++;
    return 0;
  }

  /** Records a failure of a reserved attempt; true when this failure locks the name. */
  fail(user: string, now = Date.now()): boolean {
    const a = this.byUser.get(user);
    if (!a) return false;
    a.failures.push(now);
    if (a.failures.length >= MAX_FAILURES) {
      a.lockedUntil = now + LOCK_MS;
      a.failures = [];
      return true;
    }
    return false;
  }

  succeed(user: string): void {
    const a = this.byUser.get(user);
    if (a) a.failures = [];
  }

  /** Releases a reservation from begin(). */
  end(user: string, now = Date.now()): void {
    const a = this.byUser.get(user);
    if (!a) return;
    a.pending--;
    if (isIdle(a, now)) this.byUser.delete(user);
  }

  /** The name's entry, created if there is room; undefined when the table is full of entries to keep. */
  private track(user: string, now: number): Attempts | undefined {
    let a = this.byUser.get(user);
    if (a) return a;
    if (this.byUser.size >= MAX_TRACKED) {
      for (const [name, other] of this.byUser) if (isIdle(other, now)) this.byUser.delete(name);
      // Still full: forget the oldest name that is neither locked nor being verified. That only
      // forgives a few recent failures of that name, where refusing every new name would let a flood
      // of made-up names lock real users out.
      if (this.byUser.size >= MAX_TRACKED) {
        for (const [name, other] of this.byUser) {
          if (other.pending === 0 && other.lockedUntil <= now) {
            this.byUser.delete(name);
            break;
          }
        }
      }
      if (this.byUser.size >= MAX_TRACKED) return undefined;
    }
    a = { failures: [], lockedUntil: 0, pending: 0 };
    this.byUser.set(user, a);
    return a;
  }
}

/** Nothing to remember: no attempt in progress, not locked, no failure within the window. */
function isIdle(a: Attempts, now: number): boolean {
  return a.pending === 0 && a.lockedUntil <= now && a.failures.every((t) => now - t >= WINDOW_MS);
}
