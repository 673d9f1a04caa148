// TCP header. `partial` marks a first fragment: more of the datagram follows in later fragments.

import { read16, read32 } from './bytes';
import { DecodeError } from './errors';
import type { Packet } from './packet';

const MIN_HEADER = 20;

export function decodeTcp(b: Uint8Array, off: number, end: number, partial: boolean, pkt: Packet): number {
  const available = end - off;
  // A first fragment must carry the whole TCP header (RFC 1858), or the flags escape inspection.
  if (available < MIN_HEADER) return partial ? DecodeError.FragmentTooSmall : DecodeError.TcpTruncated;
  const headerLength = (b[off + 12] >> 4) * 4;
  if (headerLength < MIN_HEADER) return DecodeError.TcpBadHeaderLength;
  if (headerLength > available) return partial ? DecodeError.FragmentTooSmall : DecodeError.TcpBadHeaderLength;
  pkt.hasPorts = true;
  pkt.srcPort = read16(b, off);
  pkt.dstPort = read16(b, off + 2);
  pkt.tcpSeq = read32(b, off + 4);
  pkt.tcpAck = read32(b, off + 8);
  pkt.tcpFlags = b[off + 13];
  pkt.l4PayloadLength = available - headerLength;
  return DecodeError.None;
}
