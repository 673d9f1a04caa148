// The event store: recent events in a bounded in-memory ring for GET /events, and on disk in
// <stateDir>/events.jsonl, rotated by size (events.jsonl → events.1.jsonl, two files at most), so
// the list survives a restart. Writes are not fsynced: events are high volume and losing the last
// ones in a power cut is acceptable (the audit log, which is fsynced, keeps who changed what).

import { closeSync, fstatSync, ftruncateSync, openSync, renameSync } from 'node:fs';
import { writeAll } from '../wire/atomic-file';
import { join } from 'node:path';
import { severityNames, type GatekeeperEvent, type Severity } from '../ipc/events';
import { readJsonLines, truncateTornTail } from './state/jsonl';
import type { StateLog } from './state/store';

export const EVENT_RING_SIZE = 10_000;
export const EVENT_FILE_MAX_BYTES = 16 * 1024 * 1024;

export interface EventQuery {
  /** Event types; empty or absent = all. */
  types?: string[];
  /** Only events at least this severe. */
  minSeverity?: Severity;
  pair?: string;
  /** Only events strictly older than this ISO time. */
  before?: string;
  limit: number;
}

export class EventLog {
  private readonly ring: GatekeeperEvent[] = [];
  private fd: number;
  private size: number;

  constructor(
    private readonly dir: string,
    log: StateLog,
    private readonly maxFileBytes = EVENT_FILE_MAX_BYTES,
  ) {
    const current = this.path(0);
    const torn = truncateTornTail(current);
    if (torn > 0) log.warn({ bytes: torn }, 'cut a torn last line from the event log');
    for (const path of [this.path(1), current]) {
      const { values, badLines } = readJsonLines(path);
      if (badLines.length) log.warn({ path, lines: badLines }, 'skipped unreadable event log lines');
      for (const v of values) if (isEvent(v)) this.remember(v);
    }
    this.fd = openSync(current, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  private path(generation: 0 | 1): string {
    return join(this.dir, generation === 0 ? 'events.jsonl' : 'events.1.jsonl');
  }

  private remember(event: GatekeeperEvent): void {
    this.ring.push(event);
    if (this.ring.length > EVENT_RING_SIZE * 1.25) this.ring.splice(0, this.ring.length - EVENT_RING_SIZE);
  }

  add(event: GatekeeperEvent): void {
    this.remember(event);
    const line = Buffer.from(`${JSON.stringify(event)}\n`);
    if (this.size + line.length > this.maxFileBytes && this.size > 0) this.rotate();
    try {
      writeAll(this.fd, line);
    } catch (err) {
      // A full disk may take part of the line: cut it off again, so the file never ends in a broken line.
      ftruncateSync(this.fd, this.size);
      throw err;
    }
    this.size += line.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    renameSync(this.path(0), this.path(1));
    this.fd = openSync(this.path(0), 'a', 0o600);
    this.size = 0;
  }

  /** Matching events, newest first. */
  query(q: EventQuery): GatekeeperEvent[] {
    const types = q.types?.length ? new Set(q.types) : undefined;
    const maxSeverity = q.minSeverity ? severityNames.indexOf(q.minSeverity) : severityNames.length;
    const before = q.before ? Date.parse(q.before) : Infinity;
    const out: GatekeeperEvent[] = [];
    const start = Math.max(0, this.ring.length - EVENT_RING_SIZE);
    for (let i = this.ring.length - 1; i >= start && out.length < q.limit; i--) {
      const e = this.ring[i];
      if (types && !types.has(e.type)) continue;
      if (severityNames.indexOf(e.severity) > maxSeverity) continue;
      if (q.pair !== undefined && e.pair !== q.pair) continue;
      if (!(Date.parse(e.time) < before)) continue;
      out.push(e);
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function isEvent(v: unknown): v is GatekeeperEvent {
  const e = v as Partial<GatekeeperEvent> | null;
  return typeof e === 'object' && e !== null && typeof e.type === 'string' && typeof e.time === 'string' &&
    typeof e.severity === 'string';
}
