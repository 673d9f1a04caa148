// IPv6 header and a bounded walk of the extension-header chain. Stops at l4Offset.

import { read16, read32 } from './bytes';
import { DecodeError } from './errors';
import { type Packet, type QuotedPacket } from './packet';
import { Family, Proto } from '../../wire/protocols';

const HEADER = 40;
/** More headers than a legitimate packet carries (RFC 8200 order has at most 7): refuse, don't walk on. */
const MAX_EXTENSION_HEADERS = 8;

const NextHeader = {
  HOP_BY_HOP: 0,
  ROUTING: 43,
  FRAGMENT: 44,
  AH: 51,
  DESTINATION: 60,
  MOBILITY: 135,
  HIP: 139,
  SHIM6: 140,
  EXPERIMENT1: 253,
  EXPERIMENT2: 254,
} as const;

function isWalkedExtension(next: number): boolean {
  return (
    next === NextHeader.HOP_BY_HOP ||
    next === NextHeader.ROUTING ||
    next === NextHeader.FRAGMENT ||
    next === NextHeader.AH ||
    next === NextHeader.DESTINATION
  );
}

/** Extension headers we do not walk: the protocol behind them is unknown. */
function isOtherExtension(next: number): boolean {
  return (
    next === NextHeader.MOBILITY ||
    next === NextHeader.HIP ||
    next === NextHeader.SHIM6 ||
    next === NextHeader.EXPERIMENT1 ||
    next === NextHeader.EXPERIMENT2
  );
}

/** Result of walkChain; one instance for the module, so the walk allocates nothing. */
class Chain {
  error = 0;
  /** Protocol after the chain, Proto.UNKNOWN when it cannot be known. */
  next = 0;
  /** Offset just past the last header walked. */
  offset = 0;
  isFragment = false;
  fragOffset = 0;
  moreFragments = false;
  fragId = 0;
}

const chain = new Chain();

function walkChain(b: Uint8Array, off: number, end: number, next: number): void {
  chain.error = DecodeError.None;
  chain.isFragment = false;
  chain.fragOffset = 0;
  chain.moreFragments = false;
  chain.fragId = 0;
  let count = 0;
  while (isWalkedExtension(next)) {
    if (count === MAX_EXTENSION_HEADERS) {
      chain.error = DecodeError.Ipv6ExtensionChainTooLong;
      return;
    }
    count++;
    // Every extension header is at least 8 bytes long.
    if (off + 8 > end) {
      chain.error = DecodeError.Ipv6ExtensionTruncated;
      return;
    }
    if (next === NextHeader.FRAGMENT) {
      const offsetFlags = read16(b, off + 2);
      chain.isFragment = true;
      chain.fragOffset = offsetFlags & 0xfff8;
      chain.moreFragments = (offsetFlags & 1) !== 0;
      chain.fragId = read32(b, off + 4);
      next = b[off];
      off += 8;
      if (chain.fragOffset !== 0) {
        // A later fragment: the header named here starts in the first fragment, not in this one.
        chain.next = isWalkedExtension(next) || isOtherExtension(next) ? Proto.UNKNOWN : next;
        chain.offset = off;
        return;
      }
      continue;
    }
    const len = next === NextHeader.AH ? (b[off + 1] + 2) * 4 : (b[off + 1] + 1) * 8;
    if (off + len > end) {
      chain.error = DecodeError.Ipv6ExtensionTruncated;
      return;
    }
    next = b[off];
    off += len;
  }
  chain.next = isOtherExtension(next) ? Proto.UNKNOWN : next;
  chain.offset = off;
}

function readAddress(b: Uint8Array, off: number, words: Uint32Array): void {
  words[0] = read32(b, off);
  words[1] = read32(b, off + 4);
  words[2] = read32(b, off + 8);
  words[3] = read32(b, off + 12);
}

/** ::ffff:0:0/96 on the wire would alias an IPv4 address in the rules. */
function isMapped(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** Decodes the IPv6 header and extension chain at pkt.l3Offset; `end` is the captured frame length. */
export function decodeIpv6(b: Uint8Array, end: number, pkt: Packet): number {
  const off = pkt.l3Offset;
  if (off + HEADER > end) return DecodeError.Ipv6Truncated;
  if (b[off] >> 4 !== 6) return DecodeError.Ipv6BadVersion;
  const payloadLength = read16(b, off + 4);
  // Bytes past the payload are Ethernet padding; fewer than it claims is a truncated packet.
  if (off + HEADER + payloadLength > end) return DecodeError.Ipv6Truncated;
  readAddress(b, off + 8, pkt.src6);
  readAddress(b, off + 24, pkt.dst6);
  if (isMapped(pkt.src6) || isMapped(pkt.dst6)) return DecodeError.Ipv6MappedAddress;

  walkChain(b, off + HEADER, off + HEADER + payloadLength, b[off + 6]);
  if (chain.error !== DecodeError.None) return chain.error;
  pkt.family = Family.V6;
  pkt.ttl = b[off + 7];
  pkt.proto = chain.next;
  pkt.l3HeaderLength = chain.offset - off;
  pkt.l3TotalLength = HEADER + payloadLength;
  pkt.isFragment = chain.isFragment;
  pkt.fragOffset = chain.fragOffset;
  pkt.moreFragments = chain.moreFragments;
  pkt.fragId = chain.fragId;
  pkt.l4Offset = chain.offset;
  return DecodeError.None;
}

/**
 * Decodes the IPv6 packet an ICMPv6 error quotes. Returns the offset of the quoted transport
 * header, 0 when the quote is a later fragment, or -1 when the quote is unusable.
 */
export function decodeQuotedIpv6(b: Uint8Array, off: number, end: number, q: QuotedPacket): number {
  if (off + HEADER > end || b[off] >> 4 !== 6) return -1;
  walkChain(b, off + HEADER, end, b[off + 6]);
  if (chain.error !== DecodeError.None) return -1;
  q.family = Family.V6;
  q.proto = chain.next;
  q.isFragment = chain.isFragment;
  readAddress(b, off + 8, q.src6);
  readAddress(b, off + 24, q.dst6);
  return chain.fragOffset === 0 ? chain.offset : 0;
}
