// The contract between the management service and the event export (local log files and syslog
// targets). Management persists SyslogTarget[] in its settings and hands every event to an EventSink.

import type { EventType, GatekeeperEvent, Severity } from '../../ipc/events';

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

export interface TargetStatus {
  name: string;
  /** TCP/TLS: connection up. UDP: true once a datagram was sent without error. */
  connected: boolean;
  sent: number;
  /** Events waiting in the on-disk spool (TCP/TLS while the target is down). */
  spooled: number;
  spoolBytes: number;
  /** Oldest events discarded because the spool was full. */
  droppedFromSpool: number;
  /** Events discarded by this target's filter. */
  filtered: number;
  /** UDP: events discarded because too many datagrams were still waiting to be sent (a burst). */
  droppedOverload?: number;
  lastError?: string;
  lastErrorAt?: string;
}

/** Where management sends every event (implemented by the exporter in this folder). */
export interface EventSink {
  configure(targets: SyslogTarget[]): void;
  /** Never blocks and never throws: slow targets spool, full spools drop the oldest and count. */
  publish(event: GatekeeperEvent): void;
  sendTest(targetName: string): Promise<{ ok: boolean; error?: string }>;
  status(): TargetStatus[];
  close(): Promise<void>;
}
