// The most violating conversations of the last hour, from the dataplanes' ot.violation events
// (already one record per (client, server, rule, function, unit, reason) and interval, so keeping them
// is cheap and bounded). Summing only: what a violation is, is the dataplane's business.

import type { OtViolationEvent } from '../../ipc/events';
import type { TopViolationEntry } from './types';

export const VIOLATION_WINDOW_MS = 60 * 60 * 1000;
/** Summaries kept at most; the oldest go first. */
export const MAX_VIOLATION_SUMMARIES = 50_000;

interface Summary {
  receivedAt: number;
  event: OtViolationEvent;
}

export class ViolationTracker {
  private summaries: Summary[] = [];

  record(event: OtViolationEvent, now: number): void {
    this.summaries.push({ receivedAt: now, event });
    if (this.summaries.length > MAX_VIOLATION_SUMMARIES) this.summaries.splice(0, this.summaries.length - MAX_VIOLATION_SUMMARIES);
  }

  top(limit: number, now: number): TopViolationEntry[] {
    const since = now - VIOLATION_WINDOW_MS;
    const firstRecent = this.summaries.findIndex((s) => s.receivedAt >= since);
    this.summaries = firstRecent === -1 ? [] : this.summaries.slice(firstRecent);
    const byConversation = new Map<string, TopViolationEntry>();
    for (const { event: e } of this.summaries) {
      const pair = e.pair ?? '';
      const key = JSON.stringify([pair, e.src, e.dst, e.dstPort, e.rule, e.function, e.unit, e.reason]);
      const firstSeen = e.firstSeen ?? e.time;
      const lastSeen = e.lastSeen ?? e.time;
      const entry = byConversation.get(key);
      if (entry === undefined) {
        const created: TopViolationEntry = {
          pair,
          src: e.src,
          srcGroups: e.srcGroups,
          dst: e.dst,
          dstGroups: e.dstGroups,
          dstPort: e.dstPort,
          protocol: e.protocol,
          rule: e.rule,
          function: e.function,
          unit: e.unit,
          reason: e.reason,
          action: e.action,
          count: e.count,
          firstSeen,
          lastSeen,
        };
        if (e.addressFirst !== undefined) created.addressFirst = e.addressFirst;
        if (e.addressLast !== undefined) created.addressLast = e.addressLast;
        byConversation.set(key, created);
        continue;
      }
      entry.count += e.count;
      if (firstSeen < entry.firstSeen) entry.firstSeen = firstSeen;
      // The action can change with a reload or a mode change: the latest one says what happens now.
      if (lastSeen >= entry.lastSeen) {
        entry.lastSeen = lastSeen;
        entry.action = e.action;
      }
      if (e.addressFirst !== undefined) entry.addressFirst = Math.min(entry.addressFirst ?? e.addressFirst, e.addressFirst);
      if (e.addressLast !== undefined) entry.addressLast = Math.max(entry.addressLast ?? e.addressLast, e.addressLast);
    }
    return [...byConversation.values()].sort((a, b) => b.count - a.count || (a.lastSeen < b.lastSeen ? 1 : -1)).slice(0, Math.max(0, limit));
  }
}
