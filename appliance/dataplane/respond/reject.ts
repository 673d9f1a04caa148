// Builds the answer to a rejected packet into a preallocated buffer: a TCP RST for TCP, otherwise an
// ICMP / ICMPv6 "administratively prohibited" destination unreachable. The answer goes back out of
// the port the packet came in on, from the address the sender tried to reach, so the appliance stays
// invisible: it looks as if the destination refused.

import { Family, Proto, TcpFlag } from '../../wire/protocols';
import { isIcmpError } from '../decode/icmp';
import type { Packet } from '../decode/packet';

/** Largest answer: RFC 1812 / RFC 4443 bound how much of the offending packet an ICMP error quotes. */
const ICMP4_MAX_DATAGRAM = 576;
const ICMP6_MAX_DATAGRAM = 1280;

export class RejectBuilder {
  /** A Buffer because the port sends Buffers; VLAN tags (2 × 4 bytes) may precede the IP header. */
  readonly frame: Buffer = Buffer.alloc(14 + 8 + ICMP6_MAX_DATAGRAM);
  length = 0;

  /**
   * Write the answer to `pkt` (whose bytes are `src`) into `this.frame`; returns false when the packet
   * must not be answered (RST, ICMP errors, later fragments, multicast/broadcast senders or targets).
   */
  build(src: Uint8Array, pkt: Packet): boolean {
    if (pkt.isFragment && pkt.fragOffset > 0) return false;
    if ((src[0] & 1) === 1 || (src[6] & 1) === 1) return false; // group MAC destination or source
    if (pkt.family === Family.V4) {
      const dstTop = pkt.dst4 >>> 28;
      if (dstTop >= 0xe || pkt.dst4 === 0xffffffff || pkt.src4 === 0) return false;
    } else if (pkt.family === Family.V6) {
      if ((pkt.dst6[0] >>> 24) === 0xff) return false;
    } else {
      return false;
    }
    if (pkt.proto === Proto.TCP && pkt.hasPorts) {
      if ((pkt.tcpFlags & TcpFlag.RST) !== 0) return false;
      this.buildRst(src, pkt);
      return true;
    }
    if (isIcmpError(pkt)) return false;
    this.buildUnreachable(src, pkt);
    return true;
  }

  /** Ethernet header with MACs swapped and the VLAN tags of the original kept. */
  private writeLink(src: Uint8Array, pkt: Packet): number {
    const out = this.frame;
    for (let i = 0; i < 6; i++) {
      out[i] = src[6 + i];
      out[6 + i] = src[i];
    }
    for (let i = 12; i < pkt.l3Offset; i++) out[i] = src[i];
    return pkt.l3Offset;
  }

  private writeIp(at: number, pkt: Packet, proto: number, payloadLength: number): number {
    const out = this.frame;
    if (pkt.family === Family.V4) {
      const total = 20 + payloadLength;
      out[at] = 0x45;
      out[at + 1] = 0;
      put16(out, at + 2, total);
      put16(out, at + 4, 0);
      put16(out, at + 6, 0x4000); // DF
      out[at + 8] = 64;
      out[at + 9] = proto;
      put16(out, at + 10, 0);
      put32(out, at + 12, pkt.dst4);
      put32(out, at + 16, pkt.src4);
      put16(out, at + 10, ~sum(out, at, 20, 0) & 0xffff);
      return at + 20;
    }
    put32(out, at, 0x60000000);
    put16(out, at + 4, payloadLength);
    out[at + 6] = proto;
    out[at + 7] = 64;
    for (let i = 0; i < 4; i++) {
      put32(out, at + 8 + 4 * i, pkt.dst6[i]);
      put32(out, at + 24 + 4 * i, pkt.src6[i]);
    }
    return at + 40;
  }

  private buildRst(src: Uint8Array, pkt: Packet): void {
    const out = this.frame;
    const ipAt = this.writeLink(src, pkt);
    const tcpAt = this.writeIp(ipAt, pkt, Proto.TCP, 20);
    put16(out, tcpAt, pkt.dstPort);
    put16(out, tcpAt + 2, pkt.srcPort);
    // RFC 9293 3.10.7.1: answer an ACK with seq = its ack; otherwise ack everything the segment used.
    const acked = (pkt.tcpFlags & TcpFlag.ACK) !== 0;
    const consumed = pkt.l4PayloadLength + ((pkt.tcpFlags & TcpFlag.SYN) !== 0 ? 1 : 0) + ((pkt.tcpFlags & TcpFlag.FIN) !== 0 ? 1 : 0);
    put32(out, tcpAt + 4, acked ? pkt.tcpAck : 0);
    put32(out, tcpAt + 8, acked ? 0 : (pkt.tcpSeq + consumed) >>> 0);
    out[tcpAt + 12] = 5 << 4;
    out[tcpAt + 13] = acked ? TcpFlag.RST : TcpFlag.RST | TcpFlag.ACK;
    put16(out, tcpAt + 14, 0);
    put16(out, tcpAt + 16, 0);
    put16(out, tcpAt + 18, 0);
    put16(out, tcpAt + 16, transportChecksum(out, ipAt, pkt.family, tcpAt, 20, Proto.TCP));
    this.length = tcpAt + 20;
  }

  private buildUnreachable(src: Uint8Array, pkt: Packet): void {
    const out = this.frame;
    const ipAt = this.writeLink(src, pkt);
    const v4 = pkt.family === Family.V4;
    const ipHeader = v4 ? 20 : 40;
    const available = Math.min(pkt.l3TotalLength, pkt.length - pkt.l3Offset);
    const quoteLength = Math.min(available, (v4 ? ICMP4_MAX_DATAGRAM : ICMP6_MAX_DATAGRAM) - ipHeader - 8);
    const proto = v4 ? Proto.ICMP : Proto.ICMPV6;
    const icmpAt = this.writeIp(ipAt, pkt, proto, 8 + quoteLength);
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
