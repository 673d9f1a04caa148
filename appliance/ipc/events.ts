// The events the appliance reports: produced by the dataplane (flows, denied traffic, links) and by
// management (policy, audit), stored by management, shown in the UI and exported to the SIEM.
// This file is the contract: every event type and its fields are documented in docs/siem.md.

/** Syslog severities (RFC 5424 numeric value = index). */
export const severityNames = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug'] as const;
export type Severity = (typeof severityNames)[number];

/** Protocol as the policy language names it (wire/protocols.ts): "tcp", "udp", "gre", ... or "proto/N". */
export type ProtoName = string;

/** The two ends of a connection, each with the names of the policy groups that contain it. */
export interface Endpoints {
  /** Initiator (the rule's "from" side). */
  src: string;
  srcPort: number;
  srcGroups: string[];
  dst: string;
  /** Destination port for TCP/UDP/SCTP; for ICMP the type. */
  dstPort: number;
  dstGroups: string[];
  proto: ProtoName;
  /** Outer VLAN id, 0 when untagged. */
  vlan: number;
}

interface EventBase {
  /** ISO 8601 time the event happened. */
  time: string;
  severity: Severity;
  /** Port pair the event comes from; absent for management events. */
  pair?: string;
}

/** An allowed flow began (only for rules with `log: true`). */
export interface FlowStartEvent extends EventBase, Endpoints {
  type: 'flow.start';
  rule: string;
  action: 'allow';
  /** True when the flow passes only because the policy is in monitor mode. */
  monitor: boolean;
}

/** A logged flow ended. Counters are per direction: "out" = initiator → responder. */
export interface FlowEndEvent extends EventBase, Endpoints {
  type: 'flow.end';
  rule: string;
  reason: 'idle' | 'closed' | 'evicted' | 'cut';
  durationMs: number;
  packetsOut: number;
  packetsIn: number;
  bytesOut: number;
  bytesIn: number;
  /** Inspected flows (a rule with a `modbus:` block): requests seen per function name, e.g. {"read-holding-registers": 120}. */
  functions?: Record<string, number>;
}

/**
 * Messages an application-layer block refused (or in monitor mode would have), summarized like
 * deny.summary: one record per (client, server, rule, function, unit, reason) per summary interval,
 * never one per packet. Endpoints are the flow's, initiator first.
 */
export interface OtViolationEvent extends EventBase, Endpoints {
  type: 'ot.violation';
  /** The block's protocol: "modbus". */
  protocol: string;
  rule: string;
  /** Why, in the inspector's words (docs/ot.md lists them). */
  reason: string;
  /** Function name ("write-single-register") or code as text; "" when the message named none (a broken stream). */
  function: string;
  /** Unit identifier, -1 when unknown. */
  unit: number;
  /** Lowest and highest data address the refused requests touched; absent when none named one. */
  addressFirst?: number;
  addressLast?: number;
  /** What was done: the rule's on-violation (reset, exception, drop); "monitor" when only counted. */
  action: 'reset' | 'exception' | 'drop' | 'monitor';
  monitor: boolean;
  count: number;
  firstSeen: string;
  lastSeen: string;
}

/**
 * Denied (or rejected, or in monitor mode would-be-denied) traffic, summarized: one record per
 * (src, dst, proto, port, rule) per summary interval, never one per packet.
 */
export interface DenySummaryEvent extends EventBase, Endpoints {
  type: 'deny.summary';
  rule: string;
  action: 'deny' | 'reject';
  monitor: boolean;
  count: number;
  bytes: number;
  firstSeen: string;
  lastSeen: string;
}

/**
 * Packets that claimed an address the policy binds to a MAC (`address@MAC`) from another MAC, and
 * were dropped (in monitor mode: forwarded and counted): one record per (address, MAC, bound MAC,
 * kind, port) per summary interval, never one per packet.
 */
export interface SpoofSummaryEvent extends EventBase {
  type: 'spoof.summary';
  /** The address claimed: the IP source, or an ARP packet's sender address. */
  address: string;
  /** The policy groups containing it. */
  groups: string[];
  /** The MAC the packets came from (ARP: the sender hardware address), and the MAC the address is bound to. */
  mac: string;
  boundMac: string;
  /** 'arp': ARP packets claiming the address (ARP spoofing); 'ip': IPv4/IPv6 packets from it. */
  kind: 'arp' | 'ip';
  /** The appliance port the packets arrived on. */
  side: 'inside' | 'outside';
  monitor: boolean;
  count: number;
  bytes: number;
  firstSeen: string;
  lastSeen: string;
}

/**
 * The asset inventory (management) saw something it did not know: asset.new, a MAC never seen
 * before (raised once learning has run on the pair, so the first day is not a flood); asset.changed,
 * an address that moved to another MAC (or a known MAC whose identity changed); asset.down/asset.up,
 * liveness probes stopped or started being answered.
 */
export interface AssetEvent extends EventBase {
  type: 'asset.new' | 'asset.changed' | 'asset.down' | 'asset.up';
  /** Inventory id of the asset. */
  asset: number;
  mac: string;
  /** The address concerned (asset.changed: the one that moved); "" when none. */
  address: string;
  /** Best name the inventory has: LLDP system name, DHCP host name, Modbus identity, else "". */
  name: string;
  vendor: string;
  vlan: number;
  side: 'inside' | 'outside';
  /** asset.changed: what changed, e.g. "198.18.0.10 moved from 02:00:00:00:00:01 to 02:00:00:00:00:09". */
  detail?: string;
  /** asset.changed for a moved address: the MAC it was on before. */
  previousMac?: string;
  /** asset.up: round-trip time of the answer that brought it back. */
  rttMs?: number;
}

/** Learning started or stopped on a pair (management). */
export interface LearnEvent extends EventBase {
  type: 'learn.start' | 'learn.stop';
  author: string;
  /** learn.start: how long it is to run; learn.stop: why it stopped ("period over", "stopped by <user>"). */
  durationMs?: number;
  detail?: string;
}

export interface LinkEvent extends EventBase {
  type: 'link.up' | 'link.down';
  port: string;
  side: 'inside' | 'outside';
}

export interface DataplaneLifecycleEvent extends EventBase {
  type: 'dataplane.start' | 'dataplane.stop' | 'dataplane.connected' | 'dataplane.disconnected';
  pid?: number;
  detail?: string;
}

/**
 * A fail-open pair is bridged by the kernel without enforcement (bypass.on: its dataplane ended;
 * sent by management when the connection closes) or enforced again (bypass.off: sent by the
 * dataplane that took the ports back, with when bypass began and why).
 */
export interface BypassEvent extends EventBase {
  type: 'bypass.on' | 'bypass.off';
  reason: string;
  /** bypass.off: ISO time bypass began, and how long it lasted. */
  since?: string;
  durationMs?: number;
}

/** Events the dataplane could not deliver (queue full while management was away). */
export interface EventsDroppedEvent extends EventBase {
  type: 'events.dropped';
  count: number;
}

export interface PolicyEvent extends EventBase {
  type: 'policy.applied' | 'policy.refused' | 'policy.rollback';
  version?: number;
  author: string;
  comment?: string;
  policyHash?: string;
  mode?: 'enforce' | 'monitor';
  errors?: string[];
}

export interface ModeChangeEvent extends EventBase {
  type: 'mode.change';
  from: 'enforce' | 'monitor';
  to: 'enforce' | 'monitor';
  author: string;
}

/** Logins, logouts and every change made through management (the audit trail). */
export interface AuditEvent extends EventBase {
  type: 'auth.login' | 'auth.login_failed' | 'auth.lockout' | 'auth.logout' | 'admin.change';
  user: string;
  /** Remote address of the client. */
  from: string;
  /** What was done, e.g. "user.add operator1", "settings.update syslog". */
  action?: string;
}

/** Periodic counter snapshot per port pair (for SIEM dashboards). */
export interface CountersEvent extends EventBase {
  type: 'counters.snapshot';
  generation: number;
  rxPackets: number;
  txPackets: number;
  dropped: number;
  flowsActive: number;
}

export type GatekeeperEvent =
  | FlowStartEvent
  | FlowEndEvent
  | DenySummaryEvent
  | OtViolationEvent
  | SpoofSummaryEvent
  | AssetEvent
  | LearnEvent
  | LinkEvent
  | DataplaneLifecycleEvent
  | BypassEvent
  | EventsDroppedEvent
  | PolicyEvent
  | ModeChangeEvent
  | AuditEvent
  | CountersEvent;

export type EventType = GatekeeperEvent['type'];

export const eventTypes: readonly EventType[] = [
  'flow.start', 'flow.end', 'deny.summary', 'ot.violation', 'spoof.summary',
  'asset.new', 'asset.changed', 'asset.down', 'asset.up', 'learn.start', 'learn.stop', 'link.up', 'link.down',
  'dataplane.start', 'dataplane.stop', 'dataplane.connected', 'dataplane.disconnected', 'bypass.on', 'bypass.off', 'events.dropped',
  'policy.applied', 'policy.refused', 'policy.rollback', 'mode.change',
  'auth.login', 'auth.login_failed', 'auth.lockout', 'auth.logout', 'admin.change', 'counters.snapshot',
];
