// The verdict for one frame: decode → flow → detect → respond. Shared by the live bridge, offline
// replay and the benchmark, so all three run exactly the same logic. Nothing here allocates per packet.

import { decodeFrame } from './decode/decoder';
import { isIcmpError } from './decode/icmp';
import { Packet } from './decode/packet';
import { EtherType, Family, Proto, TcpFlag } from '../wire/protocols';
import { DropReason, PortCounter, PortCounters, RuleCounters } from './counters';
import { Flow, TcpState } from './flow/flow';
import { FlowKey, keyFromPacket, keyFromQuoted } from './flow/flow-key';
import { FlowTable, type TtlOption } from './flow/flow-table';
import { RejectBuilder } from './respond/reject';
import { Action, type CompiledPolicy } from '../policy/types';
import type { TrafficObserver } from './events/traffic-events';

export const Verdict = { Forward: 0, Drop: 1, Reject: 2 } as const;

/** Appliance ports. Rules are written by address; the port only pins which way a flow may travel. */
export const Side = { Inside: 0, Outside: 1 } as const;

/** Rejects answered per second at most (the rest are dropped silently), so we never amplify a flood. */
const REJECT_RATE = 100;
const FRAGMENT_TABLE_SIZE = 8192;
const NO_RULE = -1;

interface Timeouts {
  tcpOpening: TtlOption;
  tcpEstablished: TtlOption;
  tcpClosing: TtlOption;
  udp: TtlOption;
  icmp: TtlOption;
  other: TtlOption;
  fragment: TtlOption;
}

export class Engine {
  readonly pkt = new Packet();
  readonly counters = [new PortCounters(), new PortCounters()];
  readonly flows: FlowTable;
  readonly fragments: FlowTable;
  readonly reject = new RejectBuilder();
  policy: CompiledPolicy;
  generation: number;
  /** Settled counts only: read them through ruleTotals(). */
  private ruleCounters: RuleCounters;
  /** Rule that decided the last frame, or -1 when no rule was involved (L2, decode error, state). */
  lastRule = NO_RULE;
  /** DropReason of the last frame when it was not forwarded. */
  lastDrop = 0;
  /** Set by the dataplane when events are collected; null costs nothing on the packet path. */
  observer: TrafficObserver | null = null;

  private readonly key = new FlowKey();
  private timeouts: Timeouts;
  private rejectTokens = REJECT_RATE;
  private rejectRefilledAt = 0;

  constructor(policy: CompiledPolicy, generation: number) {
    this.policy = policy;
    this.generation = generation;
    this.ruleCounters = new RuleCounters(policy.rules.length);
    this.timeouts = timeoutsFor(policy);
    this.flows = new FlowTable(policy.flow.maxFlows, (flow, reason) => {
      this.settle(flow);
      if (this.observer !== null) this.observer.flowEnded(flow, reason);
    });
    this.fragments = new FlowTable(FRAGMENT_TABLE_SIZE);
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
    this.timeouts = timeoutsFor(policy);
    this.flows.resize(policy.flow.maxFlows);
  }

  /**
   * Per-rule packets, bytes and flows so far. A tracked flow counts its own packets on the packet
   * path (its record is in the CPU cache anyway, the rule's counters usually are not) and adds them to
   * its rule's counters when it ends, when the policy changes, and here: this walks every live flow,
   * so it is for once-a-second statistics, not the packet path.
   */
  ruleTotals(): RuleCounters {
    for (const flow of this.flows.flows()) this.settle(flow);
    return this.ruleCounters;
  }

  private settle(flow: Flow): void {
    const packets = flow.packetsOut + flow.packetsIn;
    if (packets === flow.settledPackets) return;
    const bytes = flow.bytesOut + flow.bytesIn;
    this.ruleCounters.add(flow.ruleIndex, packets - flow.settledPackets, bytes - flow.settledBytes, flow.settledPackets === 0 ? 1 : 0);
    flow.settledPackets = packets;
    flow.settledBytes = bytes;
  }

  /** Decide one frame that arrived on `side`. On Verdict.Reject, `this.reject` holds the answer to send back. */
  process(frame: Uint8Array, length: number, side: number, now: number): number {
    const pkt = this.pkt;
    const port = this.counters[side].port;
    port[PortCounter.RxPackets]++;
    port[PortCounter.RxBytes] += length;
    this.lastRule = NO_RULE;

    const error = decodeFrame(frame, length, pkt);
    if (error !== 0) {
      this.counters[side].decodeErrors[error]++;
      return this.drop(side, DropReason.Decode);
    }
    if (pkt.family === Family.None) {
      // ARP must pass for anything to work; other EtherTypes only when the policy names them.
      if (pkt.etherType === EtherType.ARP || this.policy.l2Allow[pkt.etherType] === 1) return this.forward(side);
      return this.drop(side, DropReason.L2);
    }
    if (pkt.proto === Proto.ICMPV6 && isNeighbourDiscovery(pkt.icmpType)) return this.forward(side);
    if (pkt.isFragment && pkt.fragOffset > 0) return this.laterFragment(side, length);

    const verdict = this.decide(frame, side, length, now);
    if (pkt.isFragment && verdict === Verdict.Forward) this.rememberFirstFragment(side, now);
    return verdict;
  }

  private decide(frame: Uint8Array, side: number, length: number, now: number): number {
    const pkt = this.pkt;
    const proto = pkt.proto;
    let sport = 0;
    let dport = 0;
    if (pkt.hasPorts) {
      sport = pkt.srcPort;
      dport = pkt.dstPort;
    } else if (proto === Proto.ICMP || proto === Proto.ICMPV6) {
      if (isEcho(pkt)) {
        sport = dport = pkt.icmpId;
      } else {
        if (isIcmpError(pkt) && this.quotesAllowedFlow(side)) return this.forward(side);
        // Other ICMP (and errors about nothing we track) is judged packet by packet, without a flow.
        return this.judgeAlone(frame, side, length, this.match(pkt.family, false), now);
      }
    } else if (proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP) {
      // A first fragment too short to carry ports: the decoder refuses those, so this is unreachable.
      return this.drop(side, DropReason.Decode);
    }

    const key = this.key;
    keyFromPacket(key, pkt, sport, dport, this.flows.seed);
    const flow = this.flows.find(key);
    if (flow !== null) {
      if (!isNewSynOnClosedFlow(flow, pkt.tcpFlags)) return this.continueFlow(flow, side, length, now);
      // The 4-tuple is being reused for a new connection: that one is judged on its own.
      this.flows.remove(flow, 'closed');
    }
    return this.startFlow(frame, side, length, now);
  }

  private continueFlow(flow: Flow, side: number, length: number, now: number): number {
    const fromInitiator = this.key.srcIsA === flow.initiatorIsA;
    const expectedSide = fromInitiator ? flow.initiatorSide : 1 - flow.initiatorSide;
    if (side !== expectedSide) return this.drop(side, DropReason.WrongPort);

    if (flow.generation !== this.generation && !this.redecide(flow)) {
      this.flows.remove(flow, 'cut');
      this.lastRule = flow.ruleIndex;
      return this.drop(side, DropReason.FlowCut);
    }
    flow.lastSeen = now;
    if (fromInitiator) {
      flow.packetsOut++;
      flow.bytesOut += length;
    } else {
      flow.packetsIn++;
      flow.bytesIn += length;
    }
    this.lastRule = flow.ruleIndex;
    if (flow.proto === Proto.TCP) this.trackTcp(flow, fromInitiator);
    if (flow.wouldDrop) {
      if (this.observer !== null) this.observer.deniedInFlow(flow, length, now);
      return this.monitorForward(side);
    }
    return this.forward(side);
  }

  /** After a reload: does the new policy still allow this flow? Updates the flow if so. */
  private redecide(flow: Flow): boolean {
    const i = flow.initiatorIsA;
    let rule: number;
    if (flow.family === Family.V4) {
      rule = this.policy.match4(i ? flow.a4 : flow.b4, i ? flow.b4 : flow.a4, flow.proto, flowRuleKey(flow));
    } else {
      rule = this.policy.match6(i ? flow.a6 : flow.b6, i ? flow.b6 : flow.a6, flow.proto, flowRuleKey(flow));
    }
    const allowed = this.policy.ruleActions[rule] === Action.Allow;
    flow.ruleIndex = rule;
    flow.generation = this.generation;
    if (allowed) {
      flow.wouldDrop = false;
      return true;
    }
    if (this.policy.mode === 'monitor') {
      flow.wouldDrop = true;
      return true;
    }
    return false;
  }

  private startFlow(frame: Uint8Array, side: number, length: number, now: number): number {
    const pkt = this.pkt;
    const timeouts = this.timeouts;
    let ttl: TtlOption;
    let initiatorIsSource = true;
    let tcpState: number = TcpState.None;
    let rule: number;

    if (pkt.proto === Proto.TCP) {
      const flags = pkt.tcpFlags;
      if ((flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN) {
        rule = this.match(pkt.family, false);
        tcpState = TcpState.Opening;
        ttl = timeouts.tcpOpening;
      } else if (this.policy.flow.pickupEstablished && (flags & TcpFlag.RST) === 0) {
        // Mid-stream after a restart: allowed if either endpoint may have opened it.
        rule = this.match(pkt.family, false);
        if (this.policy.ruleActions[rule] !== Action.Allow) {
          const reverse = this.match(pkt.family, true);
          if (this.policy.ruleActions[reverse] === Action.Allow) {
            rule = reverse;
            initiatorIsSource = false;
          }
        }
        tcpState = TcpState.Established;
        ttl = timeouts.tcpEstablished;
      } else {
        return this.drop(side, DropReason.TcpNoFlow);
      }
    } else {
      if (isEchoReply(this.pkt)) {
        // An echo reply with no request seen: unsolicited, judged on its own without starting a flow.
        return this.judgeAlone(frame, side, length, this.match(pkt.family, false), now);
      }
      rule = this.match(pkt.family, false);
      ttl = pkt.proto === Proto.UDP ? timeouts.udp : pkt.proto === Proto.ICMP || pkt.proto === Proto.ICMPV6 ? timeouts.icmp : timeouts.other;
    }

    const verdict = this.applyRule(frame, side, length, rule, now);
    if (verdict !== Verdict.Forward) {
      this.ruleCounters.add(rule, 1, length, 0);
    } else {
      // Tracked: the flow counts this packet and its rule's flow count (see ruleTotals).
      const key = this.key;
      const flow = this.flows.insert(key, ttl, now);
      flow.initiatorIsA = initiatorIsSource ? key.srcIsA : !key.srcIsA;
      flow.initiatorSide = initiatorIsSource ? side : 1 - side;
      flow.ruleIndex = rule;
      flow.generation = this.generation;
      flow.wouldDrop = this.policy.ruleActions[rule] !== Action.Allow;
      flow.tcpState = tcpState;
      if (initiatorIsSource) {
        flow.packetsOut = 1;
        flow.bytesOut = length;
      } else {
        flow.packetsIn = 1;
        flow.bytesIn = length;
      }
      if (this.observer !== null && this.policy.rules[rule].log) this.observer.flowStarted(flow, now);
    }
    return verdict;
  }

  /** A packet that starts no flow: count it against `rule` and act on it. */
  private judgeAlone(frame: Uint8Array, side: number, length: number, rule: number, now: number): number {
    this.ruleCounters.add(rule, 1, length, 0);
    return this.applyRule(frame, side, length, rule, now);
  }

  /** Act on `rule` for this packet (monitor mode forwards what it would drop); the caller counts it. */
  private applyRule(frame: Uint8Array, side: number, length: number, rule: number, now: number): number {
    this.lastRule = rule;
    const action = this.policy.ruleActions[rule];
    if (action === Action.Allow) return this.forward(side);
    if (this.observer !== null) this.observer.denied(this.pkt, rule, length, now);
    if (action === Action.Reject && this.policy.mode === 'enforce' && this.mayReject(side) && this.reject.build(frame, this.pkt)) {
      this.counters[side].dropped[DropReason.Policy]++;
      this.lastDrop = DropReason.Policy;
      return Verdict.Reject;
    }
    return this.drop(side, DropReason.Policy);
  }

  /** First matching rule for the current packet; `reversed` asks as if it travelled the other way. */
  private match(family: number, reversed: boolean): number {
    const pkt = this.pkt;
    const proto = pkt.proto;
    let ruleKey = 0;
    if (pkt.hasPorts) ruleKey = reversed ? pkt.srcPort : pkt.dstPort;
    else if (proto === Proto.ICMP || proto === Proto.ICMPV6) ruleKey = (pkt.icmpType << 8) | pkt.icmpCode;
    if (family === Family.V4) {
      return reversed ? this.policy.match4(pkt.dst4, pkt.src4, proto, ruleKey) : this.policy.match4(pkt.src4, pkt.dst4, proto, ruleKey);
    }
    return reversed ? this.policy.match6(pkt.dst6, pkt.src6, proto, ruleKey) : this.policy.match6(pkt.src6, pkt.dst6, proto, ruleKey);
  }

  private trackTcp(flow: Flow, fromInitiator: boolean): void {
    const flags = this.pkt.tcpFlags;
    if ((flags & TcpFlag.RST) !== 0) {
      // The connection is over; segments already in flight may still pass until the closing timeout.
      this.close(flow);
      return;
    }
    if (flow.tcpState === TcpState.Opening && fromInitiator && (flags & (TcpFlag.ACK | TcpFlag.SYN)) === TcpFlag.ACK) {
      flow.tcpState = TcpState.Established;
      this.flows.retime(flow, this.timeouts.tcpEstablished);
    }
    if ((flags & TcpFlag.FIN) !== 0) {
      if (fromInitiator) flow.finFromInitiator = true;
      else flow.finFromResponder = true;
      if (flow.finFromInitiator && flow.finFromResponder) this.close(flow);
    }
  }

  private close(flow: Flow): void {
    if (flow.tcpState === TcpState.Closing) return;
    flow.tcpState = TcpState.Closing;
    this.flows.retime(flow, this.timeouts.tcpClosing);
  }

  /** ICMP error quoting a packet of a flow we forward: the error belongs to that flow. */
  private quotesAllowedFlow(side: number): boolean {
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
    const quotedArrivedOn = quotedFromInitiator ? flow.initiatorSide : 1 - flow.initiatorSide;
    if (quotedArrivedOn === side) return false;
    this.lastRule = flow.ruleIndex;
    return true;
  }

  private rememberFirstFragment(side: number, now: number): void {
    const pkt = this.pkt;
    const key = this.key;
    keyFromPacket(key, pkt, pkt.fragId >>> 16, pkt.fragId & 0xffff, this.fragments.seed);
    const entry = this.fragments.find(key) ?? this.fragments.insert(key, this.timeouts.fragment, now);
    entry.initiatorIsA = key.srcIsA;
    entry.initiatorSide = side;
    entry.ruleIndex = this.lastRule;
    entry.wouldDrop = this.policy.mode === 'monitor' && this.lastRule >= 0 && this.policy.ruleActions[this.lastRule] !== Action.Allow;
  }

  /** Fragments after the first carry no ports: they follow the verdict of their first fragment. */
  private laterFragment(side: number, length: number): number {
    const pkt = this.pkt;
    const key = this.key;
    keyFromPacket(key, pkt, pkt.fragId >>> 16, pkt.fragId & 0xffff, this.fragments.seed);
    const entry = this.fragments.find(key);
    if (entry === null || entry.initiatorIsA !== key.srcIsA || entry.initiatorSide !== side) {
      return this.drop(side, DropReason.FragmentNoFirst);
    }
    if (entry.ruleIndex >= 0) {
      this.lastRule = entry.ruleIndex;
      this.ruleCounters.add(entry.ruleIndex, 1, length, 0);
    }
    return entry.wouldDrop ? this.monitorForward(side) : this.forward(side);
  }

  private mayReject(side: number): boolean {
    const now = Date.now();
    if (now - this.rejectRefilledAt >= 1000) {
      this.rejectTokens = REJECT_RATE;
      this.rejectRefilledAt = now;
    }
    if (this.rejectTokens > 0) {
      this.rejectTokens--;
      return true;
    }
    this.counters[side].port[PortCounter.RejectsSuppressed]++;
    return false;
  }

  private forward(side: number): number {
    this.counters[side].port[PortCounter.Forwarded]++;
    return Verdict.Forward;
  }

  private monitorForward(side: number): number {
    const port = this.counters[side].port;
    port[PortCounter.MonitorWouldDrop]++;
    port[PortCounter.Forwarded]++;
    return Verdict.Forward;
  }

  /** In monitor mode the drop is counted (by reason, and as would-drop) and the frame forwarded. */
  private drop(side: number, reason: number): number {
    this.lastDrop = reason;
    this.counters[side].dropped[reason]++;
    if (this.policy.mode === 'monitor') return this.monitorForward(side);
    return Verdict.Drop;
  }
}

/** The match key a flow was decided with (destination port of the initiator's packets, or 0). */
function flowRuleKey(flow: Flow): number {
  if (flow.proto === Proto.TCP || flow.proto === Proto.UDP || flow.proto === Proto.SCTP) {
    return flow.initiatorIsA ? flow.portB : flow.portA;
  }
  if (flow.proto === Proto.ICMP) return 8 << 8; // echo request
  if (flow.proto === Proto.ICMPV6) return 128 << 8;
  return 0;
}

function isNewSynOnClosedFlow(flow: Flow, tcpFlags: number): boolean {
  return flow.proto === Proto.TCP && flow.tcpState === TcpState.Closing && (tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
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

function timeoutsFor(policy: CompiledPolicy): Timeouts {
  const f = policy.flow;
  return {
    tcpOpening: { ttl: f.tcpOpeningIdleMs },
    tcpEstablished: { ttl: f.tcpEstablishedIdleMs },
    tcpClosing: { ttl: f.tcpClosingIdleMs },
    udp: { ttl: f.udpIdleMs },
    icmp: { ttl: f.icmpIdleMs },
    other: { ttl: f.otherIdleMs },
    fragment: { ttl: f.fragmentTimeoutMs },
  };
}
