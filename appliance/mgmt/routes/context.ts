// What every route module gets: the state, the sessions, the dataplane hub, the event sink, and the
// two ways management records what happens (the audit trail and the event stream).

import type { FastifyRequest } from 'fastify';
import type { AuditEvent, GatekeeperEvent, Severity } from '../../ipc/events';
import type { LoginThrottle } from '../auth/lockout';
import type { Session, SessionStore } from '../auth/sessions';
import type { DataplaneHub } from '../dataplanes/types';
import type { EventLog } from '../events-log';
import type { MgmtMetrics } from './metrics';
import type { EventSink } from '../siem/types';
import type { StateStore } from '../state/store';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by requireRole (auth/access.ts) on every route that needs a login. */
    session?: Session;
  }
}

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

export interface MgmtContext {
  store: StateStore;
  sessions: SessionStore;
  throttle: LoginThrottle;
  eventLog: EventLog;
  hub: DataplaneHub;
  sink: EventSink;
  metrics: MgmtMetrics;
  /** Cookies carry Secure (false only in plain-HTTP lab mode). */
  secureCookies: boolean;
  /** Package version. */
  version: string;
  startedAt: number;
  /** One-time token for POST /auth/setup; null once a user exists. */
  setupToken: string | null;
  /** Stores the event, and hands it to the SIEM export. */
  publish(event: GatekeeperEvent): void;
  /** Appends to the audit log and publishes the matching AuditEvent. */
  audit(record: AuditRecord): void;
}

/** The logged-in user of a request that passed requireRole. */
export function sessionOf(req: FastifyRequest): Session {
  if (!req.session) throw new Error(`route ${req.method} ${req.url} used a session without requireRole`);
  return req.session;
}

/** An error reply with the API's error shape and status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: object[],
    /** For 429: seconds until the client may try again. */
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}
