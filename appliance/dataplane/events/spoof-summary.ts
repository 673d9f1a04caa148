// Spoofed packets (a bound address from another MAC, detect/source-binding.ts) summarized per
// (claimed address, real MAC, bound MAC, ARP or IP, arrival port) over an interval: a flood becomes
// one record per key, never one per packet. Recording is on the packet path: the table
// (summary-table.ts) is preallocated and bounded; packets that find it full are counted as overflow.

import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';
import { SummaryTable } from './summary-table';

/** Keys per interval: spoofers are few, and a flood of random MACs only needs to be counted. */
export const SPOOF_SUMMARY_KEYS = 1024;

/** One summarized key as drained (off the packet path). */
export interface SpoofEntry {
  family: number;
  /** The claimed address: IPv4 as uint32, or IPv6 as four words. */
  address: number | Uint32Array;
  /** 48-bit numbers: the MAC the frame came from (for ARP the sender's), the one the address is bound to. */
  mac: number;
  boundMac: number;
  arp: boolean;
  side: number;
  count: number;
  bytes: number;
  firstSeen: number;
  lastSeen: number;
}

export class SpoofSummary extends SummaryTable {
  private readonly family: Uint8Array;
  private readonly arp: Uint8Array;
  private readonly side: Uint8Array;
  /** Four words per entry; IPv4 in the first. */
  private readonly address: Uint32Array;
  private readonly mac: Float64Array;
  private readonly boundMac: Float64Array;
  // The key of the packet being recorded (sameKey compares with it).
  private readonly key = new Uint32Array(4);
  private kFamily = 0;
  private kArp = 0;
  private kSide = 0;
  private kMac = 0;
  private kBoundMac = 0;

  constructor(capacity = SPOOF_SUMMARY_KEYS) {
    super(capacity);
    this.family = new Uint8Array(capacity);
    this.arp = new Uint8Array(capacity);
    this.side = new Uint8Array(capacity);
    this.address = new Uint32Array(capacity * 4);
    this.mac = new Float64Array(capacity);
    this.boundMac = new Float64Array(capacity);
  }

  /** Count one spoofed packet; `src6` is read only for IPv6, `src4` only for IPv4 and ARP. Allocation-free. */
  record(family: number, src4: number, src6: Uint32Array, mac: number, boundMac: number, arp: boolean, side: number, length: number, now: number): void {
    const k = this.key;
    k[0] = family === Family.V6 ? src6[0] : src4;
    k[1] = family === Family.V6 ? src6[1] : 0;
    k[2] = family === Family.V6 ? src6[2] : 0;
    k[3] = family === Family.V6 ? src6[3] : 0;
    this.kFamily = family;
    this.kArp = arp ? 1 : 0;
    this.kSide = side;
    this.kMac = mac;
    this.kBoundMac = boundMac;
    // A MAC is 48 bits: its low 32 and its high 16 words, exact in a double.
    const macHigh = (mac / 0x100000000) | 0;
    let h = mix(mix(this.seed, family | (arp ? 0x100 : 0) | (side << 9)), mac >>> 0);
    h = finish(mix(mix(mix(mix(mix(h, macHigh), k[0]), k[1]), k[2]), k[3]));
    const i = this.countPacket(h, length, now);
    if (i < 0 || !this.created) return;
    this.family[i] = family;
    this.arp[i] = this.kArp;
    this.side[i] = side;
    this.address.set(k, i * 4);
    this.mac[i] = mac;
    this.boundMac[i] = boundMac;
  }

  /** Everything recorded since the last drain (allocates: call off the packet path), then start over. */
  drain(): SpoofEntry[] {
    const out: SpoofEntry[] = [];
    for (let i = 0; i < this.used; i++) {
      const v6 = this.family[i] === Family.V6;
      out.push({
        family: this.family[i],
        address: v6 ? this.address.slice(i * 4, i * 4 + 4) : this.address[i * 4],
        mac: this.mac[i],
        boundMac: this.boundMac[i],
        arp: this.arp[i] === 1,
        side: this.side[i],
        ...this.totals(i),
      });
    }
    this.clear();
    return out;
  }

  protected sameKey(i: number): boolean {
    const a = this.address;
    const k = this.key;
    const at = i * 4;
    return this.family[i] === this.kFamily && this.mac[i] === this.kMac && this.boundMac[i] === this.kBoundMac && this.arp[i] === this.kArp &&
      this.side[i] === this.kSide && a[at] === k[0] && a[at + 1] === k[1] && a[at + 2] === k[2] && a[at + 3] === k[3];
  }
}
