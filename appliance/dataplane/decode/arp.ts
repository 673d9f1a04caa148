// ARP. Only IPv4-over-Ethernet ARP fills the addresses; other hardware/protocol types leave arpOp 0.

import { read16, read32, read48 } from './bytes';
import { DecodeError } from './errors';
import { type Packet } from './packet';
import { EtherType } from '../../wire/protocols';

const ARP_FIXED = 8;
const ARP_IPV4_ETHERNET = 28;

export function decodeArp(b: Uint8Array, off: number, end: number, pkt: Packet): number {
  if (off + ARP_FIXED > end) return DecodeError.ArpTruncated;
  const hardware = read16(b, off);
  const protocol = read16(b, off + 2);
  if (hardware !== 1 || protocol !== EtherType.IPV4 || b[off + 4] !== 6 || b[off + 5] !== 4) {
    return DecodeError.None;
  }
  if (off + ARP_IPV4_ETHERNET > end) return DecodeError.ArpTruncated;
  pkt.arpOp = read16(b, off + 6);
  pkt.arpSenderMac = read48(b, off + 8);
  pkt.arpSenderIp = read32(b, off + 14);
  pkt.arpTargetIp = read32(b, off + 24);
  return DecodeError.None;
}
