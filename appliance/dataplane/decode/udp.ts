// UDP header. `partial` marks a first fragment: the UDP length covers bytes in later fragments.

import { read16 } from './bytes';
import { DecodeError } from './errors';
import type { Packet } from './packet';

const HEADER = 8;

export function decodeUdp(b: Uint8Array, off: number, end: number, partial: boolean, pkt: Packet): number {
  const available = end - off;
  if (available < HEADER) return partial ? DecodeError.FragmentTooSmall : DecodeError.UdpTruncated;
  const length = read16(b, off + 4);
  // Fewer bytes than the UDP length claims is malformed; more is trailing data, as tshark reads it.
  if (length < HEADER || (!partial && length > available)) return DecodeError.UdpBadLength;
  pkt.hasPorts = true;
  pkt.srcPort = read16(b, off);
  pkt.dstPort = read16(b, off + 2);
  pkt.l4PayloadLength = (partial ? available : length) - HEADER;
  return DecodeError.None;
}
