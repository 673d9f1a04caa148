// The dataplane's traffic events (ipc/events.ts), collected for management. The packet path only
// records: denied packets into the preallocated deny summary, application-layer violations and
// spoofed packets (a bound address from another MAC) into theirs, and a small record per logged flow
// start and end. Everything costly (address text, group names, ISO times) happens in collect(), which
// the management link calls every 250 ms. Only exists when a management socket is configured.
// Must not import the engine or anything else that runs it: it is told the policy in use and reads
// the counters through a callback.

import type { Logger } from 'pino';
import type { DenySummaryEvent, Endpoints, FlowEndEvent, FlowStartEvent, GatekeeperEvent, OtViolationEvent, SpoofSummaryEvent } from '../../ipc/events';
import { Action, type CompiledPolicy } from '../../policy/types';
import { groupNamesFor4, groupNamesFor6, type ModelGroup } from '../../policy/model';
import { type Packet } from '../decode/packet';
import { EtherType, Family, Proto, protocolName } from '../../wire/protocols';
import { formatMac } from '../../wire/address-text';
import { Side } from '../verdict';
import type { Flow } from '../flow/flow';
import type { FlowEndReason } from '../flow/flow-table';
import { DenySummary, MIXED_PORTS, type DenyEntry } from './deny-summary';
import { addressText, countsByFunctionName, flowEnds, summaryAddressText, type FlowEnds } from './flow-records';
import { SpoofSummary, type SpoofEntry } from './spoof-summary';
import { ViolationSummary, type Violation, type ViolationEntry } from './violation-summary';

export type { Violation };

/** Names an inspector's function codes (the inspector does). */
export interface FunctionNames {
  functionName(code: number): string;
}

/** How often denied traffic is summarized: one deny.summary per key per interval. */
export const DENY_SUMMARY_INTERVAL_MS = 10_000;
export const COUNTERS_INTERVAL_MS = 60_000;
const LINK_POLL_MS = 1000;
/** Logged flow records waiting for collect(); beyond this they are dropped and counted. */
const MAX_PENDING = 10_000;
/** Group names remembered per address (for the running policy). */
const GROUP_CACHE_SIZE = 10_000;

/** A data port whose link state is reported. */
export interface LinkSource {
  name: string;
  side: 'inside' | 'outside';
  /** Kernel operstate ("up", "down", "lowerlayerdown", ...). */
  operState(): string;
}

/**
 * What the packet path tells the events about. Only set on the engine when a management socket is
 * configured; the calls per packet must not allocate.
 */
export interface TrafficObserver {
  /** A packet that `rule` denies or rejects (in monitor mode: would have). Per packet: no allocation. */
  denied(pkt: Packet, rule: number, length: number, now: number): void;
  /**
   * A packet whose source address is bound to `boundMac` but came from `mac` (48-bit numbers; for ARP
   * the sender's), on `side` (in monitor mode: forwarded all the same). Per packet: no allocation.
   */
  spoofed(pkt: Packet, mac: number, boundMac: number, side: Side, length: number, now: number): void;
  /** A packet of a flow that passes only because of monitor mode. Per packet: no allocation. */
  deniedInFlow(flow: Flow, length: number, now: number): void;
  /** A flow decided by a rule with `log: true` started. */
  flowStarted(flow: Flow, now: number): void;
  /**
   * Any flow left the table (the observer picks the ones it logged). An inspected flow brings its
   * requests per function code and the inspector that names them.
   */
  flowEnded(flow: Flow, reason: FlowEndReason, functionCounts: Uint32Array | null, names: FunctionNames | null): void;
  /** An application-layer block refused a message of `flow` (in monitor mode: would have). */
  violation(flow: Flow, violation: Violation, now: number): void;
}

/** The policy in use, as the events need it (running-policy.ts's PolicyVersion is one). */
export interface PolicyInUse {
  policy: CompiledPolicy;
  /** The policy's declared groups: events name the groups an address is in. */
  groups: ReadonlyMap<string, ModelGroup>;
  generation: number;
}

/** Totals for the periodic counters.snapshot event. */
export interface TrafficTotals {
  rxPackets: number;
  txPackets: number;
  dropped: number;
  flowsActive: number;
}

export interface TrafficEventsOptions {
  pair: string;
  /** The policy running when the events start; later ones arrive through policyChanging(). */
  first: PolicyInUse;
  totals: () => TrafficTotals;
  links: LinkSource[];
  log: Logger;
  denyIntervalMs?: number;
  countersIntervalMs?: number;
}

/** What the events count about themselves (in the stats snapshot). */
export interface TrafficEventsCounters {
  /** Denied packets not summarized because an interval had too many distinct keys. */
  denyOverflow: number;
  /** Logged flow records dropped because collect() fell behind. */
  pendingDropped: number;
  /** Violations only counted, not summarized, because an interval had too many distinct keys. */
  violationOverflow: number;
}

interface LoggedFlow {
  ends: FlowEnds;
  rule: string;
  monitor: boolean;
  startedAt: number;
  groups: ReadonlyMap<string, ModelGroup>;
  /** Text form, made once for flow.start and reused by flow.end. */
  endpoints: Endpoints | null;
}

type PendingRecord =
  | { kind: 'start'; flow: LoggedFlow }
  | { kind: 'end'; flow: LoggedFlow; reason: FlowEndReason; at: number; durationMs: number;
      packetsOut: number; packetsIn: number; bytesOut: number; bytesIn: number; functions?: Record<string, number> };

export class TrafficEvents implements TrafficObserver {
  readonly counters: TrafficEventsCounters = { denyOverflow: 0, pendingDropped: 0, violationOverflow: 0 };
  private running: PolicyInUse;
  private readonly deny = new DenySummary();
  private readonly violations = new ViolationSummary();
  private readonly spoofs = new SpoofSummary();
  private readonly logged = new Map<Flow, LoggedFlow>();
  private pending: PendingRecord[] = [];
  private ready: GatekeeperEvent[] = [];
  private droppedSinceCollect = 0;
  private readonly linkUp = new Map<string, boolean>();
  private groupCache = new Map<string, string[]>();
  private groupCacheOwner: ReadonlyMap<string, ModelGroup> | null = null;
  private nextDenyDrain: number;
  private nextCounters: number;
  private nextLinkPoll = 0;
  private readonly denyIntervalMs: number;
  private readonly countersIntervalMs: number;

  constructor(private readonly options: TrafficEventsOptions, now = Date.now()) {
    this.running = options.first;
    this.denyIntervalMs = options.denyIntervalMs ?? DENY_SUMMARY_INTERVAL_MS;
    this.countersIntervalMs = options.countersIntervalMs ?? COUNTERS_INTERVAL_MS;
    this.nextDenyDrain = now + this.denyIntervalMs;
    this.nextCounters = now + this.countersIntervalMs;
  }

  // --- packet path (TrafficObserver)

  denied(pkt: Packet, rule: number, length: number, now: number): void {
    let srcPort = 0;
    let dstPort = 0;
    if (pkt.hasPorts) {
      srcPort = pkt.srcPort;
      dstPort = pkt.dstPort;
    } else if (pkt.icmpType >= 0) {
      dstPort = pkt.icmpType;
    }
    this.deny.record(pkt.family, pkt.src4, pkt.dst4, pkt.src6, pkt.dst6, pkt.proto, srcPort, dstPort, pkt.vlanOuter, rule, length, now);
  }

  spoofed(pkt: Packet, mac: number, boundMac: number, side: Side, length: number, now: number): void {
    const arp = pkt.etherType === EtherType.ARP;
    // An ARP sender address is IPv4 (the decoder fills ARP fields for IPv4 over Ethernet only).
    this.spoofs.record(arp ? Family.V4 : pkt.family, arp ? pkt.arpSenderIp : pkt.src4, pkt.src6, mac, boundMac, arp, side, length, now);
  }

  deniedInFlow(flow: Flow, length: number, now: number): void {
    const i = flow.initiatorIsA;
    const icmp = flow.proto === Proto.ICMP || flow.proto === Proto.ICMPV6;
    const srcPort = icmp ? 0 : i ? flow.portA : flow.portB;
    const dstPort = icmp ? (flow.proto === Proto.ICMP ? 8 : 128) : i ? flow.portB : flow.portA;
    this.deny.record(flow.family, i ? flow.a4 : flow.b4, i ? flow.b4 : flow.a4, i ? flow.a6 : flow.b6, i ? flow.b6 : flow.a6,
      flow.proto, srcPort, dstPort, flow.vlan >>> 12, flow.ruleIndex, length, now);
  }

  flowStarted(flow: Flow, now: number): void {
    const version = this.running;
    const logged: LoggedFlow = {
      ends: flowEnds(flow),
      rule: version.policy.rules[flow.ruleIndex].name,
      monitor: flow.wouldDrop,
      startedAt: now,
      groups: version.groups,
      endpoints: null,
    };
    this.logged.set(flow, logged);
    this.pend({ kind: 'start', flow: logged });
  }

  flowEnded(flow: Flow, reason: FlowEndReason, functionCounts: Uint32Array | null, names: FunctionNames | null): void {
    const logged = this.logged.get(flow);
    if (logged === undefined) return;
    this.logged.delete(flow);
    const functions = functionCounts !== null && names !== null
      ? countsByFunctionName(functionCounts, (code) => names.functionName(code)) : undefined;
    this.pend({
      kind: 'end', flow: logged, reason, at: Date.now(), durationMs: flow.lastSeen - flow.firstSeen,
      packetsOut: flow.packetsOut, packetsIn: flow.packetsIn, bytesOut: flow.bytesOut, bytesIn: flow.bytesIn, functions,
    });
  }

  violation(flow: Flow, violation: Violation, now: number): void {
    this.violations.record(flow, violation, now);
  }

  // --- off the packet path

  /** A lifecycle event of this dataplane (start, stop). */
  lifecycle(type: 'dataplane.start' | 'dataplane.stop', detail?: string): void {
    this.ready.push({ type, time: new Date().toISOString(), severity: 'notice', pair: this.options.pair, pid: process.pid, detail });
  }

  /** This dataplane took back ports the kernel bridged (fail-open) since `since`, after `reason`. */
  bypassEnded(since: number, reason: string, now = Date.now()): void {
    this.ready.push({ type: 'bypass.off', time: new Date(now).toISOString(), severity: 'warning', pair: this.options.pair,
      reason, since: new Date(since).toISOString(), durationMs: Math.max(0, now - since) });
  }

  /** `next` replaces the policy in use: the deny summaries so far are reported now, while its rule names apply. */
  policyChanging(next: PolicyInUse, now = Date.now()): void {
    this.drainDeny(this.running, now);
    this.running = next;
  }

  /**
   * Every event due: logged flows, deny summaries when the interval is over (or `final`), link
   * changes, the periodic counter snapshot. `dropped` counts records lost since the last call.
   */
  collect(now = Date.now(), final = false): { events: GatekeeperEvent[]; dropped: number } {
    for (const record of this.pending) this.ready.push(this.flowEvent(record));
    this.pending = [];
    if (final || now >= this.nextDenyDrain) {
      this.drainDeny(this.running, now);
      this.nextDenyDrain = now + this.denyIntervalMs;
    }
    if (now >= this.nextLinkPoll) {
      this.pollLinks(now);
      this.nextLinkPoll = now + LINK_POLL_MS;
    }
    if (now >= this.nextCounters) {
      this.ready.push(this.countersEvent(now));
      this.nextCounters = now + this.countersIntervalMs;
    }
    const events = this.ready;
    const dropped = this.droppedSinceCollect;
    this.ready = [];
    this.droppedSinceCollect = 0;
    return { events, dropped };
  }

  private pend(record: PendingRecord): void {
    if (this.pending.length >= MAX_PENDING) {
      this.counters.pendingDropped++;
      this.droppedSinceCollect++;
      return;
    }
    this.pending.push(record);
  }

  private drainDeny(version: PolicyInUse, now: number): void {
    const overflow = this.deny.overflow;
    if (overflow > 0) {
      this.counters.denyOverflow += overflow;
      this.deny.overflow = 0;
      this.options.log.warn({ packets: overflow, keys: this.deny.capacity },
        'denied traffic had more distinct sources/destinations than the summary holds; the rest was only counted');
    }
    for (const entry of this.deny.drain()) this.ready.push(this.denyEvent(entry, version, now));
    const overflowed = this.violations.overflow;
    if (overflowed > 0) {
      this.counters.violationOverflow += overflowed;
      this.violations.overflow = 0;
      this.options.log.warn({ violations: overflowed }, 'application-layer violations had more distinct keys than the summary holds; the rest was only counted');
    }
    for (const entry of this.violations.drain()) this.ready.push(this.violationEvent(entry, version, now));
    if (this.spoofs.overflow > 0) {
      this.options.log.warn({ packets: this.spoofs.overflow, keys: this.spoofs.capacity },
        'spoofed packets came from more distinct addresses and MACs than the summary holds; the rest was only counted');
      this.spoofs.overflow = 0;
    }
    for (const entry of this.spoofs.drain()) this.ready.push(this.spoofEvent(entry, version, now));
  }

  private spoofEvent(e: SpoofEntry, version: PolicyInUse, now: number): SpoofSummaryEvent {
    const monitor = version.policy.mode === 'monitor';
    const address = summaryAddressText(e.family, e.address);
    return {
      type: 'spoof.summary',
      time: new Date(now).toISOString(),
      severity: monitor ? 'notice' : 'warning',
      pair: this.options.pair,
      address,
      groups: this.groupsOf(version.groups, address, e.family, e.address),
      mac: formatMac(e.mac),
      boundMac: formatMac(e.boundMac),
      kind: e.arp ? 'arp' : 'ip',
      side: e.side === Side.Inside ? 'inside' : 'outside',
      monitor,
      count: e.count,
      bytes: e.bytes,
      firstSeen: new Date(e.firstSeen).toISOString(),
      lastSeen: new Date(e.lastSeen).toISOString(),
    };
  }

  private violationEvent(e: ViolationEntry, version: PolicyInUse, now: number): OtViolationEvent {
    const monitor = e.action === 'monitor';
    const event: OtViolationEvent = {
      type: 'ot.violation',
      time: new Date(now).toISOString(),
      severity: monitor ? 'notice' : 'warning',
      pair: this.options.pair,
      ...this.endpointsOf(e.ends, version.groups),
      protocol: e.protocol,
      rule: version.policy.rules[e.rule]?.name ?? `#${e.rule}`,
      reason: e.reason,
      function: e.function < 0 ? '' : e.functionName,
      unit: e.unit,
      action: e.action,
      monitor,
      count: e.count,
      firstSeen: new Date(e.firstSeen).toISOString(),
      lastSeen: new Date(e.lastSeen).toISOString(),
    };
    if (e.addressFirst >= 0) {
      event.addressFirst = e.addressFirst;
      event.addressLast = e.addressLast;
    }
    return event;
  }

  private denyEvent(e: DenyEntry, version: PolicyInUse, now: number): DenySummaryEvent {
    const rule = version.policy.rules[e.rule];
    const monitor = version.policy.mode === 'monitor';
    const src = summaryAddressText(e.family, e.src);
    const dst = summaryAddressText(e.family, e.dst);
    return {
      type: 'deny.summary',
      time: new Date(now).toISOString(),
      severity: monitor ? 'notice' : 'warning',
      pair: this.options.pair,
      src,
      srcPort: e.srcPort === MIXED_PORTS ? 0 : e.srcPort,
      srcGroups: this.groupsOf(version.groups, src, e.family, e.src),
      dst,
      dstPort: e.dstPort,
      dstGroups: this.groupsOf(version.groups, dst, e.family, e.dst),
      proto: protocolName(e.proto),
      vlan: e.vlan,
      rule: rule?.name ?? `#${e.rule}`,
      action: rule?.action === Action.Reject ? 'reject' : 'deny',
      monitor,
      count: e.count,
      bytes: e.bytes,
      firstSeen: new Date(e.firstSeen).toISOString(),
      lastSeen: new Date(e.lastSeen).toISOString(),
    };
  }

  private flowEvent(record: PendingRecord): FlowStartEvent | FlowEndEvent {
    const flow = record.flow;
    const endpoints = flow.endpoints ?? (flow.endpoints = this.endpoints(flow));
    if (record.kind === 'start') {
      return { type: 'flow.start', time: new Date(flow.startedAt).toISOString(), severity: 'info', pair: this.options.pair,
        ...endpoints, rule: flow.rule, action: 'allow', monitor: flow.monitor };
    }
    const event: FlowEndEvent = {
      type: 'flow.end', time: new Date(record.at).toISOString(), severity: 'info', pair: this.options.pair, ...endpoints,
      rule: flow.rule, reason: record.reason, durationMs: record.durationMs, packetsOut: record.packetsOut,
      packetsIn: record.packetsIn, bytesOut: record.bytesOut, bytesIn: record.bytesIn,
    };
    if (record.functions !== undefined) event.functions = record.functions;
    return event;
  }

  private endpoints(flow: LoggedFlow): Endpoints {
    return this.endpointsOf(flow.ends, flow.groups);
  }

  private endpointsOf(e: FlowEnds, groups: ReadonlyMap<string, ModelGroup>): Endpoints {
    const src = addressText(e.family, e.src4, e.src6);
    const dst = addressText(e.family, e.dst4, e.dst6);
    return {
      src, srcPort: e.srcPort, srcGroups: this.groupsOf(groups, src, e.family, e.src6 ?? e.src4),
      dst, dstPort: e.dstPort, dstGroups: this.groupsOf(groups, dst, e.family, e.dst6 ?? e.dst4),
      proto: protocolName(e.proto), vlan: e.vlan,
    };
  }

  /** Declared groups containing an address, cached per address for the policy generation in use. */
  private groupsOf(groups: ReadonlyMap<string, ModelGroup>, text: string, family: number, address: number | Uint32Array): string[] {
    if (this.groupCacheOwner !== groups || this.groupCache.size >= GROUP_CACHE_SIZE) {
      this.groupCache = new Map();
      this.groupCacheOwner = groups;
    }
    let names = this.groupCache.get(text);
    if (names === undefined) {
      names = family === Family.V4 ? groupNamesFor4(groups, address as number) : groupNamesFor6(groups, address as Uint32Array);
      this.groupCache.set(text, names);
    }
    return names;
  }

  private pollLinks(now: number): void {
    for (const link of this.options.links) {
      const state = link.operState();
      const up = state === 'up' || state === 'unknown';
      const before = this.linkUp.get(link.name);
      this.linkUp.set(link.name, up);
      // At start only a link that is down is worth an event; after that every change is.
      if (before === up || (before === undefined && up)) continue;
      this.ready.push({
        type: up ? 'link.up' : 'link.down', time: new Date(now).toISOString(), severity: up ? 'notice' : 'error',
        pair: this.options.pair, port: link.name, side: link.side,
      });
    }
  }

  private countersEvent(now: number): GatekeeperEvent {
    return {
      type: 'counters.snapshot', time: new Date(now).toISOString(), severity: 'info', pair: this.options.pair,
      generation: this.running.generation, ...this.options.totals(),
    };
  }
}
