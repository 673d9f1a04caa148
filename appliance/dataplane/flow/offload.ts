// The seam between the engine and the kernel fast path (port/fast-path.ts): the engine says which
// flow directions it has decided for good and hands them over; the fast path forwards their next
// frames in the kernel and reports what it forwarded back into the flow's counters. Engine tests
// give a fake. An interface only: must hold no logic.

import type { Side } from '../verdict';
import type { Flow } from './flow';

export interface FlowOffload {
  /**
   * Forward the further frames of the direction `frame` travels (it arrived on `side`, the engine
   * just forwarded it) in the kernel. The flow's `offloadedDirs` says which directions were taken.
   */
  offload(flow: Flow, frame: Uint8Array, length: number, side: Side, fromInitiator: boolean): void;
  /** Add what the kernel forwarded for `flow` since the last call to its counters; true when that was anything. */
  sync(flow: Flow): boolean;
  /** `flow` goes back to the engine (it ends, or closes): counted up to now, the kernel forwards none of it from now on. */
  withdraw(flow: Flow): void;
  /** A new policy: every offloaded flow comes back to the engine at its next frame, to be decided again. */
  policyChanged(): void;
}
