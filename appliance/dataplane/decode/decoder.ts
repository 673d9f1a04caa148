// Frame decoder entry point: Ethernet (+ tags) -> ARP | IPv4 | IPv6 -> TCP | UDP | SCTP | ICMP | ICMPv6.
// Hot path: reads the frame with index arithmetic and writes only into the reused Packet.

import { decodeArp } from './arp';
import { DecodeError } from './errors';
import { decodeEthernet } from './ethernet';
import { decodeIcmp, resetQuoted } from './icmp';
import { decodeIcmpv6 } from './icmpv6';
import { decodeIpv4 } from './ipv4';
import { decodeIpv6 } from './ipv6';
import { type Packet } from './packet';
import { EtherType, Family, Proto } from '../../wire/protocols';
import { decodeSctp } from './sctp';
import { decodeTcp } from './tcp';
import { decodeUdp } from './udp';

/** Clears every field a previous frame may have set (addresses are only read under `family`). */
function reset(pkt: Packet, length: number): void {
  pkt.length = length;
  pkt.error = DecodeError.None;
  pkt.vlanCount = 0;
  pkt.vlanOuter = 0;
  pkt.vlanInner = 0;
  pkt.etherType = 0;
  pkt.l3Offset = 0;
  pkt.family = Family.None;
  pkt.proto = 0;
  pkt.ttl = 0;
  pkt.l3HeaderLength = 0;
  pkt.l3TotalLength = 0;
  pkt.isFragment = false;
  pkt.fragOffset = 0;
  pkt.moreFragments = false;
  pkt.fragId = 0;
  pkt.l4Offset = 0;
  pkt.hasPorts = false;
  pkt.srcPort = 0;
  pkt.dstPort = 0;
  pkt.tcpFlags = 0;
  pkt.tcpSeq = 0;
  pkt.tcpAck = 0;
  pkt.l4PayloadLength = 0;
  pkt.icmpType = -1;
  pkt.icmpCode = -1;
  pkt.icmpId = 0;
  resetQuoted(pkt.quoted);
  pkt.arpOp = 0;
  pkt.arpSenderMac = 0;
  pkt.arpSenderIp = 0;
  pkt.arpTargetIp = 0;
}

/** Transport header of an IP packet whose payload ends at `end` (IP padding excluded). */
function decodeTransport(b: Uint8Array, end: number, pkt: Packet): number {
  // A later fragment starts mid-datagram: there is no transport header to read.
  if (pkt.fragOffset !== 0) return DecodeError.None;
  const off = pkt.l4Offset;
  const partial = pkt.moreFragments;
  switch (pkt.proto) {
    case Proto.TCP:
      return decodeTcp(b, off, end, partial, pkt);
    case Proto.UDP:
      return decodeUdp(b, off, end, partial, pkt);
    case Proto.SCTP:
      return decodeSctp(b, off, end, partial, pkt);
    case Proto.ICMP:
      return pkt.family === Family.V4 ? decodeIcmp(b, off, end, partial, pkt) : DecodeError.None;
    case Proto.ICMPV6:
      return pkt.family === Family.V6 ? decodeIcmpv6(b, off, end, partial, pkt) : DecodeError.None;
    default:
      // Tunnels (IPIP, 6in4, GRE), ESP and the rest are judged by their outer header only.
      return DecodeError.None;
  }
}

function decodeNetwork(b: Uint8Array, end: number, pkt: Packet): number {
  let error: number;
  switch (pkt.etherType) {
    case EtherType.IPV4:
      error = decodeIpv4(b, end, pkt);
      break;
    case EtherType.IPV6:
      error = decodeIpv6(b, end, pkt);
      break;
    case EtherType.ARP:
      return decodeArp(b, pkt.l3Offset, end, pkt);
    default:
      return DecodeError.None;
  }
  if (error !== DecodeError.None) return error;
  return decodeTransport(b, pkt.l3Offset + pkt.l3TotalLength, pkt);
}

/**
 * Resets and fills `pkt` from the first `length` bytes of `frame` (an Ethernet frame).
 * Never throws; returns pkt.error (DecodeError.None when the frame decoded cleanly).
 */
export function decodeFrame(frame: Uint8Array, length: number, pkt: Packet): number {
  const end = length < frame.length ? length : frame.length;
  reset(pkt, end);
  let error = decodeEthernet(frame, end, pkt);
  if (error === DecodeError.None) error = decodeNetwork(frame, end, pkt);
  pkt.error = error;
  return error;
}
