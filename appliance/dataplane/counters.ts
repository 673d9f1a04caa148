// Counters of one dataplane: the one place that counts. Per port, what the pipeline decided about
// each frame (from its PacketResult) and what the port did with it (refused before the pipeline,
// answers sent, the kernel's report of sent batches, frames the kernel dropped before we saw them); per rule, packets, bytes and flows. Plain typed
// arrays indexed by constants, so counting on the packet path is a few stores. The names they are
// published under belong to the IPC contract (ipc/stats.ts); test/engine.test.ts keeps indices and
// names in step.

import { decodeErrorNames } from './decode/errors';
import { dropReasonNames, portCounterNames, type InspectStats, type PortCountersSnapshot } from '../ipc/stats';
import { NO_REASON, Verdict, type PacketResult } from './verdict';

/** Per appliance port (0 = inside, 1 = outside), counted on the port where the frame arrived. */
export const PortCounter = {
  RxPackets: 0,
  RxBytes: 1,
  /** Frames sent out of this port (forwarded from the other port, or rejects answered here). */
  TxPackets: 2,
  TxBytes: 3,
  Forwarded: 4,
  RejectsSent: 5,
  /** Rejects not sent because the reject rate limit was reached (the packet is still dropped). */
  RejectsSuppressed: 6,
  SendErrors: 7,
  /** Frames forwarded only because the policy is in monitor mode. */
  MonitorWouldDrop: 8,
  /**
   * Frames the kernel dropped before the pipeline saw them (the port's receive ring was full: the box
   * was too slow), read from the socket now and then; never in rx_packets or any drop reason.
   */
  KernelDropped: 9,
  /**
   * The wire segments the received frames stand for: a GSO super-frame (hosts with TSO/GSO, or the
   * port's GRO) counts as the segments it carries, any other frame as one. Equal to rx_packets when
   * no super-frames arrive.
   */
  RxSegments: 10,
  /**
   * Frames of offloaded flows the kernel fast path forwarded from this port without the pipeline
   * (port/fast-path.ts). Also counted in rx_packets, rx_bytes, rx_segments and forwarded here, and
   * in the other port's tx_packets and tx_bytes, so those stay what the port carried.
   */
  FastPathFrames: 11,
} as const;

/** Why a frame was dropped. */
export const DropReason = {
  /** A rule (or the default) said deny or reject. */
  Policy: 0,
  /** The decoder refused the frame; the decode counters say why. */
  Decode: 1,
  /** EtherType neither IP, ARP nor allowed by `l2.allow`. */
  L2: 2,
  /** TCP segment that is not a SYN and belongs to no flow. */
  TcpNoFlow: 3,
  /** A later IP fragment whose first fragment was not allowed or not seen. */
  FragmentNoFirst: 4,
  /** Packet of a known flow arriving on the wrong port (spoofing or a loop). */
  WrongPort: 5,
  /** Frame sent from the port's own MAC address: our own or the kernel's, never bridged. */
  OwnMac: 6,
  /** Frame larger than the capture buffer. */
  Truncated: 7,
  /** Flow ended because a reloaded policy no longer allows it. */
  FlowCut: 8,
  /** An application-layer inspector refused the segment (a rule's `modbus:` block); the inspection counters say why. */
  Inspect: 9,
  /** Held by an inspector's stream guard (out of order, buffer full): dropped so TCP resends it in order. */
  InspectHeld: 10,
  /**
   * The source address (IP source, or ARP sender) is bound to a MAC by the policy (address@MAC) and
   * the frame came from another MAC: spoofing, or a host that took the asset's address.
   */
  SpoofedSource: 11,
} as const;

export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export class PortCounters {
  readonly port = new Float64Array(portCounterNames.length);
  readonly dropped = new Float64Array(dropReasonNames.length);
  readonly decodeErrors = new Float64Array(decodeErrorNames.length);

  /** A frame that arrived here, as the pipeline decided it (`decodeError`: the decoder's code). */
  frame(length: number, result: PacketResult, decodeError: number): void {
    const port = this.port;
    port[PortCounter.RxPackets]++;
    port[PortCounter.RxBytes] += length;
    const reason = result.reason;
    if (reason !== NO_REASON) {
      this.dropped[reason]++;
      if (reason === DropReason.Decode) this.decodeErrors[decodeError]++;
    }
    if (result.rejectSuppressed) port[PortCounter.RejectsSuppressed]++;
    if (result.verdict === Verdict.Forward) {
      port[PortCounter.Forwarded]++;
      if (result.monitored) port[PortCounter.MonitorWouldDrop]++;
    }
  }

  /** A received frame stood for `segments` segments on the wire (the port's GSO metadata). */
  received(segments: number): void {
    this.port[PortCounter.RxSegments] += segments;
  }

  /** A frame the port refused before the pipeline saw it (truncated, or from the port's own MAC). */
  refused(reason: DropReason): void {
    this.port[PortCounter.RxPackets]++;
    this.dropped[reason]++;
  }

  /** The answer to a rejected frame was sent back out of this port, or the send failed. */
  answered(length: number, sent: boolean): void {
    if (!sent) {
      this.port[PortCounter.SendErrors]++;
      return;
    }
    this.port[PortCounter.RejectsSent]++;
    this.port[PortCounter.TxPackets]++;
    this.port[PortCounter.TxBytes] += length;
  }

  /** Frames the kernel dropped on this port's receive side since the last report (Port.takeKernelDrops). */
  kernelDropped(frames: number): void {
    this.port[PortCounter.KernelDropped] += frames;
  }

  /** Frames the kernel fast path forwarded from this port since the last report (their frame bytes and segments). */
  fastPathForwarded(frames: number, bytes: number, segments: number): void {
    const port = this.port;
    port[PortCounter.FastPathFrames] += frames;
    port[PortCounter.RxPackets] += frames;
    port[PortCounter.RxBytes] += bytes;
    port[PortCounter.RxSegments] += segments;
    port[PortCounter.Forwarded] += frames;
  }

  /** What the kernel took from this port's sends (frames, bytes) and refused (frames). */
  sent(frames: number, bytes: number, refused: number): void {
    this.port[PortCounter.TxPackets] += frames;
    this.port[PortCounter.TxBytes] += bytes;
    this.port[PortCounter.SendErrors] += refused;
  }

  snapshot(): PortCountersSnapshot {
    const out: PortCountersSnapshot = { dropped: {}, decode_errors: {} } as PortCountersSnapshot;
    portCounterNames.forEach((name, i) => (out[name] = this.port[i]));
    dropReasonNames.forEach((name, i) => (out.dropped[name] = this.dropped[i]));
    decodeErrorNames.forEach((name, i) => {
      if (i !== 0 && this.decodeErrors[i] !== 0) out.decode_errors[name] = this.decodeErrors[i];
    });
    return out;
  }
}

/** Received, sent and dropped frames of both ports together (the counters.snapshot event). */
export function pairTotals(sides: readonly PortCounters[]): { rxPackets: number; txPackets: number; dropped: number } {
  let rxPackets = 0;
  let txPackets = 0;
  let dropped = 0;
  for (const side of sides) {
    rxPackets += side.port[PortCounter.RxPackets];
    txPackets += side.port[PortCounter.TxPackets];
    for (const n of side.dropped) dropped += n;
  }
  return { rxPackets, txPackets, dropped };
}

const PACKETS = 0;
const BYTES = 1;
const FLOWS = 2;
const VIOLATIONS = 3;
/** Slots per rule: a power of two, so one rule's counters never span more than two cache lines. */
const STRIDE = 4;

/**
 * Per rule of the running policy generation. A rule's packet, byte and flow counts sit side by side
 * in one array, so adding to them costs one cache miss, not three.
 */
export class RuleCounters {
  private readonly counts: Float64Array;

  constructor(readonly ruleCount: number) {
    this.counts = new Float64Array(ruleCount * STRIDE);
  }

  /**
   * Add a packet that starts no flow (1, length, 0), or a tracked flow's packets since it was last
   * settled (`flows` is 1 the first time).
   */
  add(rule: number, packets: number, bytes: number, flows: number): void {
    const at = rule * STRIDE;
    this.counts[at + PACKETS] += packets;
    this.counts[at + BYTES] += bytes;
    this.counts[at + FLOWS] += flows;
  }

  packets(rule: number): number {
    return this.counts[rule * STRIDE + PACKETS];
  }

  bytes(rule: number): number {
    return this.counts[rule * STRIDE + BYTES];
  }

  flows(rule: number): number {
    return this.counts[rule * STRIDE + FLOWS];
  }

  /** A message an application-layer block of the rule refused (in monitor mode: would have). */
  violation(rule: number): void {
    this.counts[rule * STRIDE + VIOLATIONS]++;
  }

  violations(rule: number): number {
    return this.counts[rule * STRIDE + VIOLATIONS];
  }

  /** Carry rule `from` of `old` over to rule `to` here (a reload keeps counts by rule name). */
  carryOver(old: RuleCounters, from: number, to: number): void {
    this.counts.set(old.counts.subarray(from * STRIDE, from * STRIDE + STRIDE), to * STRIDE);
  }
}

/** One application-layer inspector's counts: flows it inspects, violations and holds by its reasons. */
export class InspectCounters {
  private readonly violations: Float64Array;
  private readonly holds: Float64Array;
  private flows = 0;
  private active = 0;

  constructor(readonly protocol: string, private readonly reasons: readonly string[], private readonly holdReasons: readonly string[]) {
    this.violations = new Float64Array(reasons.length);
    this.holds = new Float64Array(holdReasons.length);
  }

  flowStarted(): void {
    this.flows++;
    this.active++;
  }

  flowEnded(): void {
    this.active--;
  }

  violation(reasonIndex: number): void {
    this.violations[reasonIndex]++;
  }

  held(reasonIndex: number): void {
    this.holds[reasonIndex]++;
  }

  snapshot(): InspectStats {
    const violations: Record<string, number> = {};
    const held: Record<string, number> = {};
    this.reasons.forEach((name, i) => (violations[name] = this.violations[i]));
    this.holdReasons.forEach((name, i) => (held[name] = this.holds[i]));
    return { flows: this.flows, active: this.active, violations, held };
  }
}
