// One configured syslog target at run time: its filter, its format, and delivery over UDP, or over
// TCP/TLS/RELP through its spool with reconnects. Delivery over TCP/TLS is at-least-once: after a
// connection loss the lines written during the last 2 s (at most 1 MiB, and always whatever was
// still in Node's socket buffer) are written again on the next connection, because TCP cannot say
// which of them the receiver read before it went away. Over RELP the receiver acknowledges every
// line, so exactly the unacknowledged ones are written again: no loss and no duplicates. A spool
// segment is released only when all its lines were written (TCP/TLS) or acknowledged (RELP). Order is kept.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Severity } from '../../ipc/events';
import type { ExportRecord, FormatOptions } from './describe';
import { formatCef } from './format-cef';
import { formatRfc3164 } from './format-rfc3164';
import { formatRfc5424 } from './format-rfc5424';
import { atLeast } from './severity';
import { Spool } from './spool';
import type { SpoolBatch } from './spool';
import { RelpSession } from './transport-relp';
import { frame, openStream } from './transport-tcp';
import { UdpTransport } from './transport-udp';
import type { SyslogFormat, SyslogTarget } from '../state/settings';
import type { TargetStatus } from './types';

export const formatters: Record<SyslogFormat, (record: ExportRecord, options: FormatOptions) => string> = {
  rfc5424: formatRfc5424,
  rfc3164: formatRfc3164,
  cef: formatCef,
};

/** Longest line: RFC 5426 receivers should take 2048 bytes in a datagram; rsyslog's default is 8 KiB. */
export function maxLineBytes(target: SyslogTarget): number {
  return target.transport === 'udp' ? 2048 : 8192;
}

/** The line a target sends for a record. */
export function formatLine(target: SyslogTarget, record: ExportRecord, identity: { hostname: string; version: string }): string {
  return formatters[target.format](record, { hostname: identity.hostname, version: identity.version, maxBytes: maxLineBytes(target) });
}

const resendWindowMs = 2000;
const resendWindowBytes = 1 << 20;
const writeChunkBytes = 64 * 1024;
const backoffFirstMs = 500;
const backoffMaxMs = 30_000;

interface Written {
  at: number;
  bytes: number;
  lines: string[];
}

export interface TargetContext {
  hostname: string;
  version: string;
  log: Logger;
  /** Directory of this target's spool. */
  spoolDir: string;
  maxSpoolBytes: number;
}

export class TargetRuntime {
  private readonly types: Set<string>;
  private readonly minSeverity: Severity;
  private filtered = 0;
  private lastError?: string;
  private lastErrorAt?: string;
  private readonly udp?: UdpTransport;
  private readonly spool?: Spool;
  private socket?: Socket;
  /** RELP only: the session on `socket`, once it is open. */
  private relp?: RelpSession;
  private connecting = false;
  private closed = false;
  private backoffMs = backoffFirstMs;
  private reconnectTimer?: NodeJS.Timeout;
  private pumpScheduled = false;
  /** The socket's buffer is full: nothing more is written until it drains. */
  private awaitingDrain = false;
  private batch?: SpoolBatch;
  private batchIndex = 0;
  private recent: Written[] = [];
  private recentBytes = 0;
  private streamSent = 0;

  constructor(readonly config: SyslogTarget, private readonly context: TargetContext) {
    this.types = new Set(config.types);
    this.minSeverity = config.minSeverity;
    const onError = (err: Error) => this.error(err);
    if (config.transport === 'udp') {
      this.udp = new UdpTransport(config.host, config.port, onError);
    } else {
      this.spool = new Spool(context.spoolDir, context.maxSpoolBytes, onError, (full) => {
        if (full) context.log.error({ target: config.name }, 'syslog spool: the disk is full; new events for this target are dropped (droppedDiskFull)');
        else context.log.warn({ target: config.name, droppedDiskFull: this.spool?.droppedDiskFull }, 'syslog spool: the disk has room again; spooling resumed');
      });
      this.connect();
    }
  }

  /** Filters, formats and queues; never throws. */
  publish(record: ExportRecord): void {
    if (!atLeast(record.severity, this.minSeverity) || (this.types.size > 0 && !this.types.has(record.type))) {
      this.filtered++;
      return;
    }
    this.deliver(formatLine(this.config, record, this.context));
  }

  private deliver(line: string): void {
    if (this.udp) {
      this.udp.send(line);
      return;
    }
    this.spool!.push(line);
    this.schedulePump();
  }

  status(): TargetStatus {
    return {
      name: this.config.name,
      connected: this.udp ? this.udp.ok : this.socket !== undefined,
      sent: this.udp ? this.udp.sent : this.streamSent,
      spooled: (this.spool?.records ?? 0) + (this.batch ? this.batch.lines.length - this.batchIndex : 0),
      spoolBytes: this.spool?.bytes ?? 0,
      droppedFromSpool: this.spool?.dropped ?? 0,
      ...(this.spool ? { droppedDiskFull: this.spool.droppedDiskFull, spoolDiskFull: this.spool.diskFull } : {}),
      filtered: this.filtered,
      ...(this.udp ? { droppedOverload: this.udp.overflow } : {}),
      ...(this.lastError ? { lastError: this.lastError, lastErrorAt: this.lastErrorAt } : {}),
    };
  }

  private error(err: Error): void {
    this.lastError = err.message;
    this.lastErrorAt = new Date().toISOString();
  }

  private connect(): void {
    if (this.closed || this.connecting || this.socket) return;
    this.connecting = true;
    openStream({ host: this.config.host, port: this.config.port, tls: this.config.transport === 'tls' ? this.config.tls ?? {} : undefined })
      .then((socket) => {
        this.connecting = false;
        if (this.closed) {
          socket.destroy();
          return;
        }
        socket.on('error', (err) => this.error(err));
        socket.on('close', () => this.disconnected(socket));
        if (this.config.transport === 'relp') {
          this.openRelp(socket);
          return;
        }
        this.socket = socket;
        this.backoffMs = backoffFirstMs;
        this.context.log.info({ target: this.config.name }, 'syslog target connected');
        // Syslog receivers send nothing; anything read is discarded so the socket never stalls.
        socket.on('data', () => undefined);
        this.schedulePump();
      })
      .catch((err: Error) => {
        this.connecting = false;
        this.error(err);
        this.scheduleReconnect();
      });
  }

  /** RELP: the socket carries lines only once the receiver accepted the session. */
  private openRelp(socket: Socket): void {
    const session = new RelpSession(socket, {
      opened: () => {
        if (this.closed) return;
        this.socket = socket;
        this.relp = session;
        this.backoffMs = backoffFirstMs;
        this.context.log.info({ target: this.config.name }, 'syslog target connected (RELP)');
        this.schedulePump();
      },
      acked: () => {
        this.streamSent++;
        this.releaseBatchWhenDone();
        this.schedulePump();
      },
      failed: (reason) => this.error(new Error(reason)),
    });
  }

  private disconnected(socket: Socket): void {
    if (this.socket !== socket) {
      // A RELP session that ended before it opened: try again later.
      if (this.config.transport === 'relp' && this.socket === undefined) this.scheduleReconnect();
      return;
    }
    this.socket = undefined;
    this.awaitingDrain = false;
    if (!this.lastErrorAt || Date.parse(this.lastErrorAt) < Date.now() - 1000) this.error(new Error('connection closed by the receiver'));
    this.context.log.warn({ target: this.config.name, error: this.lastError }, 'syslog target disconnected');
    // Lines that may not have arrived go out again first, before the rest: over RELP the ones not
    // acknowledged, over TCP/TLS the ones written lately.
    const resend = this.relp ? this.relp.unacknowledged() : this.recent.flatMap((w) => w.lines);
    this.relp = undefined;
    this.recent = [];
    this.recentBytes = 0;
    if (resend.length > 0) {
      const rest = this.batch ? this.batch.lines.slice(this.batchIndex) : [];
      const release = this.batch?.release ?? (() => undefined);
      this.batch = { lines: [...resend, ...rest], release };
      this.batchIndex = 0;
      if (this.config.transport !== 'relp') this.streamSent -= resend.length;
    }
    this.scheduleReconnect();
  }

  /** RELP: a batch is done when every line was written and acknowledged. */
  private releaseBatchWhenDone(): void {
    if (!this.batch || this.batchIndex < this.batch.lines.length || (this.relp && this.relp.unacknowledged().length > 0)) return;
    this.batch.release();
    this.batch = undefined;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, this.backoffMs);
    this.reconnectTimer.unref();
    this.backoffMs = Math.min(backoffMaxMs, this.backoffMs * 2);
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.awaitingDrain || !this.socket) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Writes queued lines until the socket's buffer is full (then waits for 'drain') or the queue is empty. */
  private pump(): void {
    if (this.relp) {
      this.pumpRelp(this.relp);
      return;
    }
    const socket = this.socket;
    while (socket && this.socket === socket && !socket.destroyed) {
      if (!this.batch) {
        this.batch = this.spool!.takeBatch();
        this.batchIndex = 0;
        if (!this.batch) return;
      }
      const lines: string[] = [];
      let bytes = 0;
      while (this.batchIndex < this.batch.lines.length && bytes < writeChunkBytes) {
        const line = this.batch.lines[this.batchIndex++];
        lines.push(line);
        bytes += Buffer.byteLength(line) + 8;
      }
      const more = socket.write(lines.map(frame).join(''));
      this.streamSent += lines.length;
      this.remember({ at: Date.now(), bytes, lines }, socket);
      if (this.batchIndex >= this.batch.lines.length) {
        this.batch.release();
        this.batch = undefined;
      }
      if (!more) {
        this.awaitingDrain = true;
        socket.once('drain', () => {
          this.awaitingDrain = false;
          this.schedulePump();
        });
        return;
      }
    }
  }

  /** RELP: lines go out while the window has room; the next batch only once this one is acknowledged. */
  private pumpRelp(session: RelpSession): void {
    while (this.relp === session && session.ready) {
      if (!this.batch) {
        this.batch = this.spool!.takeBatch();
        this.batchIndex = 0;
        if (!this.batch) return;
      }
      if (this.batchIndex >= this.batch.lines.length) {
        this.releaseBatchWhenDone();
        if (this.batch) return;
        continue;
      }
      if (!session.send(this.batch.lines[this.batchIndex++])) {
        this.awaitingDrain = true;
        this.socket!.once('drain', () => {
          this.awaitingDrain = false;
          this.schedulePump();
        });
        return;
      }
    }
  }

  private remember(written: Written, socket: Socket): void {
    this.recent.push(written);
    this.recentBytes += written.bytes;
    const now = Date.now();
    // Whatever is still in Node's buffer (writableLength) must stay resendable.
    while (this.recent.length > 1 && this.recentBytes - this.recent[0].bytes >= socket.writableLength &&
      (now - this.recent[0].at > resendWindowMs || this.recentBytes > resendWindowBytes)) {
      this.recentBytes -= this.recent.shift()!.bytes;
    }
  }

  /** Stops delivery; TCP/TLS lines not yet written stay in the spool for the next run. */
  close(removeSpool: boolean): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    // Over RELP the unacknowledged lines go back to the spool with the unwritten ones.
    const unacknowledged = this.relp?.unacknowledged() ?? [];
    if (this.relp) this.relp.close();
    else this.socket?.end();
    this.socket = undefined;
    this.relp = undefined;
    this.udp?.close();
    if (!this.spool) return;
    if (removeSpool) {
      this.spool.destroy();
      return;
    }
    // Lines handed out but not written go back to the front of the spool, and their segment (if
    // any) is released, so the next run sends them first and only once.
    if (this.batch || unacknowledged.length > 0) {
      this.spool.requeue([...unacknowledged, ...(this.batch ? this.batch.lines.slice(this.batchIndex) : [])]);
      this.batch?.release();
      this.batch = undefined;
    }
    this.spool.close();
  }
}
