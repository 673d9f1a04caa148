// What a pair does while no dataplane runs it, set up when a dataplane starts: fail-open keeps the
// ports in a blocked kernel bridge with a guard that lifts the block the moment this process ends;
// fail-closed removes any such bridge, so nothing passes until a dataplane forwards again.
// Must run before the ports forward (the block must be in place first) and never on the packet path.

import { mkdirSync } from 'node:fs';
import { BypassGuard, BypassRecord } from './guard';
import { KernelBridge, type FailMode } from './kernel-bridge';

export interface FailSafe {
  mode: FailMode;
  /** The bypass this start ended (fail-open after a dataplane's death), or null. */
  endedBypass: { since: number; reason: string } | null;
  /** Note why this dataplane is going, for the bypass.off of the next one. */
  lastWords(reason: string): void;
  /** Ending on purpose (signal): the end lifts the block (fail-open) and no guard is restarted. */
  stopping(): void;
  /** Guards replaced while this dataplane lived (someone killed one). */
  guardRestarts(): number;
}

export interface FailSafeOptions {
  mode: FailMode;
  inside: string;
  outside: string;
  /** A directory that outlives the process (the pair's state directory): the bypass record. */
  recordDir: string;
  onGuardRestart: (code: number | null, signal: string | null) => void;
}

export function takeOverPair(options: FailSafeOptions): FailSafe {
  const bridge = new KernelBridge(options.inside, options.outside);
  mkdirSync(options.recordDir, { recursive: true });
  const record = new BypassRecord(options.recordDir);
  if (options.mode === 'closed') {
    bridge.removeLeftovers();
    return { mode: 'closed', endedBypass: record.take(), lastWords: () => {}, stopping: () => {}, guardRestarts: () => 0 };
  }
  record.own();
  bridge.takeOver();
  const endedBypass = record.take();
  const guard = new BypassGuard(bridge.table, record, options.onGuardRestart);
  guard.start();
  return {
    mode: 'open',
    endedBypass,
    lastWords: (reason) => record.lastWords(reason),
    stopping: () => guard.letGo(),
    guardRestarts: () => guard.restarts,
  };
}
