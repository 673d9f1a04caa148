// Builds the answer to a rejected packet into a preallocated buffer: a TCP RST for TCP, otherwise an
// ICMP / ICMPv6 "administratively prohibited" destination unreachable. The answer goes back out of
// the port the packet came in on, from the address the sender tried to reach, so the appliance stays
// invisible: it looks as if the destination refused.
// For a segment an application-layer inspector refused it also builds the RST onward to the receiver
// (into `onward`, sent out of the other port) and, instead of the sender's RST, an answer carrying a
// payload (a Modbus exception). It builds frames; it does not decide, send or count.

import { Family, Proto, TcpFlag } from '../../wire/protocols';
import { isIcmpError } from '../decode/icmp';
import type { Packet } from '../decode/packet';

/** Largest answer: RFC 1812 / RFC 4443 bound how much of the offending packet an ICMP error quotes. */
const ICMP4_MAX_DATAGRAM = 576;
const ICMP6_MAX_DATAGRAM = 1280;

/** An onward RST: Ethernet with VLAN tags, an IPv6 header, a bare TCP header. */
const ONWARD_MAX = 14 + 8 + 40 + 20;

export class RejectBuilder {
  /** A Buffer because the port sends Buffers; VLAN tags (2 × 4 bytes) may precede the IP header. */
  readonly frame: Buffer = Buffer.alloc(14 + 8 + ICMP6_MAX_DATAGRAM);
  length = 0;
  /** The RST to the receiver of a refused segment (buildResetBothWays, buildAnswer). */
  readonly onward: Buffer = Buffer.alloc(ONWARD_MAX);
  onwardLength = 0;

  /**
   * Write the answer to `pkt` (whose bytes are `src`) into `this.frame`; returns false when the packet
   * must not be answered (RST, ICMP errors, later fragments, multicast/broadcast senders or targets).
   */
  build(src: Uint8Array, pkt: Packet): boolean {
    if (!answerable(src, pkt)) return false;
    if (pkt.proto === Proto.TCP && pkt.hasPorts) {
      if ((pkt.tcpFlags & TcpFlag.RST) !== 0) return false;
      this.buildRst(src, pkt);
      return true;
    }
    if (isIcmpError(pkt)) return false;
    this.buildUnreachable(src, pkt);
    return true;
  }

  /**
   * A refused TCP segment: RST back to its sender (this.frame) and RST on to its receiver at
   * `onwardSeq`, the byte the receiver expects next (this.onward). False when it must not be answered.
   */
  buildResetBothWays(src: Uint8Array, pkt: Packet, onwardSeq: number): boolean {
    if (!this.tcpAnswerable(src, pkt)) return false;
    this.buildRst(src, pkt);
    this.onwardLength = this.writeTcp(this.onward, src, pkt, false, onwardSeq, pkt.tcpAck, TcpFlag.RST | TcpFlag.ACK, null, 0);
    return true;
  }

  /**
   * A refused TCP segment answered in the receiver's name: payload[0, length) back to the sender at
   * `seq`, acknowledging `ack` (this.frame), and RST on to the receiver at `onwardSeq` (this.onward).
   */
  buildAnswer(src: Uint8Array, pkt: Packet, payload: Uint8Array, length: number, seq: number, ack: number, onwardSeq: number): boolean {
    if (!this.tcpAnswerable(src, pkt)) return false;
    this.length = this.writeTcp(this.frame, src, pkt, true, seq, ack, TcpFlag.PSH | TcpFlag.ACK, payload, length);
    this.onwardLength = this.writeTcp(this.onward, src, pkt, false, onwardSeq, pkt.tcpAck, TcpFlag.RST | TcpFlag.ACK, null, 0);
    return true;
  }

  private tcpAnswerable(src: Uint8Array, pkt: Packet): boolean {
    return answerable(src, pkt) && pkt.proto === Proto.TCP && pkt.hasPorts && (pkt.tcpFlags & TcpFlag.RST) === 0;
  }

  /**
   * A TCP segment with a 20-byte header into `out`: back to the sender (`reverse`) or on to the
   * receiver, in the link and IP headers of `pkt`. Returns its length.
   */
  private writeTcp(out: Buffer, src: Uint8Array, pkt: Packet, reverse: boolean, seq: number, ack: number, flags: number,
    payload: Uint8Array | null, length: number): number {
    const ipAt = writeLink(out, src, pkt, reverse);
    const tcpAt = writeIp(out, ipAt, pkt, Proto.TCP, 20 + length, reverse);
    put16(out, tcpAt, reverse ? pkt.dstPort : pkt.srcPort);
    put16(out, tcpAt + 2, reverse ? pkt.srcPort : pkt.dstPort);
    put32(out, tcpAt + 4, seq);
    put32(out, tcpAt + 8, ack);
    out[tcpAt + 12] = 5 << 4;
    out[tcpAt + 13] = flags;
    // A data answer offers a window; an RST none.
    put16(out, tcpAt + 14, (flags & TcpFlag.RST) !== 0 ? 0 : 0xffff);
    put16(out, tcpAt + 16, 0);
    put16(out, tcpAt + 18, 0);
    for (let i = 0; i < length; i++) out[tcpAt + 20 + i] = (payload as Uint8Array)[i];
    put16(out, tcpAt + 16, transportChecksum(out, ipAt, pkt.family, tcpAt, 20 + length, Proto.TCP));
    return tcpAt + 20 + length;
  }

  private buildRst(src: Uint8Array, pkt: Packet): void {
    // RFC 9293 3.10.7.1: answer an ACK with seq = its ack; otherwise ack everything the segment used.
    const acked = (pkt.tcpFlags & TcpFlag.ACK) !== 0;
    const consumed = pkt.l4PayloadLength + ((pkt.tcpFlags & TcpFlag.SYN) !== 0 ? 1 : 0) + ((pkt.tcpFlags & TcpFlag.FIN) !== 0 ? 1 : 0);
    this.length = this.writeTcp(this.frame, src, pkt, true, acked ? pkt.tcpAck : 0, acked ? 0 : (pkt.tcpSeq + consumed) >>> 0,
      acked ? TcpFlag.RST : TcpFlag.RST | TcpFlag.ACK, null, 0);
  }

  private buildUnreachable(src: Uint8Array, pkt: Packet): void {
    const out = this.frame;
    const ipAt = writeLink(out, src, pkt, true);
    const v4 = pkt.family === Family.V4;
    const ipHeader = v4 ? 20 : 40;
    const available = Math.min(pkt.l3TotalLength, pkt.length - pkt.l3Offset);
    const quoteLength = Math.min(available, (v4 ? ICMP4_MAX_DATAGRAM : ICMP6_MAX_DATAGRAM) - ipHeader - 8);
    const proto = v4 ? Proto.ICMP : Proto.ICMPV6;
    const icmpAt = writeIp(out, ipAt, pkt, proto, 8 + quoteLength, true);
    out[icmpAt] = v4 ? 3 : 1; // destination unreachable
    out[icmpAt + 1] = v4 ? 13 : 1; // communication administratively prohibited
    put16(out, icmpAt + 2, 0);
    put32(out, icmpAt + 4, 0);
    for (let i = 0; i < quoteLength; i++) out[icmpAt + 8 + i] = src[pkt.l3Offset + i];
    const checksum = v4
      ? ~sum(out, icmpAt, 8 + quoteLength, 0) & 0xffff
      : transportChecksum(out, ipAt, pkt.family, icmpAt, 8 + quoteLength, Proto.ICMPV6);
    put16(out, icmpAt + 2, checksum);
    this.length = icmpAt + 8 + quoteLength;
  }
}

/** Not answered: later fragments, group MAC senders or targets, multicast, broadcast, unspecified sources. */
function answerable(src: Uint8Array, pkt: Packet): boolean {
  if (pkt.isFragment && pkt.fragOffset > 0) return false;
  if ((src[0] & 1) === 1 || (src[6] & 1) === 1) return false; // group MAC destination or source
  if (pkt.family === Family.V4) {
    const dstTop = pkt.dst4 >>> 28;
    return !(dstTop >= 0xe || pkt.dst4 === 0xffffffff || pkt.src4 === 0);
  }
  if (pkt.family === Family.V6) return (pkt.dst6[0] >>> 24) !== 0xff;
  return false;
}

/** Ethernet header, MACs swapped back to the sender (`reverse`) or kept, the VLAN tags of the original kept. */
function writeLink(out: Uint8Array, src: Uint8Array, pkt: Packet, reverse: boolean): number {
  for (let i = 0; i < 6; i++) {
    out[i] = src[reverse ? 6 + i : i];
    out[6 + i] = src[reverse ? i : 6 + i];
  }
  for (let i = 12; i < pkt.l3Offset; i++) out[i] = src[i];
  return pkt.l3Offset;
}

/** IPv4 or IPv6 header at `at`, addresses swapped back to the sender (`reverse`) or kept. */
function writeIp(out: Uint8Array, at: number, pkt: Packet, proto: number, payloadLength: number, reverse: boolean): number {
  if (pkt.family === Family.V4) {
    put16(out, at + 2, 20 + payloadLength);
    out[at] = 0x45;
    out[at + 1] = 0;
    put16(out, at + 4, 0);
    put16(out, at + 6, 0x4000); // DF
    out[at + 8] = 64;
    out[at + 9] = proto;
    put16(out, at + 10, 0);
    put32(out, at + 12, reverse ? pkt.dst4 : pkt.src4);
    put32(out, at + 16, reverse ? pkt.src4 : pkt.dst4);
    put16(out, at + 10, ~sum(out, at, 20, 0) & 0xffff);
    return at + 20;
  }
  put32(out, at, 0x60000000);
  put16(out, at + 4, payloadLength);
  out[at + 6] = proto;
  out[at + 7] = 64;
  const from = reverse ? pkt.dst6 : pkt.src6;
  const to = reverse ? pkt.src6 : pkt.dst6;
  for (let i = 0; i < 4; i++) {
    put32(out, at + 8 + 4 * i, from[i]);
    put32(out, at + 24 + 4 * i, to[i]);
  }
  return at + 40;
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** Ones' complement sum of `length` bytes (RFC 1071), folded to 16 bits. */
function sum(b: Uint8Array, at: number, length: number, initial: number): number {
  let s = initial;
  const end = at + length;
  let i = at;
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** TCP / UDP / ICMPv6 checksum over the IPv4 or IPv6 pseudo-header (RFC 793, RFC 8200 8.1). */
function transportChecksum(b: Uint8Array, ipAt: number, family: number, at: number, length: number, proto: number): number {
  let s = proto + length;
  if (family === Family.V4) s = sum(b, ipAt + 12, 8, s);
  else s = sum(b, ipAt + 8, 32, s);
  return ~sum(b, at, length, s) & 0xffff;
}
