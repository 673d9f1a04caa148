// The most denied conversations of the last hour, from the dataplanes' deny.summary events: one
// conversation per (pair, src, dst, proto, port, rule, action), its packets summed.

import type { DenySummaryEvent } from '../../ipc/events';
import { RecentSummaries } from './recent-summaries';
import type { TopDeniedEntry } from './types';

export class DeniedTracker extends RecentSummaries<DenySummaryEvent, TopDeniedEntry> {
  constructor() {
    super({
      keyOf: (e) => [e.pair ?? '', e.src, e.dst, e.proto, e.dstPort, e.rule, e.action].join('|'),
      start: (e) => ({
        pair: e.pair ?? '', src: e.src, srcGroups: e.srcGroups, dst: e.dst, dstGroups: e.dstGroups, proto: e.proto, dstPort: e.dstPort,
        rule: e.rule, action: e.action, count: e.count, lastSeen: e.lastSeen ?? e.time,
      }),
      add: (entry, e) => {
        entry.count += e.count;
        const lastSeen = e.lastSeen ?? e.time;
        if (lastSeen > entry.lastSeen) entry.lastSeen = lastSeen;
      },
    });
  }
}
