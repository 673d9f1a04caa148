// SCTP common header (ports, verification tag, checksum); chunks are not walked.

import { read16 } from './bytes';
import { DecodeError } from './errors';
import type { Packet } from './packet';

const COMMON_HEADER = 12;

export function decodeSctp(b: Uint8Array, off: number, end: number, partial: boolean, pkt: Packet): number {
  const available = end - off;
  if (available < COMMON_HEADER) return partial ? DecodeError.FragmentTooSmall : DecodeError.SctpTruncated;
  pkt.hasPorts = true;
  pkt.srcPort = read16(b, off);
  pkt.dstPort = read16(b, off + 2);
  pkt.l4PayloadLength = available - COMMON_HEADER;
  return DecodeError.None;
}
