// Hosts seen on each port, summarized per (address family, source address, source MAC, outer VLAN,
// arrival port) over an observation interval (events/observations.ts drains it). Fed off the
// per-packet fast path only: at a flow's first packet from each end, for ARP, for denied packets and
// for identity frames, never for a packet of an established flow. The table (summary-table.ts) is
// preallocated and bounded; a sighting that finds it full is only counted as overflow. Must not
// allocate when recording.

import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';
import { SummaryTable } from './summary-table';

/**
 * Keys per interval. A plant segment has tens to hundreds of hosts (one MAC per address, a router's
 * MAC for every routed address); 4096 keys (about 200 KiB) hold that many times over, and a scan of
 * spoofed sources only needs to be counted.
 */
export const SIGHTING_KEYS = 4096;

/** One sighting as drained (off the packet path). */
export interface SightingEntry {
  /** Family.V4, Family.V6, or Family.None when the frame carried no address. */
  family: number;
  address: number | Uint32Array;
  /** 48-bit number. */
  mac: number;
  vlan: number;
  side: number;
  frames: number;
  firstSeen: number;
  lastSeen: number;
}

export class SightingTable extends SummaryTable {
  private readonly family: Uint8Array;
  private readonly side: Uint8Array;
  private readonly vlan: Uint16Array;
  /** Four words per entry; IPv4 in the first. */
  private readonly address: Uint32Array;
  private readonly mac: Float64Array;
  private readonly key = new Uint32Array(4);
  private kFamily = 0;
  private kSide = 0;
  private kVlan = 0;
  private kMac = 0;

  constructor(capacity = SIGHTING_KEYS) {
    super(capacity);
    this.family = new Uint8Array(capacity);
    this.side = new Uint8Array(capacity);
    this.vlan = new Uint16Array(capacity);
    this.address = new Uint32Array(capacity * 4);
    this.mac = new Float64Array(capacity);
  }

  /**
   * Count one frame from `mac` carrying source `src4` (IPv4) or `src6` (IPv6), or no address
   * (Family.None, or IPv4 0.0.0.0), on `side`. `src6` is read only for IPv6. Allocation-free.
   */
  record(family: number, src4: number, src6: Uint32Array, mac: number, vlan: number, side: number, now: number): void {
    // 0.0.0.0 (DHCP before a lease, an ARP probe) claims no address.
    if (family === Family.V4 && src4 === 0) family = Family.None;
    const k = this.key;
    const v6 = family === Family.V6;
    k[0] = v6 ? src6[0] : family === Family.V4 ? src4 : 0;
    k[1] = v6 ? src6[1] : 0;
    k[2] = v6 ? src6[2] : 0;
    k[3] = v6 ? src6[3] : 0;
    this.kFamily = family;
    this.kSide = side;
    this.kVlan = vlan;
    this.kMac = mac;
    const macHigh = (mac / 0x100000000) | 0;
    let h = mix(mix(this.seed, family | (side << 8) | (vlan << 9)), mac >>> 0);
    h = finish(mix(mix(mix(mix(mix(h, macHigh), k[0]), k[1]), k[2]), k[3]));
    const i = this.countPacket(h, 0, now);
    if (i < 0 || !this.created) return;
    this.family[i] = family;
    this.side[i] = side;
    this.vlan[i] = vlan;
    this.address.set(k, i * 4);
    this.mac[i] = mac;
  }

  /** Everything recorded since the last drain (allocates: call off the packet path), then start over. */
  drain(): SightingEntry[] {
    const out: SightingEntry[] = [];
    for (let i = 0; i < this.used; i++) {
      const { count, firstSeen, lastSeen } = this.totals(i);
      out.push({
        family: this.family[i],
        address: this.family[i] === Family.V6 ? this.address.slice(i * 4, i * 4 + 4) : this.address[i * 4],
        mac: this.mac[i],
        vlan: this.vlan[i],
        side: this.side[i],
        frames: count,
        firstSeen,
        lastSeen,
      });
    }
    this.clear();
    return out;
  }

  protected sameKey(i: number): boolean {
    const a = this.address;
    const k = this.key;
    const at = i * 4;
    return this.mac[i] === this.kMac && this.family[i] === this.kFamily && this.side[i] === this.kSide && this.vlan[i] === this.kVlan &&
      a[at] === k[0] && a[at + 1] === k[1] && a[at + 2] === k[2] && a[at + 3] === k[3];
  }
}
