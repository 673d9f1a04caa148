// The dataplane process for one port pair: opens both ports, runs every frame through the engine and
// forwards, drops or answers it. Policy changes (SIGHUP, or management's prepare/commit) are atomic:
// the new policy is compiled aside and swapped in only when it is valid. With a management socket,
// counters, events and requests go over it (mgmt-link.ts); forwarding never waits for management.
// Logging here is for rare events only, never per packet.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';
import { Engine } from './engine';
import { Side } from './verdict';
import { startForwarding } from './forward';
import { notifyReady, notifyStatus, notifyStopping, startWatchdog } from '../sd-notify';
import { TrafficEvents } from './events/traffic-events';
import { managementRequests, MgmtLink } from './mgmt-link';
import { Port } from './port/port';
import { pairTotals } from './counters';
import { RunningPolicy, type PolicyVersion } from './running-policy';
import { formatDiagnostic, loadPolicyFile, type Diagnostic } from '../policy/load';
import { actionNames, type CompiledPolicy } from '../policy/types';
import type { DataplaneStats, EventStats } from '../ipc/stats';
import { writeFileAtomic } from '../wire/atomic-file';

export interface DataplaneOptions {
  /** Port facing the protected asset. */
  inside: string;
  /** Port facing the rest of the network. */
  outside: string;
  policyPath: string;
  /** Name of the port pair (defaults to "inside-outside"). */
  name?: string;
  /** Where a JSON snapshot of the counters is written every second (atomically). */
  statsFile?: string;
  /** Management service's Unix socket; without it the dataplane runs standalone. */
  mgmtSocket?: string;
}

const STATS_INTERVAL_MS = 1000;
const PURGE_INTERVAL_MS = 1000;

export function runDataplane(options: DataplaneOptions): void {
  const name = options.name ?? `${options.inside}-${options.outside}`;
  const log = pino({ name: 'gatekeeper-dataplane', base: { pair: name } }, pino.destination({ fd: 2, sync: true }));

  const first = loadPolicyFile(options.policyPath);
  if (!first.ok) {
    logDiagnostics(log, first.errors);
    log.fatal('policy refused; not starting');
    process.exitCode = 2;
    return;
  }
  for (const d of first.warnings) log.warn(formatDiagnostic(d));

  const engine = new Engine(first.policy, 1);
  const ports: [Port, Port] = [new Port(options.inside), new Port(options.outside)];
  for (const port of ports) {
    const prep = port.prepare();
    if (prep.offloadsNotChanged.length > 0) {
      log.info({ port: port.name, offloads: prep.offloadsNotChanged }, 'offloads left as the driver fixes them');
    }
  }
  const startedAt = Date.now();

  // Without a management socket nothing is collected: the packet path never calls an observer.
  let eventLog: TrafficEvents | null = null;
  let link: MgmtLink | null = null;
  const running = new RunningPolicy(engine, options.policyPath, { policy: first.policy, groups: first.model.groups, generation: 1 },
    (next) => eventLog?.policyChanging(next));
  const eventStats = (): EventStats | undefined => {
    if (link === null || eventLog === null) return undefined;
    const c = link.counters;
    return { connected: link.connected, queued: c.eventsQueued, sent: c.eventsSent, dropped: c.eventsDropped, denyOverflow: eventLog.counters.denyOverflow };
  };
  const stats = (): DataplaneStats => collectStats(name, engine, ports, running.current.policy, startedAt, eventStats());

  const applied = (version: PolicyVersion, how: string): void => {
    const policy = version.policy;
    log.info({ generation: version.generation, mode: policy.mode, rules: policy.rules.length - 1, policy: policy.sourceHash }, how);
    writeStats();
    notifyStatus(`forwarding ${options.inside} <-> ${options.outside}, policy generation ${version.generation} (${policy.mode})`);
  };
  const reload = async (): Promise<void> => {
    log.info('SIGHUP: reloading the policy file; forwarding goes on meanwhile');
    const result = await running.reload();
    if (!result.ok) {
      logDiagnostics(log, result.errors);
      log.error({ generation: engine.generation }, 'policy reload refused; the running policy is unchanged');
      notifyStatus(`forwarding, policy generation ${engine.generation}; last reload refused`);
      return;
    }
    for (const d of result.warnings) log.warn(formatDiagnostic(d));
    applied(result.version, 'policy reloaded');
  };

  if (options.mgmtSocket !== undefined) {
    const events = new TrafficEvents({
      pair: name,
      first: running.current,
      totals: () => ({ ...pairTotals(engine.counters), flowsActive: engine.flows.size }),
      links: [
        { name: ports[Side.Inside].name, side: 'inside', operState: () => ports[Side.Inside].operState() },
        { name: ports[Side.Outside].name, side: 'outside', operState: () => ports[Side.Outside].operState() },
      ],
      log,
    });
    events.lifecycle('dataplane.start');
    engine.observer = events;
    eventLog = events;
    link = new MgmtLink({
      socketPath: options.mgmtSocket,
      hello: () => ({ pair: name, pid: process.pid, inside: options.inside, outside: options.outside,
        generation: engine.generation, policyHash: running.current.policy.sourceHash, startedAt }),
      stats,
      collect: (final) => events.collect(Date.now(), final),
      requests: managementRequests(engine, running, log, (version) => applied(version, 'policy committed by management')),
      log,
    });
    link.start();
  }

  startForwarding(engine, ports);
  for (const port of ports) {
    log.info({ port: port.name, io: port.io, sendThread: port.sendThread, fallback: port.ioFallbackReason }, 'port I/O');
  }
  log.info({ inside: options.inside, outside: options.outside, generation: engine.generation, mode: first.policy.mode,
    rules: first.policy.rules.length - 1, policy: first.policy.sourceHash }, 'forwarding');

  const writeStats = (): void => {
    if (options.statsFile === undefined) return;
    mkdirSync(dirname(options.statsFile), { recursive: true });
    // Rewritten every second: atomic for readers, not fsync'd (that would wear flash for nothing).
    writeFileAtomic(options.statsFile, JSON.stringify(stats()), { mode: 0o644, durable: false });
  };

  const purge = setInterval(() => {
    engine.flows.purgeIdle();
    engine.fragments.purgeIdle();
  }, PURGE_INTERVAL_MS);
  const statsTimer = setInterval(writeStats, STATS_INTERVAL_MS);
  writeStats();
  notifyReady(`forwarding ${options.inside} <-> ${options.outside}, policy generation ${engine.generation} (${first.policy.mode})`);
  // Pings come from this event loop, so a blocked loop stops them; a vanished interface restarts the pair.
  const stopWatchdog = startWatchdog(() => ports.every((port) => port.operState() !== 'missing'));

  const stop = async (signal: string): Promise<void> => {
    notifyStopping();
    stopWatchdog();
    clearInterval(purge);
    clearInterval(statsTimer);
    writeStats();
    for (const port of ports) port.close();
    eventLog?.lifecycle('dataplane.stop', signal);
    await link?.stop();
    log.info({ signal }, 'stopped');
    process.exit(0);
  };
  process.on('SIGHUP', () => void reload());
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

function logDiagnostics(log: Logger, errors: Diagnostic[]): void {
  for (const d of errors) log.error({ file: d.file, line: d.line, col: d.col }, formatDiagnostic(d));
}

export function collectStats(
  name: string, engine: Engine, ports: Port[], policy: CompiledPolicy, startedAt: number, events?: EventStats,
): DataplaneStats {
  const portStats = (side: Side) => ({
    name: ports[side].name,
    link: ports[side].operState(),
    ...engine.counters[side].snapshot(),
  });
  const totals = engine.ruleTotals();
  return {
    pair: name,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt,
    generation: engine.generation,
    policyHash: policy.sourceHash,
    mode: policy.mode,
    ports: { inside: portStats(Side.Inside), outside: portStats(Side.Outside) },
    flows: { active: engine.flows.size, capacity: engine.flows.capacity, ...engine.flows.counters },
    fragments: { tracked: engine.fragments.size },
    rules: policy.rules.map((r) => ({
      name: r.name,
      action: actionNames[r.action],
      packets: totals.packets(r.index),
      bytes: totals.bytes(r.index),
      flows: totals.flows(r.index),
    })),
    events,
  };
}
