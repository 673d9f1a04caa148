// ICMPv6: type, code, echo identifier, and the packet an error message quotes.

import { read16 } from './bytes';
import { DecodeError } from './errors';
import { ICMP_HEADER, readQuotedTransport } from './icmp';
import { decodeQuotedIpv6 } from './ipv6';
import { type Packet } from './packet';
import { Proto } from '../../wire/protocols';

const Icmpv6Type = {
  DEST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
} as const;

export function decodeIcmpv6(b: Uint8Array, off: number, end: number, partial: boolean, pkt: Packet): number {
  if (off + ICMP_HEADER > end) return partial ? DecodeError.FragmentTooSmall : DecodeError.Icmpv6Truncated;
  const type = b[off];
  pkt.icmpType = type;
  pkt.icmpCode = b[off + 1];
  if (type === Icmpv6Type.ECHO_REQUEST || type === Icmpv6Type.ECHO_REPLY) {
    pkt.icmpId = read16(b, off + 4);
  } else if (type >= Icmpv6Type.DEST_UNREACHABLE && type <= Icmpv6Type.PARAMETER_PROBLEM) {
    const q = pkt.quoted;
    const l4 = decodeQuotedIpv6(b, off + ICMP_HEADER, end, q);
    if (l4 >= 0) {
      readQuotedTransport(b, l4, end, q, Proto.ICMPV6, Icmpv6Type.ECHO_REQUEST, Icmpv6Type.ECHO_REPLY);
    }
  }
  return DecodeError.None;
}
