// The counter snapshot a dataplane publishes (stats file, and the management IPC `stats` message).

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
  /** Event reporting to management; absent when no management socket is configured. */
  events?: EventStats;
}

export interface EventStats {
  connected: boolean;
  queued: number;
  sent: number;
  /** Events lost since start (queue full while management was away). */
  dropped: number;
  /** Denied packets only counted, not summarized, because an interval had too many distinct keys. */
  denyOverflow: number;
}
