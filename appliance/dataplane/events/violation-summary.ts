// Application-layer violations summarized for ot.violation events: one entry per (flow endpoints
// without the client's port, rule, function, unit, reason) per interval, with a count, the address
// range touched and first/last seen. Recorded when an inspector refuses a message; a violation ends
// its flow while enforcing, so entries come at most at the rate of new connections. Bounded: beyond
// MAX_ENTRIES distinct keys in an interval violations are only counted (`overflow`). Text (addresses,
// names) is made when the summary is drained, off the packet path.

import type { Flow } from '../flow/flow';
import { flowEnds, type FlowEnds } from './flow-records';

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

export class ViolationSummary {
  overflow = 0;
  private entries = new Map<string, ViolationEntry>();

  record(flow: Flow, v: Violation, now: number): void {
    const ends = flowEnds(flow);
    const key = `${flow.family}|${ends.src4}|${ends.src6?.join(':')}|${ends.dst4}|${ends.dst6?.join(':')}|${ends.dstPort}|${ends.vlan}|` +
      `${flow.ruleIndex}|${v.protocol}|${v.function}|${v.unit}|${v.reason}|${v.action}`;
    let e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= MAX_ENTRIES) {
        this.overflow++;
        return;
      }
      e = {
        ends, protocol: v.protocol, rule: flow.ruleIndex, reason: v.reason, function: v.function, functionName: v.functionName,
        unit: v.unit, addressFirst: -1, addressLast: -1, action: v.action, count: 0, firstSeen: now, lastSeen: now,
      };
      this.entries.set(key, e);
    }
    e.count++;
    e.lastSeen = now;
    if (v.start >= 0 && v.quantity > 0) {
      const last = v.start + v.quantity - 1;
      if (e.addressFirst < 0 || v.start < e.addressFirst) e.addressFirst = v.start;
      if (last > e.addressLast) e.addressLast = last;
    }
  }

  /** Everything recorded since the last drain; the summary starts empty again. */
  drain(): ViolationEntry[] {
    const out = [...this.entries.values()];
    this.entries = new Map();
    return out;
  }
}
