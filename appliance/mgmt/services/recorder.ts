// The two ways management records what happens: the event stream (stored in the event log and
// handed to the SIEM export) and the audit trail (appended to the state, and published as an
// event). Used by routes and services alike; must not import routes.

import type { FastifyBaseLogger } from 'fastify';
import type { AuditEvent, GatekeeperEvent, Severity } from '../../ipc/events';
import type { EventLog } from '../events-log';
import type { MgmtMetrics } from '../metrics';
import type { EventSink } from '../siem/types';
import type { StateStore } from '../state/store';

export interface AuditRecord {
  type: AuditEvent['type'];
  severity: Severity;
  user: string;
  from: string;
  /** e.g. "policy.apply", "user.add". */
  action: string;
  detail: string;
  diff?: string;
}

export class Recorder {
  constructor(
    private readonly store: StateStore,
    private readonly eventLog: EventLog,
    private readonly sink: EventSink,
    private readonly metrics: MgmtMetrics,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Events the event log could not store since the last one it could (0: it works). */
  private storeFailures = 0;

  /** Stores the event, and hands it to the SIEM export. */
  publish(event: GatekeeperEvent): void {
    try {
      this.eventLog.add(event);
      if (this.storeFailures > 0) {
        this.log.warn({ lost: this.storeFailures }, 'events are stored again');
        this.storeFailures = 0;
      }
    } catch (err) {
      // A full or failing disk must not stop events reaching the SIEM, nor break the caller, nor
      // write a log line per event: the first failure is logged, the rest counted.
      this.metrics.eventStoreErrors.inc();
      if (this.storeFailures++ === 0) this.log.error({ err, type: event.type }, 'could not store an event; further failures are only counted');
    }
    this.sink.publish(event);
  }

  /**
   * Appends to the audit log and publishes the matching AuditEvent; the event goes out even when
   * the append fails (a full disk), so the SIEM still learns who did what, and the error is thrown.
   */
  audit(r: AuditRecord): void {
    const time = new Date().toISOString();
    try {
      this.store.appendAudit({ time, user: r.user, from: r.from, action: r.action, detail: r.detail, ...(r.diff ? { diff: r.diff } : {}) });
    } finally {
      this.publish({ type: r.type, time, severity: r.severity, user: r.user, from: r.from,
        action: r.detail ? `${r.action} ${r.detail}` : r.action });
    }
  }
}
