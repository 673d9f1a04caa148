// The most frequent conversations of the last hour, from summary events the dataplanes already send
// once per key and interval (deny.summary, ot.violation), so keeping them is cheap and bounded. What
// makes a conversation and how two summaries of it add up is the caller's (denied.ts, violations.ts);
// this keeps the window, the bound and the ranking.

export const SUMMARY_WINDOW_MS = 60 * 60 * 1000;
/** Summaries kept at most; the oldest go first. */
export const MAX_SUMMARIES = 50_000;

/** What a conversation's entry must carry for the ranking. */
export interface RankedEntry {
  count: number;
  lastSeen: string;
}

export interface SummaryRules<E, T extends RankedEntry> {
  /** The conversation a summary belongs to. */
  keyOf(event: E): string;
  /** The entry of a conversation's first summary. */
  start(event: E): T;
  /** Add a later summary of the same conversation to its entry. */
  add(entry: T, event: E): void;
}

export class RecentSummaries<E, T extends RankedEntry> {
  private summaries: { receivedAt: number; event: E }[] = [];

  constructor(private readonly rules: SummaryRules<E, T>) {}

  record(event: E, now: number): void {
    this.summaries.push({ receivedAt: now, event });
    if (this.summaries.length > MAX_SUMMARIES) this.summaries.splice(0, this.summaries.length - MAX_SUMMARIES);
  }

  /** The `limit` conversations with the most counted in the window, most recent first among equals. */
  top(limit: number, now: number): T[] {
    const since = now - SUMMARY_WINDOW_MS;
    const firstRecent = this.summaries.findIndex((s) => s.receivedAt >= since);
    this.summaries = firstRecent === -1 ? [] : this.summaries.slice(firstRecent);
    const byConversation = new Map<string, T>();
    for (const { event } of this.summaries) {
      const key = this.rules.keyOf(event);
      const entry = byConversation.get(key);
      if (entry === undefined) byConversation.set(key, this.rules.start(event));
      else this.rules.add(entry, event);
    }
    return [...byConversation.values()].sort((a, b) => b.count - a.count || (a.lastSeen < b.lastSeen ? 1 : -1)).slice(0, Math.max(0, limit));
  }
}
