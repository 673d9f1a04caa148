// The most denied conversations of the last hour, from the dataplanes' deny.summary events (already
// one record per (src, dst, proto, port, rule) and interval, so keeping them is cheap and bounded).

import type { DenySummaryEvent } from '../../ipc/events';
import type { TopDeniedEntry } from './types';

const WINDOW_MS = 60 * 60 * 1000;
/** Summaries kept at most; the oldest go first. */
const MAX_SUMMARIES = 50_000;

interface Summary {
  receivedAt: number;
  event: DenySummaryEvent;
}

export class DeniedTracker {
  private summaries: Summary[] = [];

  record(event: DenySummaryEvent, now: number): void {
    this.summaries.push({ receivedAt: now, event });
    if (this.summaries.length > MAX_SUMMARIES) this.summaries.splice(0, this.summaries.length - MAX_SUMMARIES);
  }

  top(limit: number, now: number): TopDeniedEntry[] {
    const since = now - WINDOW_MS;
    const firstRecent = this.summaries.findIndex((s) => s.receivedAt >= since);
    this.summaries = firstRecent === -1 ? [] : this.summaries.slice(firstRecent);
    const byConversation = new Map<string, TopDeniedEntry>();
    for (const { event: e } of this.summaries) {
      const pair = e.pair ?? '';
      const key = [pair, e.src, e.dst, e.proto, e.dstPort, e.rule, e.action].join('|');
      const lastSeen = e.lastSeen ?? e.time;
      const entry = byConversation.get(key);
      if (entry === undefined) {
        byConversation.set(key, {
          pair,
          src: e.src,
          srcGroups: e.srcGroups,
          dst: e.dst,
          dstGroups: e.dstGroups,
          proto: e.proto,
          dstPort: e.dstPort,
          rule: e.rule,
          action: e.action,
          count: e.count,
          lastSeen,
        });
      } else {
        entry.count += e.count;
        if (lastSeen > entry.lastSeen) entry.lastSeen = lastSeen;
      }
    }
    return [...byConversation.values()].sort((a, b) => b.count - a.count || (a.lastSeen < b.lastSeen ? 1 : -1)).slice(0, Math.max(0, limit));
  }
}
