// The EventSink management hands every event to: the local log file plus every enabled syslog
// target (types.ts is the contract). publish() only formats and queues in memory, so it never
// blocks the caller and never throws; all I/O happens later, batched.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { eventTypes, severityNames } from '../../ipc/events';
import type { GatekeeperEvent } from '../../ipc/events';
import type { TestEvent } from './describe';
import { LocalLog } from './local-log';
import type { LocalLogOptions } from './local-log';
import { formatLine, TargetRuntime } from './target';
import { openStream, frame } from './transport-tcp';
import { udpProbe } from './transport-udp';
import { SYSLOG_TRANSPORTS, type SyslogTarget } from '../state/settings';
import type { EventSink, TargetStatus } from './types';

export interface EventExporterOptions {
  /** Management's state directory: spools go to siem-spool/, the local log to log/. */
  stateDir: string;
  hostname: string;
  /** Software version, shown in CEF's header. */
  version: string;
  /** For the exporter's own diagnostics (connects, disconnects, I/O errors). */
  log: Logger;
  /** Bound of each TCP/TLS target's spool (default 64 MiB). */
  maxSpoolBytes?: number;
  localLog?: LocalLogOptions;
}

/** Why a target cannot be used, one message per problem; empty when it is fine. */
export function validateTarget(target: SyslogTarget): string[] {
  const problems: string[] = [];
  const t = target as Partial<SyslogTarget> & Record<string, unknown>;
  const name = typeof t.name === 'string' && t.name.length > 0 ? t.name : '?';
  const say = (problem: string) => problems.push(`syslog target ${name}: ${problem}`);
  if (typeof t.name !== 'string' || !/^[\w.-]{1,64}$/.test(t.name)) say('name must be 1-64 letters, digits, "_", "-" or "."');
  if (typeof t.host !== 'string' || t.host.length === 0 || /\s/.test(t.host)) say('host must be a host name or address');
  if (!Number.isInteger(t.port) || (t.port as number) < 1 || (t.port as number) > 65535) say('port must be 1-65535');
  if (!(SYSLOG_TRANSPORTS as readonly string[]).includes(t.transport as string)) say(`transport must be ${SYSLOG_TRANSPORTS.join(', ')}`);
  if (!['rfc5424', 'rfc3164', 'cef'].includes(t.format as string)) say('format must be rfc5424, rfc3164 or cef');
  if (!severityNames.includes(t.minSeverity as never)) say(`minSeverity must be one of ${severityNames.join(', ')}`);
  if (!Array.isArray(t.types)) say('types must be a list (empty = all)');
  else for (const type of t.types) if (!eventTypes.includes(type)) say(`unknown event type ${String(type)}`);
  if (t.tls !== undefined && (typeof t.tls !== 'object' || t.tls === null)) say('tls must be an object');
  if (t.tls && (t.tls.cert === undefined) !== (t.tls.key === undefined)) say('tls client cert and key go together');
  return problems;
}

/** A directory name per target name that cannot collide or escape the spool directory. */
function spoolDirName(name: string): string {
  return `${name.replace(/[^\w-]/g, '_')}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

export class EventExporter implements EventSink {
  private readonly targets = new Map<string, TargetRuntime>();
  private configured: SyslogTarget[] = [];
  private readonly localLog: LocalLog;
  private readonly log: Logger;
  /** publish() calls that failed inside (a bug or an event of impossible shape). */
  internalErrors = 0;

  constructor(private readonly options: EventExporterOptions) {
    this.log = options.log;
    this.localLog = new LocalLog(options.stateDir, options.localLog ?? {},
      (err) => this.log.error({ err }, 'local event log write failed; events are not written to it until a write works again'),
      (dropped) => this.log.warn({ dropped }, 'local event log written again'));
  }

  /** Where the local log is written (for the UI and support bundles). */
  get localLogPath(): string {
    return this.localLog.path;
  }

  /**
   * Applies a new target list: unchanged targets keep their connection and spool, changed ones
   * restart (keeping their spool), removed ones stop and delete their spool. Throws with every
   * problem listed if any target is invalid; nothing changes then.
   */
  configure(targets: SyslogTarget[]): void {
    const problems = targets.flatMap(validateTarget);
    const names = targets.map((t) => t.name);
    for (const name of new Set(names)) if (names.indexOf(name) !== names.lastIndexOf(name)) problems.push(`syslog target ${name}: name used twice`);
    if (problems.length > 0) throw new Error(problems.join('; '));
    const wanted = new Map(targets.map((t) => [t.name, t]));
    for (const [name, runtime] of this.targets) {
      const next = wanted.get(name);
      if (next && next.enabled && JSON.stringify(next) === JSON.stringify(runtime.config)) continue;
      runtime.close(!next);
      this.targets.delete(name);
    }
    for (const target of targets) {
      if (!target.enabled || this.targets.has(target.name)) continue;
      this.targets.set(target.name, new TargetRuntime(structuredClone(target), {
        hostname: this.options.hostname,
        version: this.options.version,
        log: this.log,
        spoolDir: join(this.options.stateDir, 'siem-spool', spoolDirName(target.name)),
        maxSpoolBytes: this.options.maxSpoolBytes ?? 64 * 1024 * 1024,
      }));
    }
    this.configured = structuredClone(targets);
  }

  publish(event: GatekeeperEvent): void {
    this.guarded(event, () => this.localLog.write(event));
    for (const target of this.targets.values()) this.guarded(event, () => target.publish(event));
  }

  /** One failing output (a bug, or an event of impossible shape) must not stop the others. */
  private guarded(event: GatekeeperEvent, output: () => void): void {
    try {
      output();
    } catch (err) {
      this.internalErrors++;
      this.log.error({ err, type: (event as { type?: unknown } | undefined)?.type }, 'event export failed');
    }
  }

  /**
   * Sends one test line to the target over a fresh connection (for TCP/TLS: connect, handshake,
   * write, close), so the answer reflects the target as configured, even a disabled one.
   */
  async sendTest(targetName: string): Promise<{ ok: boolean; error?: string }> {
    const target = this.configured.find((t) => t.name === targetName);
    if (!target) return { ok: false, error: `no syslog target named ${targetName}` };
    const record: TestEvent = { type: 'test', time: new Date().toISOString(), severity: 'notice', target: target.name };
    const line = formatLine(target, record, this.options);
    try {
      if (target.transport === 'udp') {
        await udpProbe(target.host, target.port, line);
      } else {
        const socket = await openStream({ host: target.host, port: target.port, tls: target.transport === 'tls' ? target.tls ?? {} : undefined });
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.end(frame(line), () => resolve());
        });
        socket.destroy();
      }
      return { ok: true };
    } catch (err) {
      return { ok: false, error: `${target.transport.toUpperCase()} ${target.host}:${target.port}: ${(err as Error).message}` };
    }
  }

  status(): TargetStatus[] {
    return this.configured.map((t) => this.targets.get(t.name)?.status() ?? {
      name: t.name, connected: false, sent: 0, spooled: 0, spoolBytes: 0, droppedFromSpool: 0, filtered: 0,
    });
  }

  async close(): Promise<void> {
    for (const runtime of this.targets.values()) runtime.close(false);
    this.targets.clear();
    this.localLog.close();
  }
}
