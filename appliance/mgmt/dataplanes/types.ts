// The contract between management's HTTP side (routes, state, auth) and its dataplane side (the IPC
// server that tracks every connected dataplane, runs policy transactions, and keeps what the
// dashboard, flows view, metrics and dry-run need).

import type { GatekeeperEvent } from '../../ipc/events';
import type { FlowFilter, FlowRecord } from '../../ipc/messages';
import type { InspectStats, RuleStats } from '../../ipc/stats';

export interface PortStatus {
  name: string;
  link: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Sum of all drop reasons. */
  dropped: number;
  droppedByReason: Record<string, number>;
  /** Frames the kernel dropped before the dataplane saw them (receive ring full: too slow), not in `dropped`. */
  kernelDropped: number;
  rxPps: number;
  rxBps: number;
}

export interface PairStatus {
  pair: string;
  connected: boolean;
  /** Fail-open pair whose dataplane is gone: the kernel bridges its ports without enforcement. */
  bypass: boolean;
  pid: number;
  generation: number;
  policyHash: string;
  mode: 'enforce' | 'monitor';
  uptimeMs: number;
  /** Epoch ms of the last message from this dataplane. */
  lastSeen: number;
  ports: { inside: PortStatus; outside: PortStatus };
  flows: { active: number; capacity: number; created: number; evicted: number };
  rates: { allowedPps: number; deniedPps: number; rxPps: number; rxBps: number };
  /** Per-rule counters of the latest snapshot, in rule order (empty before the first one). */
  rules: Omit<RuleStats, 'bytes'>[];
  /** Application-layer inspection by protocol, as the dataplane counts it. */
  inspect: Record<string, InspectStats>;
}

export interface HistoryPoint {
  /** Epoch ms. */
  t: number;
  rxPps: number;
  rxBps: number;
  allowedPps: number;
  deniedPps: number;
}

export interface TopDeniedEntry {
  pair: string;
  src: string;
  srcGroups: string[];
  dst: string;
  dstGroups: string[];
  proto: string;
  dstPort: number;
  rule: string;
  action: 'deny' | 'reject';
  count: number;
  /** ISO time. */
  lastSeen: string;
}

/** One violating conversation of the last hour, summed from ot.violation summaries. */
export interface TopViolationEntry {
  pair: string;
  src: string;
  srcGroups: string[];
  dst: string;
  dstGroups: string[];
  dstPort: number;
  protocol: string;
  rule: string;
  /** Function name, or "" when the refused message named none. */
  function: string;
  /** -1 when unknown. */
  unit: number;
  reason: string;
  /** The most recent summary's action. */
  action: 'reset' | 'exception' | 'drop' | 'monitor';
  count: number;
  /** Lowest and highest data address touched; absent when no refused request named one. */
  addressFirst?: number;
  addressLast?: number;
  /** ISO times. */
  firstSeen: string;
  lastSeen: string;
}

export type PairFlowRecord = FlowRecord & { pair: string };

export interface FlowsResult {
  flows: PairFlowRecord[];
  matched: number;
  total: number;
}

export type ApplyResult =
  | { ok: true; pairs: { pair: string; generation: number }[] }
  | { ok: false; error: string; details: { pair: string; error: string }[] };

export type DryRunChange = Pick<FlowRecord, 'proto' | 'src' | 'srcPort' | 'dst' | 'dstPort'> & {
  pair: string;
  before: DryRunVerdict;
  after: DryRunVerdict;
};

export interface DryRunVerdict {
  rule: string;
  action: string;
  /** The rule's application-layer block in words ("modbus: functions read; ..."), absent without one. */
  inspection?: string;
}

export interface DryRunResult {
  /** Recently observed flows checked. */
  observed: number;
  changes: DryRunChange[];
}

export interface DataplaneHub {
  /** Start listening on the Unix socket (removing a stale socket file first). */
  listen(): Promise<void>;
  /** Every pair seen since start, connected or not. */
  pairs(): PairStatus[];
  /** One point per second, at most the last 15 minutes. */
  history(pair: string, seconds: number): HistoryPoint[];
  topDenied(limit: number): TopDeniedEntry[];
  /** The most violating conversations of the last hour (ot.violation summaries), most refused first. */
  topViolations(limit: number): TopViolationEntry[];
  /** Asks every connected dataplane (or one pair) for its flows. */
  flows(filter: FlowFilter & { pair?: string }, limit: number): Promise<FlowsResult>;
  /**
   * Two-phase apply to every connected dataplane: prepare everywhere, commit only when all prepared.
   * On any refusal or timeout every dataplane is told to abort and keeps its old policy.
   */
  apply(text: string, source: string): Promise<ApplyResult>;
  /** The policy management considers active: pushed (same transaction) to dataplanes that connect running another one. */
  setActivePolicy(text: string, hash: string): void;
  /**
   * Which recently observed flows (last hour, bounded) would change verdict from `activeText` to
   * `candidateText`. Both compile off the event loop; rejects when either does not compile.
   */
  dryRun(activeText: string, candidateText: string): Promise<DryRunResult>;
  /** Events arriving from dataplanes, and the hub's own (dataplane.connected/disconnected, events.dropped). */
  onEvent(listener: (event: GatekeeperEvent) => void): void;
  /** Prometheus text for per-port, per-reason and per-rule counters (prom-client registry). */
  metrics(): Promise<string>;
  close(): Promise<void>;
}
