// The clock the flow and fragment tables age their entries by. Live, a coarse monotonic clock;
// offline replay passes one that runs on the capture's record times, so idle timeouts fire there too.
// Must not allocate per read: lru-cache reads it on every lookup.

export interface Clock {
  /** Milliseconds; only differences matter. */
  now(): number;
}

/**
 * lru-cache reads the clock on every get; performance.now() returns a fresh heap number each call,
 * which would be an allocation per packet. This clock ticks every 10 ms (idle timeouts need no finer
 * resolution) and hands back the same value in between.
 */
const CLOCK_TICK_MS = 10;
let coarseNow = Math.floor(performance.now());
setInterval(() => {
  coarseNow = Math.floor(performance.now());
}, CLOCK_TICK_MS).unref();

export const coarseClock: Clock = { now: (): number => coarseNow };
