// ICMP (v4): type, code, echo identifier, and the header an error message quotes.

import { read16 } from './bytes';
import { DecodeError } from './errors';
import { decodeQuotedIpv4 } from './ipv4';
import { type Packet, type QuotedPacket } from './packet';
import { Proto } from '../../wire/protocols';

/** Every ICMP message starts with type, code, checksum and 4 bytes of rest-of-header. */
export const ICMP_HEADER = 8;

const IcmpType = {
  ECHO_REPLY: 0,
  DEST_UNREACHABLE: 3,
  SOURCE_QUENCH: 4,
  REDIRECT: 5,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
} as const;

/**
 * True for ICMP / ICMPv6 error messages, which quote the packet they are about and must never be
 * answered with another error (RFC 1122 3.2.2, RFC 4443 2.4). ICMPv6 errors are types 0-127.
 */
export function isIcmpError(pkt: Packet): boolean {
  if (pkt.proto === Proto.ICMP) return isError(pkt.icmpType);
  return pkt.proto === Proto.ICMPV6 && pkt.icmpType >= 0 && pkt.icmpType < 128;
}

function isError(type: number): boolean {
  return (
    type === IcmpType.DEST_UNREACHABLE ||
    type === IcmpType.SOURCE_QUENCH ||
    type === IcmpType.REDIRECT ||
    type === IcmpType.TIME_EXCEEDED ||
    type === IcmpType.PARAMETER_PROBLEM
  );
}

/**
 * Reads what a quote holds past its IP header: the first 8 bytes of the transport header, when
 * present. `off` is the quoted transport offset (0 for a later fragment: nothing to read).
 */
export function readQuotedTransport(
  b: Uint8Array,
  off: number,
  end: number,
  q: QuotedPacket,
  icmpProto: number,
  echoRequest: number,
  echoReply: number,
): void {
  q.valid = true;
  if (off === 0 || off + ICMP_HEADER > end) return;
  const proto = q.proto;
  if (proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP) {
    q.hasPorts = true;
    q.srcPort = read16(b, off);
    q.dstPort = read16(b, off + 2);
  } else if (proto === icmpProto) {
    q.icmpType = b[off];
    if (q.icmpType === echoRequest || q.icmpType === echoReply) q.icmpId = read16(b, off + 4);
  }
}

export function resetQuoted(q: QuotedPacket): void {
  q.valid = false;
  q.isFragment = false;
  q.hasPorts = false;
  q.srcPort = 0;
  q.dstPort = 0;
  q.icmpType = -1;
  q.icmpId = 0;
}

export function decodeIcmp(b: Uint8Array, off: number, end: number, partial: boolean, pkt: Packet): number {
  if (off + ICMP_HEADER > end) return partial ? DecodeError.FragmentTooSmall : DecodeError.IcmpTruncated;
  const type = b[off];
  pkt.icmpType = type;
  pkt.icmpCode = b[off + 1];
  if (type === IcmpType.ECHO_REQUEST || type === IcmpType.ECHO_REPLY) {
    pkt.icmpId = read16(b, off + 4);
  } else if (isError(type)) {
    // A quote cut short is normal (routers quote 8 bytes past the IP header): it only stays invalid.
    const q = pkt.quoted;
    const l4 = decodeQuotedIpv4(b, off + ICMP_HEADER, end, q);
    if (l4 >= 0) readQuotedTransport(b, l4, end, q, Proto.ICMP, IcmpType.ECHO_REQUEST, IcmpType.ECHO_REPLY);
  }
  return DecodeError.None;
}
