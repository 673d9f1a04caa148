// Ethernet II with up to two 802.1Q / 802.1ad tags.

import { read16 } from './bytes';
import { DecodeError } from './errors';
import { type Packet } from './packet';
import { EtherType } from '../../wire/protocols';

const ETHERNET_HEADER = 14;
const TAG_LENGTH = 4;
/** Outer + inner (QinQ); a third tag is refused rather than guessed at. */
const MAX_VLAN_TAGS = 2;

function isTag(type: number): boolean {
  return type === EtherType.VLAN || type === EtherType.QINQ || type === EtherType.QINQ_LEGACY;
}

/** Fills the link-layer fields and l3Offset; returns a DecodeError code. */
export function decodeEthernet(b: Uint8Array, end: number, pkt: Packet): number {
  if (end < ETHERNET_HEADER) return DecodeError.EthernetTruncated;
  let off = 12;
  let type = read16(b, off);
  off += 2;
  while (isTag(type)) {
    if (pkt.vlanCount === MAX_VLAN_TAGS) return DecodeError.TooManyVlanTags;
    if (off + TAG_LENGTH > end) return DecodeError.VlanTruncated;
    const vid = read16(b, off) & 0x0fff;
    if (pkt.vlanCount === 0) pkt.vlanOuter = vid;
    else pkt.vlanInner = vid;
    pkt.vlanCount++;
    type = read16(b, off + 2);
    off += TAG_LENGTH;
  }
  pkt.etherType = type;
  pkt.l3Offset = off;
  return DecodeError.None;
}
