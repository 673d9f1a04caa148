// The contract between the management service and the event export (local log files and syslog
// targets). Management persists SyslogTarget[] in its settings (state/settings.ts, where the type is
// defined) and hands every event to an EventSink.

import type { GatekeeperEvent } from '../../ipc/events';
import type { SyslogTarget } from '../state/settings';

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
  /** TCP/TLS/RELP: events never spooled because the disk was full. */
  droppedDiskFull?: number;
  /** TCP/TLS/RELP: the spool's last write found the disk full (it tries again every second). */
  spoolDiskFull?: boolean;
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
