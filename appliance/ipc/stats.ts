// The counter snapshot a dataplane publishes (stats file, and the management IPC `stats` message),
// with the names its counters are published under. Part of the IPC contract: imports nothing from
// dataplane/ or mgmt/; the dataplane fills it, management and the lab read it.

import type { ActionName, Mode } from '../policy/types';

/** Per-port counters as published; indices are dataplane/counters.ts's PortCounter. */
export const portCounterNames = [
  'rx_packets', 'rx_bytes', 'tx_packets', 'tx_bytes', 'forwarded', 'rejects_sent', 'rejects_suppressed',
  'send_errors', 'monitor_would_drop', 'kernel_dropped', 'rx_segments', 'fast_path_frames',
] as const;

/** Why frames were dropped, as published; indices are dataplane/counters.ts's DropReason. */
export const dropReasonNames = [
  'policy', 'decode', 'l2', 'tcp_no_flow', 'fragment_no_first', 'wrong_port', 'own_mac', 'truncated', 'flow_cut', 'inspect',
  'inspect_held', 'spoofed_source',
] as const;

export type PortCountersSnapshot = Record<(typeof portCounterNames)[number], number> & {
  dropped: Record<string, number>;
  /** Only the reasons seen so far. */
  decode_errors: Record<string, number>;
};

/** What the flow table did since start. */
export interface FlowTableCounters {
  created: number;
  evicted: number;
  expired: number;
  closed: number;
  /** Flows ended because a reloaded policy no longer allows them. */
  cut: number;
  /** Flows that share a bucket with another flow (hash collisions). */
  chained: number;
  /** Unanswered flows ended early to make room for new ones (a flood of new flows; flow-end reason 'evicted'). */
  earlyDropped: number;
  /** Gauge: flows not answered yet (TCP handshake not complete, no reply), held to a budget. */
  embryonic: number;
}


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
  /** Messages its application-layer block (e.g. `modbus:`) refused, or in monitor mode would have. */
  violations: number;
}

/** One application-layer inspector (by protocol, e.g. "modbus"). */
export interface InspectStats {
  /** Flows inspected since start, and inspected now. */
  flows: number;
  active: number;
  /** Refused messages by reason (every reason present). */
  violations: Record<string, number>;
  /** Segments held for TCP to resend in order, by reason: not violations. */
  held: Record<string, number>;
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
  /** Application-layer inspection, by protocol. */
  inspect: Record<string, InspectStats>;
  /** Event reporting to management; absent when no management socket is configured. */
  events?: EventStats;
  /** The batched ports' busy polling (zeros with polling off); absent with cap. */
  busyPoll?: BusyPollStats;
  /** The kernel fast path (port/fast-path.ts); absent where no live ports run (replay). */
  fastPath?: FastPathStats;
}

/** The kernel fast path: flows the engine decided for good, forwarded by the kernel (port/fast-path.ts). */
export interface FastPathStats {
  /** on; off by GATEKEEPER_FAST_PATH=off; unavailable (`reason` says why: cap I/O, no tcx, not built). */
  state: 'on' | 'off' | 'unavailable';
  reason?: string;
  /** Flows offloaded now, and the most there can be. */
  flows: number;
  capacity: number;
  /** Flow directions handed to the kernel since start. */
  offloads: number;
  /** Directions not handed over because their frames cannot be (two VLAN tags, IP options, IPv6 extension headers). */
  notOffloadable: number;
  /** Directions not handed over because the kernel's table (capacity) was full. */
  tableFull: number;
  /** Flows taken back from the kernel (FIN or RST, the flow's end). */
  withdrawn: number;
}

/** What busy polling met since start (port/native/batch_port.cc). */
export interface BusyPollStats {
  /** Times polling stopped for 100 ms because another task was given the dataplane's CPU. */
  backoffs: number;
  /**
   * Empty polls held up more than 1 ms with no other task given the CPU: the host took the vCPU
   * (steal) or interrupts ran. Rising while the box is idle: the latency tails come from below.
   */
  stalls: number;
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
