// The dataplane process for one port pair: opens both ports, runs every frame through the engine and
// forwards, drops or answers it. Policy reloads (SIGHUP) are atomic: the new file is compiled aside
// and swapped in only when it is valid. Logging here is for rare events only, never per packet.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import { Engine, Side } from './engine';
import { startForwarding } from './forward';
import { Port } from './port/port';
import { formatDiagnostic, loadPolicyFile } from '../policy/load';
import { actionNames, type CompiledPolicy } from '../policy/types';
import type { DataplaneStats } from './stats';

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
    for (const d of first.errors) log.error({ file: d.file, line: d.line, col: d.col }, formatDiagnostic(d));
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

  startForwarding(engine, ports);
  log.info({ inside: options.inside, outside: options.outside, generation: engine.generation, mode: first.policy.mode,
    rules: first.policy.rules.length - 1, policy: first.policy.sourceHash }, 'forwarding');

  let policy: CompiledPolicy = first.policy;
  const reload = (): void => {
    const next = loadPolicyFile(options.policyPath);
    if (!next.ok) {
      for (const d of next.errors) log.error({ file: d.file, line: d.line, col: d.col }, formatDiagnostic(d));
      log.error({ generation: engine.generation }, 'policy reload refused; the running policy is unchanged');
      return;
    }
    for (const d of next.warnings) log.warn(formatDiagnostic(d));
    policy = next.policy;
    engine.setPolicy(policy, engine.generation + 1);
    log.info({ generation: engine.generation, mode: policy.mode, rules: policy.rules.length - 1, policy: policy.sourceHash }, 'policy reloaded');
    writeStats();
  };

  const writeStats = (): void => {
    if (options.statsFile === undefined) return;
    const stats = collectStats(name, engine, ports, policy, startedAt);
    const tmp = `${options.statsFile}.tmp`;
    mkdirSync(dirname(options.statsFile), { recursive: true });
    writeFileSync(tmp, JSON.stringify(stats));
    renameSync(tmp, options.statsFile);
  };

  const purge = setInterval(() => {
    engine.flows.purgeIdle();
    engine.fragments.purgeIdle();
  }, PURGE_INTERVAL_MS);
  const stats = setInterval(writeStats, STATS_INTERVAL_MS);
  writeStats();

  const stop = (signal: string): void => {
    clearInterval(purge);
    clearInterval(stats);
    writeStats();
    for (const port of ports) port.close();
    log.info({ signal }, 'stopped');
    process.exit(0);
  };
  process.on('SIGHUP', reload);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export function collectStats(name: string, engine: Engine, ports: Port[], policy: CompiledPolicy, startedAt: number): DataplaneStats {
  const portStats = (side: number) => ({
    name: ports[side].name,
    link: ports[side].operState(),
    ...engine.counters[side].snapshot(),
  });
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
      packets: engine.ruleCounters.packets[r.index],
      bytes: engine.ruleCounters.bytes[r.index],
      flows: engine.ruleCounters.flows[r.index],
    })),
  };
}
