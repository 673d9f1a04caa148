// Denied traffic summarized per (source, destination, protocol, destination port, VLAN, rule) over an
// interval: a flood of denied packets becomes one record per key, never one per packet. Recording is
// on the packet path: the table (summary-table.ts) is preallocated and bounded; packets that find it
// full are counted as overflow.

import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';
import { SummaryTable } from './summary-table';

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

export class DenySummary extends SummaryTable {
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
  // The key of the packet being recorded (sameKey compares with it).
  private kFamily = 0;
  private kSrc4 = 0;
  private kDst4 = 0;
  private kSrc6: Uint32Array = new Uint32Array(4);
  private kDst6: Uint32Array = new Uint32Array(4);
  private kProto = 0;
  private kDstPort = 0;
  private kVlan = 0;
  private kRule = 0;

  constructor(capacity = DENY_SUMMARY_KEYS) {
    super(capacity);
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
    this.kFamily = family;
    this.kSrc4 = src4;
    this.kDst4 = dst4;
    this.kSrc6 = src6;
    this.kDst6 = dst6;
    this.kProto = proto;
    this.kDstPort = dstPort;
    this.kVlan = vlan;
    this.kRule = rule;
    const i = this.countPacket(finish(h), length, now);
    if (i < 0) return;
    if (!this.created) {
      if (this.srcPort[i] !== srcPort) this.srcPort[i] = MIXED_PORTS;
      return;
    }
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
        ...this.totals(i),
      });
    }
    this.clear();
    return out;
  }

  protected sameKey(i: number): boolean {
    const family = this.kFamily;
    if (this.family[i] !== family || this.proto[i] !== this.kProto || this.dstPort[i] !== this.kDstPort) return false;
    if (this.vlan[i] !== this.kVlan || this.rule[i] !== this.kRule) return false;
    if (family === Family.V4) return this.src4[i] === this.kSrc4 && this.dst4[i] === this.kDst4;
    const at = i * 4;
    const s = this.src6;
    const d = this.dst6;
    const src6 = this.kSrc6;
    const dst6 = this.kDst6;
    return s[at] === src6[0] && s[at + 1] === src6[1] && s[at + 2] === src6[2] && s[at + 3] === src6[3] &&
      d[at] === dst6[0] && d[at + 1] === dst6[1] && d[at + 2] === dst6[2] && d[at + 3] === dst6[3];
  }
}
