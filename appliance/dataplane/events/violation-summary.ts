// Application-layer violations summarized for ot.violation events: one entry per (client, server,
// server port, VLAN, rule, function, unit, reason, action) per interval, the client's port left out,
// with a count, the address range touched and first/last seen. Recorded on the packet path when an
// inspector refuses a message (in monitor mode every would-be violation), so the table
// (summary-table.ts) is preallocated and bounded: beyond MAX_ENTRIES keys in an interval violations
// are only counted (`overflow`). The names it keeps are the inspector's constant strings; text
// (addresses) is made when the summary is drained, off the packet path.

import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';
import type { Flow } from '../flow/flow';
import type { FlowEnds } from './flow-records';
import { SummaryTable } from './summary-table';

/** Distinct violation keys per interval. */
export const MAX_ENTRIES = 1024;

export interface ViolationEntry {
  ends: FlowEnds;
  protocol: string;
  rule: number;
  reason: string;
  /** Function code, -1 when the message named none. */
  function: number;
  functionName: string;
  unit: number;
  /** Lowest first address and highest last address touched; -1 when none was named. */
  addressFirst: number;
  addressLast: number;
  action: 'reset' | 'exception' | 'drop' | 'monitor';
  count: number;
  firstSeen: number;
  lastSeen: number;
}

/** One refused message, as the engine's inspection outcome describes it. */
export interface Violation {
  protocol: string;
  reason: string;
  function: number;
  functionName: string;
  unit: number;
  start: number;
  quantity: number;
  action: ViolationEntry['action'];
}

export class ViolationSummary extends SummaryTable {
  private readonly family: Uint8Array;
  private readonly proto: Uint8Array;
  /** Four words per entry and side; IPv4 in the first. */
  private readonly client: Uint32Array;
  private readonly server: Uint32Array;
  private readonly serverPort: Uint16Array;
  /** The flow's VLAN word (outer id << 12 | inner id). */
  private readonly vlan: Int32Array;
  private readonly rule: Int32Array;
  private readonly function: Int16Array;
  private readonly unit: Int16Array;
  private readonly addressFirst: Int32Array;
  private readonly addressLast: Int32Array;
  // References to the inspector's constant strings: storing them allocates nothing.
  private readonly protocol: string[];
  private readonly reason: string[];
  private readonly functionName: string[];
  private readonly action: ViolationEntry['action'][];
  // The key of the violation being recorded (sameKey compares with it).
  private readonly kClient = new Uint32Array(4);
  private readonly kServer = new Uint32Array(4);
  private kFlow: Flow | null = null;
  private kViolation: Violation | null = null;

  constructor(capacity = MAX_ENTRIES) {
    super(capacity);
    this.family = new Uint8Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.client = new Uint32Array(capacity * 4);
    this.server = new Uint32Array(capacity * 4);
    this.serverPort = new Uint16Array(capacity);
    this.vlan = new Int32Array(capacity);
    this.rule = new Int32Array(capacity);
    this.function = new Int16Array(capacity);
    this.unit = new Int16Array(capacity);
    this.addressFirst = new Int32Array(capacity);
    this.addressLast = new Int32Array(capacity);
    this.protocol = new Array<string>(capacity).fill('');
    this.reason = new Array<string>(capacity).fill('');
    this.functionName = new Array<string>(capacity).fill('');
    this.action = new Array<ViolationEntry['action']>(capacity).fill('reset');
  }

  /** Count one violation on `flow`. Allocation-free. */
  record(flow: Flow, v: Violation, now: number): void {
    const i = flow.initiatorIsA;
    const v6 = flow.family === Family.V6;
    const c = this.kClient;
    const s = this.kServer;
    if (v6) {
      c.set(i ? flow.a6 : flow.b6);
      s.set(i ? flow.b6 : flow.a6);
    } else {
      c.fill(0);
      s.fill(0);
      c[0] = i ? flow.a4 : flow.b4;
      s[0] = i ? flow.b4 : flow.a4;
    }
    const serverPort = i ? flow.portB : flow.portA;
    this.kFlow = flow;
    this.kViolation = v;
    let h = mix(mix(mix(this.seed, flow.family | (serverPort << 8)), flow.vlan), flow.ruleIndex);
    h = mix(mix(mix(mix(h, c[0]), c[1]), c[2]), c[3]);
    h = mix(mix(mix(mix(h, s[0]), s[1]), s[2]), s[3]);
    h = finish(mix(mix(h, v.function & 0xffff), v.unit & 0xffff));
    const e = this.countPacket(h, 0, now);
    if (e < 0) return;
    if (this.created) {
      this.family[e] = flow.family;
      this.proto[e] = flow.proto;
      this.client.set(c, e * 4);
      this.server.set(s, e * 4);
      this.serverPort[e] = serverPort;
      this.vlan[e] = flow.vlan;
      this.rule[e] = flow.ruleIndex;
      this.function[e] = v.function;
      this.unit[e] = v.unit;
      this.protocol[e] = v.protocol;
      this.reason[e] = v.reason;
      this.functionName[e] = v.functionName;
      this.action[e] = v.action;
      this.addressFirst[e] = -1;
      this.addressLast[e] = -1;
    }
    if (v.start >= 0 && v.quantity > 0) {
      const last = v.start + v.quantity - 1;
      if (this.addressFirst[e] < 0 || v.start < this.addressFirst[e]) this.addressFirst[e] = v.start;
      if (last > this.addressLast[e]) this.addressLast[e] = last;
    }
  }

  /** Everything recorded since the last drain (allocates: call off the packet path), then start over. */
  drain(): ViolationEntry[] {
    const out: ViolationEntry[] = [];
    for (let e = 0; e < this.used; e++) {
      const v6 = this.family[e] === Family.V6;
      const ends: FlowEnds = {
        family: this.family[e],
        src4: this.client[e * 4],
        dst4: this.server[e * 4],
        src6: v6 ? this.client.slice(e * 4, e * 4 + 4) : null,
        dst6: v6 ? this.server.slice(e * 4, e * 4 + 4) : null,
        proto: this.proto[e],
        srcPort: 0,
        dstPort: this.serverPort[e],
        vlan: this.vlan[e] >>> 12,
      };
      const { count, firstSeen, lastSeen } = this.totals(e);
      out.push({
        ends, protocol: this.protocol[e], rule: this.rule[e], reason: this.reason[e], function: this.function[e],
        functionName: this.functionName[e], unit: this.unit[e], addressFirst: this.addressFirst[e], addressLast: this.addressLast[e],
        action: this.action[e], count, firstSeen, lastSeen,
      });
    }
    this.clear();
    return out;
  }

  protected sameKey(e: number): boolean {
    const flow = this.kFlow as Flow;
    const v = this.kViolation as Violation;
    const at = e * 4;
    const c = this.client;
    const s = this.server;
    const kc = this.kClient;
    const ks = this.kServer;
    return this.family[e] === flow.family && this.rule[e] === flow.ruleIndex && this.vlan[e] === flow.vlan &&
      this.serverPort[e] === (flow.initiatorIsA ? flow.portB : flow.portA) && this.function[e] === v.function && this.unit[e] === v.unit &&
      this.reason[e] === v.reason && this.action[e] === v.action && this.protocol[e] === v.protocol &&
      c[at] === kc[0] && c[at + 1] === kc[1] && c[at + 2] === kc[2] && c[at + 3] === kc[3] &&
      s[at] === ks[0] && s[at + 1] === ks[1] && s[at + 2] === ks[2] && s[at + 3] === ks[3];
  }
}
