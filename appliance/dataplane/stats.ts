// The counter snapshot a dataplane publishes (stats file today, management IPC later).

import type { PortCountersSnapshot } from './counters';
import type { FlowTableCounters } from './flow/flow-table';
import type { ActionName, Mode } from '../policy/types';

export interface PortStats extends PortCountersSnapshot {
  name: string;
  /** Kernel operstate of the interface: "up", "down", ... */
  link: string;
}

export interface RuleStats {
  name: string;
  action: ActionName;
  packets: number;
  bytes: number;
  /** Flows this rule started (or, in monitor mode, would have refused). */
  flows: number;
}

export interface DataplaneStats {
  pair: string;
  pid: number;
  uptimeMs: number;
  /** Policy generation running: 1 at start, +1 per accepted reload. */
  generation: number;
  policyHash: string;
  mode: Mode;
  ports: { inside: PortStats; outside: PortStats };
  flows: FlowTableCounters & { active: number; capacity: number };
  fragments: { tracked: number };
  /** In rule order; the last one is the implicit default. */
  rules: RuleStats[];
}
