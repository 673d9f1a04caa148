// The most violating conversations of the last hour, from the dataplanes' ot.violation events: one
// conversation per (pair, client, server, rule, function, unit, reason), its count summed, the widest
// address range and the latest action kept. Summing only: what a violation is, is the dataplane's business.

import type { OtViolationEvent } from '../../ipc/events';
import { RecentSummaries } from './recent-summaries';
import type { TopViolationEntry } from './types';

export { SUMMARY_WINDOW_MS as VIOLATION_WINDOW_MS, MAX_SUMMARIES as MAX_VIOLATION_SUMMARIES } from './recent-summaries';

export class ViolationTracker extends RecentSummaries<OtViolationEvent, TopViolationEntry> {
  constructor() {
    super({
      keyOf: (e) => JSON.stringify([e.pair ?? '', e.src, e.dst, e.dstPort, e.rule, e.function, e.unit, e.reason]),
      start: (e) => {
        const entry: TopViolationEntry = {
          pair: e.pair ?? '', src: e.src, srcGroups: e.srcGroups, dst: e.dst, dstGroups: e.dstGroups, dstPort: e.dstPort,
          protocol: e.protocol, rule: e.rule, function: e.function, unit: e.unit, reason: e.reason, action: e.action, count: e.count,
          firstSeen: e.firstSeen ?? e.time, lastSeen: e.lastSeen ?? e.time,
        };
        if (e.addressFirst !== undefined) entry.addressFirst = e.addressFirst;
        if (e.addressLast !== undefined) entry.addressLast = e.addressLast;
        return entry;
      },
      add: (entry, e) => {
        entry.count += e.count;
        const firstSeen = e.firstSeen ?? e.time;
        const lastSeen = e.lastSeen ?? e.time;
        if (firstSeen < entry.firstSeen) entry.firstSeen = firstSeen;
        // The action can change with a reload or a mode change: the latest one says what happens now.
        if (lastSeen >= entry.lastSeen) {
          entry.lastSeen = lastSeen;
          entry.action = e.action;
        }
        if (e.addressFirst !== undefined) entry.addressFirst = Math.min(entry.addressFirst ?? e.addressFirst, e.addressFirst);
        if (e.addressLast !== undefined) entry.addressLast = Math.max(entry.addressLast ?? e.addressLast, e.addressLast);
      },
    });
  }
}
