// Denied traffic summarized per (source, destination, protocol, destination port, VLAN, rule) over an
// interval: a flood of denied packets becomes one record per key, never one per packet. Recording is
// on the packet path, so the table is preallocated (open addressing over typed arrays) and bounded;
// packets that find the table full are counted as overflow.

import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';

/** Keys per interval; beyond this, denied packets are only counted as overflow. */
export const DENY_SUMMARY_KEYS = 4096;
/** Source port recorded when the packets of one key came from several ports. */
export const MIXED_PORTS = -1;

/** One summarized key as drained (off the packet path). */
export interface DenyEntry {
  family: number;
  /** IPv4 as uint32, or IPv6 as four words. */
  src: number | Uint32Array;
  dst: number | Uint32Array;
  proto: number;
  /** The same source port for every packet, or MIXED_PORTS. */
  srcPort: number;
  dstPort: number;
  vlan: number;
  rule: number;
  count: number;
  bytes: number;
  firstSeen: number;
  lastSeen: number;
}

export class DenySummary {
  /** Denied packets not summarized because the table was full, since the last drain. */
  overflow = 0;
  /** Random per process: an outside host cannot choose keys that collide. */
  private readonly seed = (Math.random() * 0x7fffffff) | 0;
  private used = 0;
  private readonly mask: number;
  /** Open-addressing slots: entry index + 1, 0 when empty. */
  private readonly slots: Int32Array;
  private readonly hash: Int32Array;
  private readonly family: Uint8Array;
  private readonly src4: Uint32Array;
  private readonly dst4: Uint32Array;
  private readonly src6: Uint32Array;
  private readonly dst6: Uint32Array;
  private readonly proto: Uint16Array;
  private readonly srcPort: Int32Array;
  private readonly dstPort: Int32Array;
  private readonly vlan: Uint16Array;
  private readonly rule: Int32Array;
  private readonly count: Float64Array;
  private readonly bytes: Float64Array;
  private readonly firstSeen: Float64Array;
  private readonly lastSeen: Float64Array;

  constructor(readonly capacity = DENY_SUMMARY_KEYS) {
    let size = 2;
    while (size < capacity * 2) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(size);
    this.hash = new Int32Array(capacity);
    this.family = new Uint8Array(capacity);
    this.src4 = new Uint32Array(capacity);
    this.dst4 = new Uint32Array(capacity);
    this.src6 = new Uint32Array(capacity * 4);
    this.dst6 = new Uint32Array(capacity * 4);
    this.proto = new Uint16Array(capacity);
    this.srcPort = new Int32Array(capacity);
    this.dstPort = new Int32Array(capacity);
    this.vlan = new Uint16Array(capacity);
    this.rule = new Int32Array(capacity);
    this.count = new Float64Array(capacity);
    this.bytes = new Float64Array(capacity);
    this.firstSeen = new Float64Array(capacity);
    this.lastSeen = new Float64Array(capacity);
  }

  /** Keys recorded since the last drain. */
  get size(): number {
    return this.used;
  }

  /**
   * Count one denied packet. `src6`/`dst6` are read only for IPv6 (`src4`/`dst4` only for IPv4).
   * Allocation-free.
   */
  record(
    family: number, src4: number, dst4: number, src6: Uint32Array, dst6: Uint32Array,
    proto: number, srcPort: number, dstPort: number, vlan: number, rule: number, length: number, now: number,
  ): void {
    let h = mix(mix(mix(this.seed, proto | (family << 16)), dstPort | (vlan << 16)), rule);
    if (family === Family.V4) {
      h = mix(mix(h, src4), dst4);
    } else {
      h = mix(mix(mix(mix(h, src6[0]), src6[1]), src6[2]), src6[3]);
      h = mix(mix(mix(mix(h, dst6[0]), dst6[1]), dst6[2]), dst6[3]);
    }
    h = finish(h);
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const held = this.slots[slot];
      if (held === 0) break;
      const i = held - 1;
      if (this.hash[i] === h && this.sameKey(i, family, src4, dst4, src6, dst6, proto, dstPort, vlan, rule)) {
        this.count[i]++;
        this.bytes[i] += length;
        this.lastSeen[i] = now;
        if (this.srcPort[i] !== srcPort) this.srcPort[i] = MIXED_PORTS;
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
    if (family === Family.V4) {
      this.src4[i] = src4;
      this.dst4[i] = dst4;
    } else {
      this.src6.set(src6, i * 4);
      this.dst6.set(dst6, i * 4);
    }
    this.proto[i] = proto;
    this.srcPort[i] = srcPort;
    this.dstPort[i] = dstPort;
    this.vlan[i] = vlan;
    this.rule[i] = rule;
    this.count[i] = 1;
    this.bytes[i] = length;
    this.firstSeen[i] = now;
    this.lastSeen[i] = now;
  }

  /** Everything recorded since the last drain (allocates: call off the packet path), then start over. */
  drain(): DenyEntry[] {
    const out: DenyEntry[] = [];
    for (let i = 0; i < this.used; i++) {
      const v4 = this.family[i] === Family.V4;
      out.push({
        family: this.family[i],
        src: v4 ? this.src4[i] : this.src6.slice(i * 4, i * 4 + 4),
        dst: v4 ? this.dst4[i] : this.dst6.slice(i * 4, i * 4 + 4),
        proto: this.proto[i],
        srcPort: this.srcPort[i],
        dstPort: this.dstPort[i],
        vlan: this.vlan[i],
        rule: this.rule[i],
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

  private sameKey(
    i: number, family: number, src4: number, dst4: number, src6: Uint32Array, dst6: Uint32Array,
    proto: number, dstPort: number, vlan: number, rule: number,
  ): boolean {
    if (this.family[i] !== family || this.proto[i] !== proto || this.dstPort[i] !== dstPort) return false;
    if (this.vlan[i] !== vlan || this.rule[i] !== rule) return false;
    if (family === Family.V4) return this.src4[i] === src4 && this.dst4[i] === dst4;
    const at = i * 4;
    const s = this.src6;
    const d = this.dst6;
    return s[at] === src6[0] && s[at + 1] === src6[1] && s[at + 2] === src6[2] && s[at + 3] === src6[3] &&
      d[at] === dst6[0] && d[at + 1] === dst6[1] && d[at + 2] === dst6[2] && d[at + 3] === dst6[3];
  }
}
