// IPv4 header, options walk and fragment fields. Stops at l4Offset; decoder.ts dispatches the transport.

import { read16, read32 } from './bytes';
import { DecodeError } from './errors';
import { type Packet, type QuotedPacket } from './packet';
import { Family } from '../../wire/protocols';

const MIN_HEADER = 20;
const Option = {
  EOL: 0,
  NOP: 1,
  RECORD_ROUTE: 7,
  QUICK_START: 25,
  TIMESTAMP: 68,
  SECURITY: 130,
  LOOSE_ROUTE: 131,
  STREAM_ID: 136,
  STRICT_ROUTE: 137,
  ROUTER_ALERT: 148,
} as const;

/** Smallest valid length of an option with a defined layout (RFC 791, 1108, 2113, 4782); 2 otherwise. */
function minOptionLength(type: number): number {
  switch (type) {
    case Option.SECURITY:
    case Option.RECORD_ROUTE:
    case Option.LOOSE_ROUTE:
    case Option.STRICT_ROUTE:
      return 3;
    case Option.TIMESTAMP:
    case Option.STREAM_ID:
    case Option.ROUTER_ALERT:
      return 4;
    case Option.QUICK_START:
      return 8;
    default:
      return 2;
  }
}

/**
 * Every option must fit the header and be as long as its layout needs: a length that runs past
 * the header, or a known option cut short, is malformed (and how options smuggle bytes).
 */
function optionsValid(b: Uint8Array, off: number, end: number): boolean {
  while (off < end) {
    const type = b[off];
    if (type === Option.EOL) return true;
    if (type === Option.NOP) {
      off++;
      continue;
    }
    if (off + 1 >= end) return false;
    const len = b[off + 1];
    if (len < minOptionLength(type) || off + len > end) return false;
    off += len;
  }
  return true;
}

/** Decodes the IPv4 header at pkt.l3Offset; `end` is the captured frame length. */
export function decodeIpv4(b: Uint8Array, end: number, pkt: Packet): number {
  const off = pkt.l3Offset;
  if (off + MIN_HEADER > end) return DecodeError.Ipv4Truncated;
  if (b[off] >> 4 !== 4) return DecodeError.Ipv4BadVersion;
  const headerLength = (b[off] & 0x0f) * 4;
  if (headerLength < MIN_HEADER) return DecodeError.Ipv4BadHeaderLength;
  if (off + headerLength > end) return DecodeError.Ipv4Truncated;
  const totalLength = read16(b, off + 2);
  if (totalLength < headerLength) return DecodeError.Ipv4BadTotalLength;
  // Bytes past totalLength are Ethernet padding; fewer bytes than it claims is a truncated packet.
  if (off + totalLength > end) return DecodeError.Ipv4Truncated;
  if (!optionsValid(b, off + MIN_HEADER, off + headerLength)) return DecodeError.Ipv4BadOptions;

  pkt.family = Family.V4;
  pkt.l3HeaderLength = headerLength;
  pkt.l3TotalLength = totalLength;
  pkt.fragId = read16(b, off + 4);
  const flagsOffset = read16(b, off + 6);
  pkt.moreFragments = (flagsOffset & 0x2000) !== 0;
  pkt.fragOffset = (flagsOffset & 0x1fff) * 8;
  pkt.isFragment = pkt.moreFragments || pkt.fragOffset !== 0;
  pkt.ttl = b[off + 8];
  pkt.proto = b[off + 9];
  pkt.src4 = read32(b, off + 12);
  pkt.dst4 = read32(b, off + 16);
  pkt.l4Offset = off + headerLength;
  return DecodeError.None;
}

/**
 * Decodes the IPv4 header an ICMP error quotes, which is usually cut short. Returns the offset of
 * the quoted transport header, 0 when the quote is a later fragment (no transport header), or -1
 * when the quote is unusable. Leaves q.valid to the caller.
 */
export function decodeQuotedIpv4(b: Uint8Array, off: number, end: number, q: QuotedPacket): number {
  if (off + MIN_HEADER > end || b[off] >> 4 !== 4) return -1;
  const headerLength = (b[off] & 0x0f) * 4;
  if (headerLength < MIN_HEADER || off + headerLength > end) return -1;
  q.family = Family.V4;
  q.proto = b[off + 9];
  q.src4 = read32(b, off + 12);
  q.dst4 = read32(b, off + 16);
  const flagsOffset = read16(b, off + 6);
  q.isFragment = (flagsOffset & 0x3fff) !== 0;
  // A later fragment carries no transport header to read ports from.
  return (flagsOffset & 0x1fff) === 0 ? off + headerLength : 0;
}
