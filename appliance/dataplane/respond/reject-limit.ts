// How many rejects are answered: at most REJECT_RATE per second of the engine's `now` (the rest are
// dropped silently and counted), so a flood of refused packets is never amplified. Must not read a
// clock of its own: replay runs it on capture time.

/** Rejects answered per second at most. */
const REJECT_RATE = 100;
const WINDOW_MS = 1000;

export class RejectLimit {
  private tokens = REJECT_RATE;
  private refilledAt = 0;

  /** May one more reject be answered at `now`? Takes a token when so. */
  take(now: number): boolean {
    if (now - this.refilledAt >= WINDOW_MS) {
      this.tokens = REJECT_RATE;
      this.refilledAt = now;
    }
    if (this.tokens === 0) return false;
    this.tokens--;
    return true;
  }
}
