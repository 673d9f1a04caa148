// The in-order TCP stream guard of an inspected flow, shared by every protocol inspector: only bytes
// in sequence order reach the parser, each byte exactly once, and a retransmission must carry the
// very bytes that were checked. It decides per segment; it does not parse, and it does not forward or
// build packets (the engine does, on the inspector's verdict).
//
// The simple safe rule: per direction, the next expected sequence number. It is learned from the
// peer's ACK, which says what the receiving TCP expects, never from the sender's SYN or first data
// (a forged SYN or data far ahead would otherwise move it, and real bytes behind it would pass as
// already acknowledged); data before the peer has acknowledged anything is held. In order: the new
// bytes go to the parser. Behind: a retransmission, forwarded only if byte-identical to the stored
// copy. Straddling: the overlap is compared, only the new tail goes to the parser. Ahead (a gap, out
// of order): dropped, TCP retransmits in order; a counter, not a violation. Sequence arithmetic is
// modulo 2^32.
//
// A flow picked up mid-stream (no handshake seen: after a restart, or a rule that gained inspection on
// a reload) may carry data before either peer has acknowledged anything, and waiting for an ACK could
// wait forever (each side waits for the other). There a direction starts at its first data segment,
// and bytes before that start are held until the peer has acknowledged beyond it: a forged segment
// ahead can then stall the flow but never let the bytes behind it pass unchecked.
//
// Bounded state: a RING_BYTES (4 KiB) copy per direction of the bytes checked and forwarded but not yet
// acknowledged by the peer, released as its ACKs advance. A Modbus ADU is at most 260 bytes, so the ring
// holds 15 maximum-size requests in flight unacknowledged (clients wait for each response; the peer's
// ACK comes with it). New bytes that would overflow the ring drop the segment: the sender retransmits
// once ACKs have made room. Bytes the peer has acknowledged are not compared: its TCP discards them.
// Two preallocated rings per flow (8 KiB), no allocation per segment.

import { TcpFlag } from '../../wire/protocols';

export const RING_BYTES = 4096;
const RING_MASK = RING_BYTES - 1;

/** What the guard says about one segment. */
export const Admit = {
  /** New in-order bytes: frame[deliverOffset, deliverOffset + deliverLength) go to the parser. */
  Deliver: 0,
  /** Nothing new (no payload, or a retransmission identical to what was checked): forward as is. */
  Forward: 1,
  /** Starts beyond the next expected byte, or before the peer has acknowledged anything: drop, the sender retransmits. */
  DropAhead: 2,
  /** The unacknowledged copy would exceed RING_BYTES: drop, the sender retransmits later. */
  DropFull: 3,
  /** A retransmission carrying bytes that differ from the ones checked: reason `retransmission_differs`. */
  Violation: 4,
  /** Mid-stream: bytes before where the direction started, not yet acknowledged: drop, never check. */
  DropBeforeStart: 5,
} as const;
export type Admit = (typeof Admit)[keyof typeof Admit];

export const streamReasons = ['retransmission_differs'] as const;
export type StreamReason = (typeof streamReasons)[number];

/** The fields of a segment the guard reads (the engine's reused Segment has them). */
export interface TcpSegment {
  frame: Uint8Array;
  /** TCP payload: frame[offset, offset + length). */
  offset: number;
  length: number;
  seq: number;
  ack: number;
  /** TCP flags byte (TcpFlag bits). */
  flags: number;
  fromInitiator: boolean;
}

/** The guard's answer, written into one reused object. */
export class Admission {
  verdict: Admit = Admit.Forward;
  deliverOffset = 0;
  deliverLength = 0;
  reason: StreamReason | null = null;
}

class Direction {
  /** The peer's ACK has set the start. */
  known = false;
  /** Bytes were delivered: the start can no longer move. */
  hasData = false;
  /** Sequence number of the next byte expected (the end of the checked bytes). */
  next = 0;
  /** Lowest sequence number not yet acknowledged by the peer: the ring holds [acked, next). */
  acked = 0;
  /** Started at data (mid-stream) and the peer has acknowledged nothing beyond: bytes before `acked` are held. */
  guarded = false;
  /** Byte with sequence number s lives at ring[s & RING_MASK]. */
  readonly ring = new Uint8Array(RING_BYTES);

  start(seq: number, guarded: boolean): void {
    this.known = true;
    this.next = seq >>> 0;
    this.acked = this.next;
    this.guarded = guarded;
  }
}

/** Signed distance a - b in sequence space. */
function diff(a: number, b: number): number {
  return (a - b) | 0;
}

export class TcpStreamGuard {
  private readonly dirs = [new Direction(), new Direction()];
  // Per-flow counters (the inspector sums them for the engine's counters).
  aheadDrops = 0;
  fullDrops = 0;
  retransmissions = 0;
  /** The flow was picked up mid-stream: a direction may start at its first data (see the header). */
  private midStream = false;

  /** Forget both directions (a pooled guard taken for a new flow). */
  clear(midStream: boolean): void {
    this.midStream = midStream;
    for (const d of this.dirs) {
      d.known = false;
      d.hasData = false;
      d.guarded = false;
    }
    this.aheadDrops = 0;
    this.fullDrops = 0;
    this.retransmissions = 0;
  }

  /** Bytes of `fromInitiator`'s direction checked and forwarded but not acknowledged yet. */
  unacked(fromInitiator: boolean): number {
    const d = this.dirs[fromInitiator ? 0 : 1];
    return d.known ? diff(d.next, d.acked) : 0;
  }

  /** Sequence number of the next byte expected from `fromInitiator`'s direction (0 before it is known). */
  nextSeq(fromInitiator: boolean): number {
    const d = this.dirs[fromInitiator ? 0 : 1];
    return d.known ? d.next : 0;
  }

  admit(seg: TcpSegment, out: Admission): Admission {
    const d = this.dirs[seg.fromInitiator ? 0 : 1];
    out.reason = null;
    out.deliverLength = 0;
    if ((seg.flags & TcpFlag.ACK) !== 0) this.acknowledge(this.dirs[seg.fromInitiator ? 1 : 0], seg.ack);
    // A SYN occupies one sequence number before its data.
    const seq = (seg.flags & TcpFlag.SYN) !== 0 ? (seg.seq + 1) >>> 0 : seg.seq;
    const length = seg.length;
    if (length === 0) {
      out.verdict = Admit.Forward;
      return out;
    }
    if (!d.known && this.midStream) d.start(seq, true);
    if (d.guarded && diff(seq, d.acked) < 0) {
      this.aheadDrops++;
      out.verdict = Admit.DropBeforeStart;
      return out;
    }
    const ahead = d.known ? diff(seq, d.next) : 1;
    if (ahead > 0) {
      this.aheadDrops++;
      out.verdict = Admit.DropAhead;
      return out;
    }
    // Bytes [seq, seq + behind) were seen already; compare those the peer has not acknowledged.
    const behind = Math.min(-ahead, length);
    if (behind > 0) {
      const skip = Math.max(0, diff(d.acked, seq));
      for (let i = skip; i < behind; i++) {
        if (seg.frame[seg.offset + i] !== d.ring[(seq + i) & RING_MASK]) {
          out.verdict = Admit.Violation;
          out.reason = 'retransmission_differs';
          return out;
        }
      }
      if (behind === length) {
        this.retransmissions++;
        out.verdict = Admit.Forward;
        return out;
      }
    }
    const fresh = length - behind;
    if (diff(d.next, d.acked) + fresh > RING_BYTES) {
      this.fullDrops++;
      out.verdict = Admit.DropFull;
      return out;
    }
    const from = seg.offset + behind;
    // A byte loop: subarray would allocate a view per segment.
    const frame = seg.frame;
    const ring = d.ring;
    const base = d.next;
    for (let i = 0; i < fresh; i++) ring[(base + i) & RING_MASK] = frame[from + i];
    d.next = (base + fresh) >>> 0;
    d.hasData = true;
    out.verdict = Admit.Deliver;
    out.deliverOffset = from;
    out.deliverLength = fresh;
    return out;
  }

  /**
   * The peer acknowledged up to `ack`. Before any data that is where the stream starts (the handshake's
   * ACK); after, it releases the bytes before it (an ACK of bytes never forwarded moves nothing).
   */
  private acknowledge(d: Direction, ack: number): void {
    if (!d.known || (!d.hasData && !d.guarded)) {
      d.start(ack, false);
      return;
    }
    const advance = diff(ack, d.acked);
    if (advance > 0 && advance <= diff(d.next, d.acked)) {
      d.acked = ack >>> 0;
      d.guarded = false;
    }
  }
}
