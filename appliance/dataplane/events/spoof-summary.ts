// Spoofed packets (a bound address from another MAC, detect/source-binding.ts) summarized per
// (claimed address, real MAC, bound MAC, ARP or IP, arrival port) over an interval: a flood becomes
// one record per key, never one per packet. Recording is on the packet path, so the table is
// preallocated (open addressing over typed arrays) and bounded; packets that find it full are counted
// as overflow.

import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';

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

export class SpoofSummary {
  /** Spoofed packets not summarized because the table was full, since the last drain. */
  overflow = 0;
  /** Random per process: a spoofer cannot choose MACs that collide. */
  private readonly seed = (Math.random() * 0x7fffffff) | 0;
  private used = 0;
  private readonly mask: number;
  /** Open-addressing slots: entry index + 1, 0 when empty. */
  private readonly slots: Int32Array;
  private readonly hash: Int32Array;
  private readonly family: Uint8Array;
  private readonly arp: Uint8Array;
  private readonly side: Uint8Array;
  /** Four words per entry; IPv4 in the first. */
  private readonly address: Uint32Array;
  private readonly mac: Float64Array;
  private readonly boundMac: Float64Array;
  private readonly count: Float64Array;
  private readonly bytes: Float64Array;
  private readonly firstSeen: Float64Array;
  private readonly lastSeen: Float64Array;

  constructor(readonly capacity = SPOOF_SUMMARY_KEYS) {
    let size = 2;
    while (size < capacity * 2) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(size);
    this.hash = new Int32Array(capacity);
    this.family = new Uint8Array(capacity);
    this.arp = new Uint8Array(capacity);
    this.side = new Uint8Array(capacity);
    this.address = new Uint32Array(capacity * 4);
    this.mac = new Float64Array(capacity);
    this.boundMac = new Float64Array(capacity);
    this.count = new Float64Array(capacity);
    this.bytes = new Float64Array(capacity);
    this.firstSeen = new Float64Array(capacity);
    this.lastSeen = new Float64Array(capacity);
  }

  /** Keys recorded since the last drain. */
  get size(): number {
    return this.used;
  }

  /** Count one spoofed packet; `src6` is read only for IPv6, `src4` only for IPv4 and ARP. Allocation-free. */
  record(family: number, src4: number, src6: Uint32Array, mac: number, boundMac: number, arp: boolean, side: number, length: number, now: number): void {
    const w0 = family === Family.V6 ? src6[0] : src4;
    const w1 = family === Family.V6 ? src6[1] : 0;
    const w2 = family === Family.V6 ? src6[2] : 0;
    const w3 = family === Family.V6 ? src6[3] : 0;
    // A MAC is 48 bits: its low 32 and its high 16 words, exact in a double.
    const macHigh = (mac / 0x100000000) | 0;
    let h = mix(mix(this.seed, family | (arp ? 0x100 : 0) | (side << 9)), mac >>> 0);
    h = finish(mix(mix(mix(mix(mix(h, macHigh), w0), w1), w2), w3));
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const held = this.slots[slot];
      if (held === 0) break;
      const i = held - 1;
      const at = i * 4;
      const a = this.address;
      if (this.hash[i] === h && this.family[i] === family && this.mac[i] === mac && this.boundMac[i] === boundMac &&
        this.arp[i] === (arp ? 1 : 0) && this.side[i] === side && a[at] === w0 && a[at + 1] === w1 && a[at + 2] === w2 && a[at + 3] === w3) {
        this.count[i]++;
        this.bytes[i] += length;
        this.lastSeen[i] = now;
        return;
      }
    }
    if (this.used === this.capacity) {
      this.overflow++;
      return;
    }
    const i = this.used++;
    let slot = h & this.mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
    this.slots[slot] = i + 1;
    this.hash[i] = h;
    this.family[i] = family;
    this.arp[i] = arp ? 1 : 0;
    this.side[i] = side;
    const at = i * 4;
    this.address[at] = w0;
    this.address[at + 1] = w1;
    this.address[at + 2] = w2;
    this.address[at + 3] = w3;
    this.mac[i] = mac;
    this.boundMac[i] = boundMac;
    this.count[i] = 1;
    this.bytes[i] = length;
    this.firstSeen[i] = now;
    this.lastSeen[i] = now;
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
        count: this.count[i],
        bytes: this.bytes[i],
        firstSeen: this.firstSeen[i],
        lastSeen: this.lastSeen[i],
      });
    }
    this.slots.fill(0);
    this.used = 0;
    return out;
  }
}
