// The stored settings (settings.json): syslog targets, metrics token hash, session timeout. The
// syslog target is defined here, where it is kept; the SIEM export (siem/) is configured with it.
// Must not import siem/ or routes/ (state sits below them).

import type { EventType, Severity } from '../../ipc/events';

export type SyslogFormat = 'rfc5424' | 'rfc3164' | 'cef';
/** How lines travel: RELP is the one with acknowledgements (no loss, no duplicates across outages). */
export const SYSLOG_TRANSPORTS = ['udp', 'tcp', 'tls', 'relp'] as const;
export type SyslogTransport = (typeof SYSLOG_TRANSPORTS)[number];

export interface SyslogTlsOptions {
  /** PEM CA bundle that must have signed the receiver's certificate (system CAs when absent). */
  ca?: string;
  /** PEM client certificate and key, for receivers that require one. */
  cert?: string;
  key?: string;
  /** Name to verify in the receiver's certificate (defaults to host). */
  serverName?: string;
}

export interface SyslogTarget {
  /** Unique, used in the UI, in status and in "send a test message". */
  name: string;
  enabled: boolean;
  host: string;
  port: number;
  transport: SyslogTransport;
  format: SyslogFormat;
  /** Least severe level sent (e.g. "info" sends info and everything more severe). */
  minSeverity: Severity;
  /** Event types sent; empty = all. */
  types: EventType[];
  tls?: SyslogTlsOptions;
}

export interface Settings {
  syslog: { targets: SyslogTarget[] };
  /** auth/passwords.ts format, null when no metrics token is set. */
  metricsTokenHash: string | null;
  sessionTimeoutMin: number;
}

export const DEFAULT_SESSION_TIMEOUT_MIN = 30;
