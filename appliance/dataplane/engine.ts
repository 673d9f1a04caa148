// The pipeline for one frame, in stage order: decode/ → flow/ (table, TCP state, fragments) →
// detect/ (rule lookup, monitor mode) → inspect/ (application layer, claimed flows only) → respond/
// (reject and its limit). It returns one reused PacketResult and counts it in counters.ts; it must
// not send, log or read a clock of its own (`now` comes from the caller). A flow decided for good
// (allowed, nothing left to inspect or observe, answered, TCP established) is handed to the kernel
// fast path when one is set (flow/offload.ts), which then forwards its frames without the engine.
// Shared by the live bridge, offline replay and the benchmark, so all three run exactly the same
// logic. Nothing here allocates per packet.

import { read48 } from './decode/bytes';
import { decodeFrame } from './decode/decoder';
import { decodeDhcp, DhcpError, dhcpErrorNames, dhcpFields, DhcpMessage } from './decode/dhcp';
import { decodeLldp, LldpError, lldpErrorNames, lldpFields, LldpFrame } from './decode/lldp';
import { DeviceIdAnswer, decodeDeviceId, DeviceIdError, deviceIdErrorNames, deviceIdFields } from './decode/modbus-device-id';
import { isIcmpError } from './decode/icmp';
import { Packet } from './decode/packet';
import { allows, matchFlow, matchPacket } from './detect/match';
import { forwardInstead, isMonitor, wouldDrop } from './detect/monitor';
import { hasBindings, sourceMacOf, spoofedBinding } from './detect/source-binding';
import { countsByFunctionName } from './events/flow-records';
import type { AppCounts, ObservationSink } from './events/observations';
import type { TrafficObserver, Violation } from './events/traffic-events';
import { EtherType, Family, Proto, TcpFlag } from '../wire/protocols';
import { DropReason, InspectCounters, PortCounters, RuleCounters } from './counters';
import { coarseClock, type Clock } from './flow/clock';
import { Flow, TcpState } from './flow/flow';
import { FlowKey, keyFromPacket, keyFromQuoted } from './flow/flow-key';
import type { FlowOffload } from './flow/offload';
import { FlowTable } from './flow/flow-table';
import { FragmentTable } from './flow/fragment-table';
import { handshakeDone, isNewSynOnClosedFlow, isOpeningSyn, mayPickUp, trackTcp } from './flow/tcp-state';
import { FlowTimeouts, type TtlOption } from './flow/timeouts';
import { InspectOutcome, InspectVerdict, Segment, type AppInspector } from './inspect/inspector';
import type { AppObserver } from './inspect/observer';
import { createInspectors, createObservers, inspectionsFor, type RuleInspection } from './inspect/registry';
import { RejectBuilder } from './respond/reject';
import { RejectLimit } from './respond/reject-limit';
import { Action, type CompiledPolicy } from '../policy/types';
import { NO_REASON, NO_RULE, otherSide, PacketResult, Side, Verdict } from './verdict';

const FRAGMENT_TABLE_SIZE = 8192;

export interface EngineOptions {
  /** Ages flows and fragments: live the coarse monotonic clock, in replay the capture's. */
  clock?: Clock;
  /** The application-layer inspectors (inspect/registry.ts's by default; tests give fakes). */
  inspectors?: readonly AppInspector[];
  /** The application-layer observers for flows without a block (inspect/registry.ts's by default). */
  observers?: readonly AppObserver[];
}

/** An observed flow's observer and its parse state. */
interface Observation {
  observer: AppObserver;
  state: unknown;
}

/** Offset of the Ethernet source address. */
const ETHERNET_SOURCE = 6;
const DHCP_SERVER_PORT = 67;

/** A claimed flow's inspector, its parse state and the counters of its protocol. */
interface Inspection {
  inspector: AppInspector;
  state: unknown;
  counters: InspectCounters;
}

/**
 * The flow table is settled and reported (Engine.sweep) SWEEP_FLOWS flows every SWEEP_INTERVAL_MS:
 * a slice costs about 0.1 ms (`npm run bench`, "sweep slice", 1000 rules), where a walk of 100k flows
 * at once held the loop 49-52 ms. A pass over 100k flows takes 2 s, so rule counters and conversations are at
 * most that far behind; 1M flows, 20 s.
 */
export const SWEEP_INTERVAL_MS = 20;
export const SWEEP_FLOWS = 1000;
/** An unanswered flow is reported by the sweep once this old (one-way traffic: a sensor's UDP, traps). */
export const UNANSWERED_REPORT_MS = 5000;

export class Engine {
  readonly pkt = new Packet();
  readonly counters: readonly [PortCounters, PortCounters] = [new PortCounters(), new PortCounters()];
  /** Per inspector (same order as `inspectors`): flows inspected, violations and holds by reason. */
  readonly inspectCounters: readonly InspectCounters[];
  readonly inspectors: readonly AppInspector[];
  readonly flows: FlowTable;
  readonly fragments: FragmentTable;
  policy: CompiledPolicy;
  /** The generation of `policy`, as the running policy numbered it; stamped on the flows it decides. */
  generation: number;
  /** Set by the dataplane when events are collected; null costs nothing on the packet path. */
  observer: TrafficObserver | null = null;
  /** Set by the dataplane when the kernel fast path runs (port/fast-path.ts); null: every frame comes here. */
  offloads: FlowOffload | null = null;
  /**
   * Until this time (ms, the clock process() is given) mid-stream TCP the policy allows is picked up
   * as with `pickup-established`: the dataplane sets it when it starts (a restart), so the hosts'
   * connections that ran through the dataplane before it are not cut. 0: only the policy's setting.
   */
  pickupUntil = 0;
  readonly observers: readonly AppObserver[];

  /** Settled counts only: read them through ruleTotals(). */
  private ruleCounters: RuleCounters;
  private readonly result: PacketResult;
  private readonly key = new FlowKey();
  private timeouts: FlowTimeouts;
  private monitor: boolean;
  /** The policy binds addresses to MACs: only then is a source looked up (detect/source-binding.ts). */
  private bindings: boolean;
  private readonly reject = new RejectBuilder();
  private readonly rejectLimit = new RejectLimit();
  /** Per rule: the inspector a block of the rule names and the block, or null. */
  private ruleInspections: (RuleInspection | null)[];
  /** Claimed flows only (flow.inspected): other flows never look here. */
  private readonly inspections = new Map<Flow, Inspection>();
  /** Observed flows only (flow.observed). */
  private readonly observedFlows = new Map<Flow, Observation>();
  /** Set by the dataplane when observations are collected (setObservations); null costs nothing. */
  private observations: ObservationSink | null = null;
  private readonly lldp = new LldpFrame();
  private readonly dhcp = new DhcpMessage();
  private readonly deviceId = new DeviceIdAnswer();
  /** The frame being inspected or observed and where it came from: for an identity answer it carries. */
  private currentFrame: Uint8Array = new Uint8Array(0);
  private currentSide: Side = 0;
  private currentNow = 0;
  private readonly segment = new Segment();
  private readonly inspectOutcome = new InspectOutcome();
  /** Segments the frame being processed stands for (process()). */
  private segments = 1;
  /** What the observer is told about a violation: one reused record. */
  private readonly violationRecord: Violation = { protocol: '', reason: '', function: -1, functionName: '', unit: -1, start: -1, quantity: 0, action: 'reset' };

  constructor(policy: CompiledPolicy, generation: number, options: EngineOptions = {}) {
    const clock = options.clock ?? coarseClock;
    this.inspectors = options.inspectors ?? createInspectors();
    this.observers = options.observers ?? createObservers();
    this.inspectCounters = this.inspectors.map((i) => new InspectCounters(i.protocol, i.reasons, i.holdReasons));
    this.policy = policy;
    this.generation = generation;
    this.ruleCounters = new RuleCounters(policy.rules.length);
    this.timeouts = new FlowTimeouts(policy);
    this.monitor = isMonitor(policy);
    this.bindings = hasBindings(policy);
    this.ruleInspections = inspectionsFor(policy, this.inspectors);
    this.result = new PacketResult(this.reject.frame, this.reject.onward);
    this.flows = new FlowTable(policy.flow.maxFlows, (flow, reason) => {
      if (flow.offloadSlot >= 0) (this.offloads as FlowOffload).withdraw(flow);
      this.settle(flow);
      const inspection = flow.inspected ? this.inspections.get(flow) : undefined;
      if (this.observer !== null) {
        this.observer.flowEnded(flow, reason, inspection ? inspection.inspector.functionCounts(inspection.state) : null, inspection?.inspector ?? null);
      }
      if (this.observations !== null) this.observations.flowEnded(flow, this.appCountsOf(flow));
      if (flow.inspected) this.endInspection(flow);
      if (flow.observed) this.endObservation(flow);
    }, clock);
    this.fragments = new FragmentTable(FRAGMENT_TABLE_SIZE, clock);
  }

  /**
   * Swap in a new policy. Flows keep running; each is re-decided by the new rules at its next packet
   * and cut then if they no longer allow it. Rule counters carry over by rule name.
   */
  setPolicy(policy: CompiledPolicy, generation: number): void {
    const old = this.policy;
    // Settle first: a flow's packets so far belong to the rule that allowed them in the old numbering.
    const oldCounters = this.ruleTotals();
    const counters = new RuleCounters(policy.rules.length);
    const byName = new Map(old.rules.map((r) => [r.name, r.index]));
    for (const rule of policy.rules) {
      const i = byName.get(rule.name);
      if (i !== undefined) counters.carryOver(oldCounters, i, rule.index);
    }
    this.policy = policy;
    this.generation = generation;
    this.ruleCounters = counters;
    this.timeouts = new FlowTimeouts(policy);
    this.monitor = isMonitor(policy);
    this.bindings = hasBindings(policy);
    this.ruleInspections = inspectionsFor(policy, this.inspectors);
    this.flows.resize(policy.flow.maxFlows);
    // Offloaded flows come back at their next frame and are re-decided (redecide) like the others.
    this.offloads?.policyChanged();
  }

  /**
   * Per-rule packets, bytes and flows so far. A tracked flow counts its own packets on the packet
   * path (its record is in the CPU cache anyway, the rule's counters usually are not) and adds them to
   * its rule's counters when it ends, when the policy changes, at each sweep (sweep()), and here: this
   * walks every live flow at once, so it is for a policy change, a replay's end and the last
   * statistics, not for the running ones (sweptRuleCounters) nor the packet path.
   */
  ruleTotals(): RuleCounters {
    for (const flow of this.flows.flows()) this.settle(flow);
    return this.ruleCounters;
  }

  /**
   * Settle the next `budget` live flows into their rules' counters and report them to the
   * observations: the table walked in slices (dataplane.ts runs this every SWEEP_INTERVAL_MS), so
   * neither the per-second statistics nor the observations hold the loop for a walk of every flow
   * (a whole walk: 49 ms per 100k flows, `npm run bench`). Off the packet path.
   */
  sweep(budget: number, now: number): void {
    this.sweepNow = now;
    this.flows.sweep(budget, this.sweepFlow);
  }

  /** Rule counters as the sweep has settled them so far: a pass over the table behind at most. */
  sweptRuleCounters(): RuleCounters {
    return this.ruleCounters;
  }

  /**
   * An offloaded flow the fast path forwarded frames of (FlowOffload.sync said so): it is active, as
   * if the engine had seen them. Off the packet path (the dataplane's sweep of offloaded flows).
   */
  offloadedActive(flow: Flow, now: number): void {
    flow.lastSeen = now;
    this.flows.touch(flow);
  }

  private sweepNow = 0;
  private readonly sweepFlow = (flow: Flow): void => {
    if (flow.offloadSlot >= 0 && (this.offloads as FlowOffload).sync(flow)) this.offloadedActive(flow, this.sweepNow);
    this.settle(flow);
    // A flow not answered yet is reported once answered (with the server's MAC, under the key its
    // later deltas use), when it ends, or once it has waited UNANSWERED_REPORT_MS (one-way traffic):
    // so a SYN flood costs the sweep no conversation inserts either.
    if (this.observations === null || (flow.embryonic && this.sweepNow - flow.firstSeen < UNANSWERED_REPORT_MS)) return;
    this.observations.flowLive(flow, flow.inspected || flow.observed ? this.appCountsOf(flow) : null);
  };

  /** What the inspector saw on `flow` (requests per function name), null when it is not inspected. Not for the packet path. */
  appLayerOf(flow: Flow): { protocol: string; functions: Record<string, number> } | null {
    const inspection = flow.inspected ? this.inspections.get(flow) : undefined;
    if (inspection === undefined) return null;
    const inspector = inspection.inspector;
    return { protocol: inspector.protocol, functions: countsByFunctionName(inspector.functionCounts(inspection.state), (code) => inspector.functionName(code)) };
  }

  /**
   * Collect observations into `sink` from now on (null: stop). Only then are flows without a block
   * observed and identity frames decoded.
   */
  setObservations(sink: ObservationSink | null): void {
    this.observations = sink;
    const answer = sink === null ? null : (adu: Uint8Array, offset: number, length: number) => this.identityAnswer(adu, offset, length);
    for (const inspector of this.inspectors) inspector.identityAnswer = answer;
    for (const observer of this.observers) observer.identityAnswer = answer;
  }

  /** What an inspector or observer counted on `flow` so far, null when neither has it. Not for the packet path. */
  appCountsOf(flow: Flow): AppCounts | null {
    if (flow.inspected) {
      const inspection = this.inspections.get(flow);
      if (inspection === undefined) return null;
      const inspector = inspection.inspector;
      return { protocol: inspector.protocol, functionName: (code) => inspector.functionName(code), counts: inspector.functionCounts(inspection.state),
        units: inspector.unitsSeen(inspection.state) };
    }
    if (flow.observed) {
      const observation = this.observedFlows.get(flow);
      if (observation === undefined) return null;
      const observer = observation.observer;
      return { protocol: observer.protocol, functionName: (code) => observer.functionName(code), counts: observer.functionCounts(observation.state),
        units: observer.unitsSeen(observation.state) };
    }
    return null;
  }

  private settle(flow: Flow): void {
    const packets = flow.packetsOut + flow.packetsIn;
    if (packets === flow.settledPackets) return;
    const bytes = flow.bytesOut + flow.bytesIn;
    this.ruleCounters.add(flow.ruleIndex, packets - flow.settledPackets, bytes - flow.settledBytes, flow.settledPackets === 0 ? 1 : 0);
    flow.settledPackets = packets;
    flow.settledBytes = bytes;
  }

  /**
   * Decide one frame that arrived on `side` at `now` (ms). The result is this engine's one instance,
   * valid until the next call; on Verdict.Reject its answer goes back out of `side`. `segments`: the
   * wire segments a GSO super-frame stands for (the port's metadata), so flow and rule byte counts
   * stay what the wire carried: each segment after the first repeats the headers.
   */
  process(frame: Uint8Array, length: number, side: Side, now: number, segments = 1): PacketResult {
    this.segments = segments;
    const r = this.result;
    r.verdict = Verdict.Forward;
    r.rule = NO_RULE;
    r.reason = NO_REASON;
    r.monitored = false;
    r.rejectSuppressed = false;
    r.inspectorReason = null;
    r.onwardLength = 0;
    this.run(frame, length, side, now);
    this.counters[side].frame(length, r, this.pkt.error);
    return r;
  }

  /**
   * The first steps of process() on a frame already decided (a port's last), changing nothing that
   * outlives the call: the frame is decoded into the packet structure every frame uses, and its flow
   * looked up without refreshing it. Busy polling calls this while the ports are idle so that the
   * code and data the next frame needs are still in the CPU's caches: on this 2-core VM the host
   * evicts them within 1-5 ms even from a vCPU that spins (bench/README.md, "keeping warm").
   */
  warm(frame: Uint8Array, length: number): void {
    const pkt = this.pkt;
    if (length === 0 || decodeFrame(frame, length, pkt) !== 0 || pkt.family === Family.None) return;
    let sport = 0;
    let dport = 0;
    if (pkt.hasPorts) {
      sport = pkt.srcPort;
      dport = pkt.dstPort;
    } else if ((pkt.proto === Proto.ICMP || pkt.proto === Proto.ICMPV6) && isEcho(pkt)) {
      sport = dport = pkt.icmpId;
    } else {
      return;
    }
    keyFromPacket(this.key, pkt, sport, dport, this.flows.seed);
    this.flows.peek(this.key);
  }

  private run(frame: Uint8Array, length: number, side: Side, now: number): void {
    const pkt = this.pkt;
    if (decodeFrame(frame, length, pkt) !== 0) return this.drop(DropReason.Decode);
    // Before anything trusts the source address: ARP, neighbour discovery and fragments too.
    if (this.bindings && this.spoofed(frame, side, length, now)) return this.drop(DropReason.SpoofedSource);
    if (pkt.family === Family.None) {
      if (this.observations !== null) this.observeL2(frame, side, now);
      // ARP must pass for anything to work; other EtherTypes only when the policy names them.
      if (pkt.etherType === EtherType.ARP || this.policy.l2Allow[pkt.etherType] === 1) return;
      return this.drop(DropReason.L2);
    }
    if (pkt.proto === Proto.ICMPV6 && isNeighbourDiscovery(pkt.icmpType)) return;
    if (pkt.isFragment && pkt.fragOffset > 0) return this.laterFragment(side, length);

    this.decide(frame, side, length, now);
    const r = this.result;
    if (pkt.isFragment && r.verdict === Verdict.Forward) {
      this.fragments.remember(pkt, side, r.rule, wouldDrop(this.policy, r.rule), this.timeouts.fragment);
    }
  }

  /** detect/: does the frame claim a bound address from another MAC? Tells the observer if so. */
  private spoofed(frame: Uint8Array, side: Side, length: number, now: number): boolean {
    const pkt = this.pkt;
    const bound = spoofedBinding(this.policy, pkt, frame);
    if (bound < 0) return false;
    if (this.observer !== null) this.observer.spoofed(pkt, sourceMacOf(pkt, frame), bound, side, length, now);
    return true;
  }

  private decide(frame: Uint8Array, side: Side, length: number, now: number): void {
    const pkt = this.pkt;
    const proto = pkt.proto;
    let sport = 0;
    let dport = 0;
    if (pkt.hasPorts) {
      sport = pkt.srcPort;
      dport = pkt.dstPort;
      // Client DHCP messages are identity frames; every one is looked at (they all share a flow key).
      if (dport === DHCP_SERVER_PORT && this.observations !== null && proto === Proto.UDP) this.observeDhcp(frame, side, now);
    } else if (proto === Proto.ICMP || proto === Proto.ICMPV6) {
      if (isEcho(pkt)) {
        sport = dport = pkt.icmpId;
      } else {
        if (isIcmpError(pkt) && this.quotesAllowedFlow(side)) return;
        // Other ICMP (and errors about nothing we track) is judged packet by packet, without a flow.
        return this.judgeAlone(frame, side, length, matchPacket(this.policy, pkt, false), now);
      }
    } else if (proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP) {
      // A first fragment too short to carry ports: the decoder refuses those, so this is unreachable.
      return this.drop(DropReason.Decode);
    }

    const key = this.key;
    keyFromPacket(key, pkt, sport, dport, this.flows.seed);
    const flow = this.flows.find(key);
    if (flow !== null) {
      if (!isNewSynOnClosedFlow(flow, pkt.tcpFlags)) return this.continueFlow(frame, flow, side, length, now);
      // The 4-tuple is being reused for a new connection: that one is judged on its own.
      this.flows.remove(flow, 'closed');
    }
    this.startFlow(frame, side, length, now);
  }

  private continueFlow(frame: Uint8Array, flow: Flow, side: Side, length: number, now: number): void {
    const fromInitiator = this.key.srcIsA === flow.initiatorIsA;
    const expectedSide = fromInitiator ? flow.initiatorSide : otherSide(flow.initiatorSide);
    if (side !== expectedSide) return this.drop(DropReason.WrongPort);

    const r = this.result;
    if (flow.generation !== this.generation && !this.redecide(flow)) {
      this.flows.remove(flow, 'cut');
      r.rule = flow.ruleIndex;
      return this.drop(DropReason.FlowCut);
    }
    flow.lastSeen = now;
    if (fromInitiator) {
      if (flow.packetsOut === 0 && this.observations !== null) this.firstFrom(frame, flow, true, side, now);
      flow.packetsOut++;
      flow.bytesOut += this.wireBytes(length);
    } else {
      // The responder's first answer: the server is sighted here, once per flow.
      if (flow.packetsIn === 0 && this.observations !== null) this.firstFrom(frame, flow, false, side, now);
      flow.packetsIn++;
      flow.bytesIn += this.wireBytes(length);
    }
    r.rule = flow.ruleIndex;
    const pkt = this.pkt;
    if (flow.proto === Proto.TCP) {
      if (trackTcp(flow, pkt.tcpFlags, pkt.tcpSeq, fromInitiator)) this.flows.retime(flow, this.timeouts.tcp(flow.tcpState));
      if (flow.embryonic && handshakeDone(flow, pkt.tcpFlags, pkt.tcpAck, fromInitiator)) this.flows.assure(flow);
      // A closing connection comes back whole: the kernel passes FIN and RST here, not what follows them.
      if (flow.offloadSlot >= 0 && (pkt.tcpFlags & (TcpFlag.FIN | TcpFlag.RST)) !== 0) (this.offloads as FlowOffload).withdraw(flow);
    } else if (flow.embryonic && flow.packetsIn > 0) {
      // UDP, ICMP echo, other: answered once the responder sent something.
      this.flows.assure(flow);
    }
    if (flow.wouldDrop) {
      if (this.observer !== null) this.observer.deniedInFlow(flow, length, now);
      if (flow.observed) this.observe(frame, flow, fromInitiator, side, now);
      return forwardInstead(r);
    }
    if (flow.inspected) this.inspect(frame, flow, fromInitiator, side, now);
    else if (flow.observed) this.observe(frame, flow, fromInitiator, side, now);
    else if (this.offloads !== null && (flow.offloadedDirs & (fromInitiator ? 1 : 2)) === 0 && decidedForGood(flow)) {
      this.offloads.offload(flow, frame, length, side, fromInitiator);
    }
  }

  /** After a reload: does the new policy still allow this flow? Updates the flow (and its inspection) if so. */
  private redecide(flow: Flow): boolean {
    const rule = matchFlow(this.policy, flow);
    flow.ruleIndex = rule;
    flow.generation = this.generation;
    // Its kernel entries are stale since policyChanged(): offloaded again below the new rule, if at all.
    flow.offloadedDirs = 0;
    if (allows(this.policy, rule)) {
      flow.wouldDrop = false;
    } else if (this.monitor) {
      flow.wouldDrop = true;
    } else {
      return false;
    }
    this.reinspect(flow);
    return true;
  }

  /**
   * A reloaded flow's inspection follows its rule: the same inspector decides by the new block from
   * now on; a rule without a block ends it; a rule that gained one starts it mid-stream.
   */
  private reinspect(flow: Flow): void {
    const wanted = flow.wouldDrop ? null : this.ruleInspections[flow.ruleIndex];
    const current = flow.inspected ? this.inspections.get(flow) : undefined;
    if (current !== undefined && wanted !== null && current.inspector === wanted.inspector) {
      current.inspector.rebind(current.state, wanted.block, this.monitor);
      return;
    }
    if (current !== undefined) this.endInspection(flow);
    if (wanted !== null && flow.proto === Proto.TCP && wanted.inspector.claims(flow)) {
      if (flow.observed) this.endObservation(flow);
      this.startInspection(flow, wanted, true);
    } else if (!flow.inspected && !flow.observed) {
      this.startObservation(flow);
    }
  }

  private startFlow(frame: Uint8Array, side: Side, length: number, now: number): void {
    const pkt = this.pkt;
    const policy = this.policy;
    const timeouts = this.timeouts;
    let ttl: TtlOption;
    let initiatorIsSource = true;
    let tcpState: number = TcpState.None;
    let rule: number;

    if (pkt.proto === Proto.TCP) {
      const flags = pkt.tcpFlags;
      if (isOpeningSyn(flags)) {
        rule = matchPacket(policy, pkt, false);
        tcpState = TcpState.Opening;
        ttl = timeouts.tcpOpening;
      } else if ((policy.flow.pickupEstablished || now < this.pickupUntil) && mayPickUp(flags)) {
        // Mid-stream after a restart: allowed if either endpoint may have opened it.
        rule = matchPacket(policy, pkt, false);
        if (!allows(policy, rule)) {
          const reverse = matchPacket(policy, pkt, true);
          if (allows(policy, reverse)) {
            rule = reverse;
            initiatorIsSource = false;
          }
        }
        tcpState = TcpState.Established;
        ttl = timeouts.tcpEstablished;
      } else {
        return this.drop(DropReason.TcpNoFlow);
      }
    } else {
      if (isEchoReply(pkt)) {
        // An echo reply with no request seen: unsolicited, judged on its own without starting a flow.
        return this.judgeAlone(frame, side, length, matchPacket(policy, pkt, false), now);
      }
      rule = matchPacket(policy, pkt, false);
      ttl = pkt.proto === Proto.UDP ? timeouts.udp : pkt.proto === Proto.ICMP || pkt.proto === Proto.ICMPV6 ? timeouts.icmp : timeouts.other;
    }

    this.applyRule(frame, side, length, rule, now);
    if (this.result.verdict !== Verdict.Forward) {
      this.ruleCounters.add(rule, 1, this.wireBytes(length), 0);
      return;
    }
    // Tracked: the flow counts this packet and its rule's flow count (see ruleTotals).
    const key = this.key;
    const flow = this.flows.insert(key, ttl, now);
    flow.initiatorIsA = initiatorIsSource ? key.srcIsA : !key.srcIsA;
    flow.initiatorSide = initiatorIsSource ? side : otherSide(side);
    flow.ruleIndex = rule;
    flow.generation = this.generation;
    flow.wouldDrop = !allows(policy, rule);
    flow.tcpState = tcpState;
    flow.pickedUp = tcpState === TcpState.Established;
    if (initiatorIsSource) {
      flow.packetsOut = 1;
      flow.bytesOut = this.wireBytes(length);
    } else {
      flow.packetsIn = 1;
      flow.bytesIn = this.wireBytes(length);
    }
    if (this.observer !== null && policy.rules[rule].log) this.observer.flowStarted(flow, now);
    if (this.observations !== null) this.flowBegun(frame, flow, initiatorIsSource, side, now);
    const inspection = this.ruleInspections[rule];
    if (inspection !== null && !flow.wouldDrop && inspection.inspector.claims(flow)) {
      this.startInspection(flow, inspection, flow.pickedUp);
      // A picked-up flow's first segment may already carry data.
      this.inspect(frame, flow, initiatorIsSource, side, now);
    } else if (this.observations !== null && this.startObservation(flow)) {
      this.observe(frame, flow, initiatorIsSource, side, now);
    }
  }

  // --- observations (events/observations.ts): only while a sink is set, never per established-flow packet

  /** A new flow's first frame: its sender's MAC on the flow, and a sighting (a denied one was sighted already). */
  private flowBegun(frame: Uint8Array, flow: Flow, fromInitiator: boolean, side: Side, now: number): void {
    const mac = read48(frame, ETHERNET_SOURCE);
    if (fromInitiator) flow.clientMac = mac;
    else flow.serverMac = mac;
    if (!flow.wouldDrop) this.sightSource(mac, side, now);
  }

  /** An end's first frame on a flow that began with the other end's: its MAC on the flow, and a sighting. */
  private firstFrom(frame: Uint8Array, flow: Flow, fromInitiator: boolean, side: Side, now: number): void {
    const mac = read48(frame, ETHERNET_SOURCE);
    if (fromInitiator) flow.clientMac = mac;
    else flow.serverMac = mac;
    this.sightSource(mac, side, now);
  }

  /** The frame being processed, sighted by its IP source. */
  private sightSource(mac: number, side: Side, now: number): void {
    const pkt = this.pkt;
    (this.observations as ObservationSink).sighting(pkt.family, pkt.src4, pkt.src6, mac, pkt.vlanOuter, side, now);
  }

  /** ARP senders are sighted; LLDP frames are identity frames. Whatever the frame's verdict. */
  private observeL2(frame: Uint8Array, side: Side, now: number): void {
    const pkt = this.pkt;
    const sink = this.observations as ObservationSink;
    if (pkt.etherType === EtherType.ARP) {
      if (pkt.arpOp === 0) return;
      // A probe (sender 0.0.0.0, RFC 5227) claims no address yet.
      const family = pkt.arpSenderIp === 0 ? Family.None : Family.V4;
      sink.sighting(family, pkt.arpSenderIp, pkt.src6, pkt.arpSenderMac, pkt.vlanOuter, side, now);
    } else if (pkt.etherType === EtherType.LLDP) {
      if (!sink.identityAllowed()) return;
      const lldp = this.lldp;
      if (decodeLldp(frame, pkt.l3Offset, pkt.length, lldp) !== LldpError.None) return sink.identityFailed(lldpErrorNames[lldp.error]);
      sink.identity('lldp', lldpFields(frame, lldp), read48(frame, ETHERNET_SOURCE), Family.None, 0, pkt.src6, pkt.vlanOuter, side, now);
    }
  }

  /** A DHCP message to a server: what a client says about itself (replies are ignored). */
  private observeDhcp(frame: Uint8Array, side: Side, now: number): void {
    const pkt = this.pkt;
    if (pkt.family !== Family.V4 || pkt.fragOffset !== 0 || pkt.moreFragments) return;
    const sink = this.observations as ObservationSink;
    if (!sink.identityAllowed()) return;
    const dhcp = this.dhcp;
    const error = decodeDhcp(frame, pkt.l4Offset + 8, pkt.l4Offset + 8 + pkt.l4PayloadLength, dhcp);
    if (error === DhcpError.NotRequest) return;
    if (error !== DhcpError.None) return sink.identityFailed(dhcpErrorNames[error]);
    // The client's own MAC is chaddr (a relay forwards with its own Ethernet source).
    sink.identity('dhcp', dhcpFields(frame, dhcp), dhcp.clientMac, pkt.src4 === 0 ? Family.None : Family.V4, pkt.src4, pkt.src6,
      pkt.vlanOuter, side, now);
  }

  /** A server's device identification answer, spotted by an inspector or observer in the frame being processed. */
  private identityAnswer(adu: Uint8Array, offset: number, length: number): void {
    const sink = this.observations;
    if (sink === null || !sink.identityAllowed()) return;
    const answer = this.deviceId;
    if (decodeDeviceId(adu, offset, length, answer) !== DeviceIdError.None) return sink.identityFailed(deviceIdErrorNames[answer.error]);
    const pkt = this.pkt;
    sink.identity('modbus', deviceIdFields(adu, answer), read48(this.currentFrame, ETHERNET_SOURCE), pkt.family, pkt.src4, pkt.src6,
      pkt.vlanOuter, this.currentSide, this.currentNow);
  }

  /** Start observing a flow without a block when an observer takes it (TCP, by the server's port). */
  private startObservation(flow: Flow): boolean {
    if (this.observations === null || flow.proto !== Proto.TCP) return false;
    const serverPort = flow.initiatorIsA ? flow.portB : flow.portA;
    for (const observer of this.observers) {
      if (!observer.claims(flow, serverPort)) continue;
      flow.observed = true;
      this.observedFlows.set(flow, { observer, state: observer.open(flow) });
      return true;
    }
    return false;
  }

  private endObservation(flow: Flow): void {
    flow.observed = false;
    const observation = this.observedFlows.get(flow);
    if (observation === undefined) return;
    this.observedFlows.delete(flow);
    observation.observer.close(observation.state);
  }

  /** Every segment of an observed flow goes to its observer; its verdict stays what it was. */
  private observe(frame: Uint8Array, flow: Flow, fromInitiator: boolean, side: Side, now: number): void {
    const observation = this.observedFlows.get(flow);
    if (observation === undefined) return;
    this.fillSegment(frame, fromInitiator, side, now);
    observation.observer.observe(observation.state, this.segment);
  }

  private fillSegment(frame: Uint8Array, fromInitiator: boolean, side: Side, now: number): void {
    const pkt = this.pkt;
    const segment = this.segment;
    segment.frame = frame;
    segment.offset = pkt.l4Offset + (frame[pkt.l4Offset + 12] >> 4) * 4;
    segment.length = pkt.l4PayloadLength;
    segment.fromInitiator = fromInitiator;
    segment.seq = pkt.tcpSeq;
    segment.ack = pkt.tcpAck;
    segment.flags = pkt.tcpFlags;
    this.currentFrame = frame;
    this.currentSide = side;
    this.currentNow = now;
  }

  /** Bytes on the wire of the frame being processed: a super-frame's later segments repeat its headers. */
  private wireBytes(length: number): number {
    const segments = this.segments;
    return segments === 1 ? length : length + (segments - 1) * (length - this.pkt.l4PayloadLength);
  }

  /** A packet that starts no flow: count it against `rule` and act on it. */
  private judgeAlone(frame: Uint8Array, side: Side, length: number, rule: number, now: number): void {
    this.ruleCounters.add(rule, 1, this.wireBytes(length), 0);
    this.applyRule(frame, side, length, rule, now);
  }

  /** Act on `rule` for this packet (monitor mode forwards what it would drop); the caller counts it. */
  private applyRule(frame: Uint8Array, side: Side, length: number, rule: number, now: number): void {
    this.result.rule = rule;
    const action = this.policy.ruleActions[rule];
    if (action === Action.Allow) return;
    if (this.observer !== null) this.observer.denied(this.pkt, rule, length, now);
    if (this.observations !== null) this.sightSource(read48(frame, ETHERNET_SOURCE), side, now);
    if (action === Action.Reject && !this.monitor) return this.answer(frame, now);
    this.drop(DropReason.Policy);
  }

  /** respond/: answer the packet (RST or ICMP prohibited) within the reject limit, else drop it. */
  private answer(frame: Uint8Array, now: number): void {
    const r = this.result;
    if (!this.rejectLimit.take(now)) {
      r.rejectSuppressed = true;
      return this.drop(DropReason.Policy);
    }
    if (!this.reject.build(frame, this.pkt)) return this.drop(DropReason.Policy);
    r.verdict = Verdict.Reject;
    r.reason = DropReason.Policy;
    r.answerLength = this.reject.length;
  }

  /** ICMP error quoting a packet of a flow we forward: the error belongs to that flow. */
  private quotesAllowedFlow(side: Side): boolean {
    const pkt = this.pkt;
    const q = pkt.quoted;
    if (!q.valid || q.family !== pkt.family) return false;
    let sport = 0;
    let dport = 0;
    if (q.hasPorts) {
      sport = q.srcPort;
      dport = q.dstPort;
    } else if (q.icmpType >= 0) {
      sport = dport = q.icmpId;
    }
    const key = this.key;
    keyFromQuoted(key, q, (pkt.vlanOuter << 12) | pkt.vlanInner, sport, dport, this.flows.seed);
    const flow = this.flows.find(key);
    if (flow === null || flow.wouldDrop || flow.generation !== this.generation) return false;
    // The quoted packet travelled towards the sender of the error, i.e. it left through `side`.
    const quotedFromInitiator = key.srcIsA === flow.initiatorIsA;
    const quotedArrivedOn = quotedFromInitiator ? flow.initiatorSide : otherSide(flow.initiatorSide);
    if (quotedArrivedOn === side) return false;
    this.result.rule = flow.ruleIndex;
    return true;
  }

  /** Fragments after the first carry no ports: they follow the verdict of their first fragment. */
  private laterFragment(side: Side, length: number): void {
    const first = this.fragments.find(this.pkt);
    if (first === null || first.side !== side) return this.drop(DropReason.FragmentNoFirst);
    if (first.rule !== NO_RULE) {
      this.result.rule = first.rule;
      this.ruleCounters.add(first.rule, 1, length, 0);
    }
    if (first.wouldDrop) forwardInstead(this.result);
  }

  private startInspection(flow: Flow, rule: RuleInspection, midStream: boolean): void {
    const counters = this.inspectCounters[this.inspectors.indexOf(rule.inspector)];
    counters.flowStarted();
    flow.inspected = true;
    this.inspections.set(flow, { inspector: rule.inspector, state: rule.inspector.open(flow, rule.block, midStream, this.monitor), counters });
  }

  private endInspection(flow: Flow): void {
    flow.inspected = false;
    const inspection = this.inspections.get(flow);
    if (inspection === undefined) return;
    this.inspections.delete(flow);
    inspection.counters.flowEnded();
    inspection.inspector.close(inspection.state);
  }

  /**
   * inspect/: every segment of a claimed flow goes to its inspector (pure ACKs too: they tell it where
   * the streams are). A hold drops the segment for TCP to resend; a violation is a policy decision
   * under the flow's rule: counted, reported, and answered as its block says (in monitor mode
   * forwarded).
   */
  private inspect(frame: Uint8Array, flow: Flow, fromInitiator: boolean, side: Side, now: number): void {
    const inspection = this.inspections.get(flow);
    if (inspection === undefined) return;
    const pkt = this.pkt;
    this.fillSegment(frame, fromInitiator, side, now);
    const segment = this.segment;
    const out = this.inspectOutcome;
    const verdict = inspection.inspector.inspect(inspection.state, segment, out);
    if (verdict === InspectVerdict.Forward) return;
    const r = this.result;
    r.inspectorReason = out.reason;
    if (verdict === InspectVerdict.Hold) {
      // Not a decision about the traffic: also monitor mode holds it, so inspection stays exact.
      inspection.counters.held(out.reasonIndex);
      r.reason = DropReason.InspectHeld;
      r.verdict = Verdict.Drop;
      return;
    }
    inspection.counters.violation(out.reasonIndex);
    if (!out.followUp) {
      this.ruleCounters.violation(flow.ruleIndex);
      if (this.observer !== null) this.report(flow, inspection.inspector, verdict, now);
    }
    if (this.monitor || verdict === InspectVerdict.Drop) return this.drop(DropReason.Inspect);
    if (!this.rejectLimit.take(now)) {
      r.rejectSuppressed = true;
      return this.drop(DropReason.Inspect);
    }
    const reject = this.reject;
    const built = verdict === InspectVerdict.Answer
      ? reject.buildAnswer(frame, pkt, out.reply, out.replyLength, out.replySeq, out.replyAck, out.onwardSeq)
      : reject.buildResetBothWays(frame, pkt, out.onwardSeq);
    if (!built) return this.drop(DropReason.Inspect);
    r.verdict = Verdict.Reject;
    r.reason = DropReason.Inspect;
    r.answerLength = reject.length;
    r.onwardLength = reject.onwardLength;
    // Both ends are told the connection is over: what is still in flight may pass until the closing timeout.
    if (trackTcp(flow, TcpFlag.RST, 0, fromInitiator)) this.flows.retime(flow, this.timeouts.tcp(flow.tcpState));
  }

  /** Tell the observer about the violation in the inspection outcome. */
  private report(flow: Flow, inspector: AppInspector, verdict: InspectVerdict, now: number): void {
    const out = this.inspectOutcome;
    const v = this.violationRecord;
    v.protocol = inspector.protocol;
    v.reason = out.reason;
    v.function = out.function;
    v.functionName = out.function < 0 ? '' : inspector.functionName(out.function);
    v.unit = out.unit;
    v.start = out.start;
    v.quantity = out.quantity;
    v.action = this.monitor ? 'monitor' : verdict === InspectVerdict.Drop ? 'drop' : verdict === InspectVerdict.Answer ? 'exception' : 'reset';
    (this.observer as TrafficObserver).violation(flow, v, now);
  }

  /** Not forwarded for `reason`; in monitor mode counted as would-drop and forwarded. */
  private drop(reason: DropReason): void {
    const r = this.result;
    r.reason = reason;
    r.verdict = Verdict.Drop;
    if (this.monitor) forwardInstead(r);
  }
}

/**
 * A one-way UDP flow (a sensor's stream, syslog, traps: never answered) is offloaded once its
 * sender has sent this many datagrams: a flood of spoofed one-datagram flows never gets there.
 */
export const ONE_WAY_OFFLOAD_PACKETS = 16;

/**
 * Of a flow the policy allows (not monitor mode's would-drop) and no inspector or observer reads
 * (continueFlow only asks for those): nothing about its further frames is left for the engine to
 * decide once it is answered (UDP also after ONE_WAY_OFFLOAD_PACKETS one way; ICMP echo too), for
 * TCP established without a FIN yet (the kernel hands FIN, SYN and RST here anyway). Its frames may
 * then take the kernel fast path; a policy change, a FIN or RST, or the flow's end bring it back.
 */
function decidedForGood(flow: Flow): boolean {
  if (flow.proto === Proto.UDP) return !flow.embryonic || flow.packetsOut >= ONE_WAY_OFFLOAD_PACKETS;
  // An echo flow (the only ICMP the table tracks): once answered.
  if (flow.proto === Proto.ICMP || flow.proto === Proto.ICMPV6) return !flow.embryonic;
  return flow.proto === Proto.TCP && !flow.embryonic && flow.tcpState === TcpState.Established && !flow.finFromInitiator &&
    !flow.finFromResponder;
}

function isEcho(pkt: Packet): boolean {
  const t = pkt.icmpType;
  return pkt.proto === Proto.ICMP ? t === 8 || t === 0 : t === 128 || t === 129;
}

function isEchoReply(pkt: Packet): boolean {
  return (pkt.proto === Proto.ICMP && pkt.icmpType === 0) || (pkt.proto === Proto.ICMPV6 && pkt.icmpType === 129);
}

/** Router/neighbour solicitation and advertisement, redirect (RFC 4861) and MLD (RFC 2710, 3810). */
function isNeighbourDiscovery(type: number): boolean {
  return (type >= 133 && type <= 137) || (type >= 130 && type <= 132) || type === 143;
}
