// The dataplane process for one port pair: opens both ports, runs every frame through the engine and
// forwards, drops or answers it. Policy changes (SIGHUP, or management's prepare/commit) are atomic:
// the new policy is compiled aside and swapped in only when it is valid. Every load, the first one
// too, compiles on a worker thread (policy/load-worker.ts): this thread only binds the tables it gets
// back. With a management socket, counters, events and requests go over it (mgmt-link.ts);
// forwarding never waits for management. Before it forwards it sets up what the pair does without it
// (failsafe/: fail-open bypass through a blocked kernel bridge, or fail-closed). The process is assembled bottom-up: each part is made from
// parts made before it. Logging here is for rare events only, never per packet.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';
import { pairTotals } from './counters';
import { Engine, SWEEP_FLOWS, SWEEP_INTERVAL_MS } from './engine';
import { takeOverPair, type FailSafe } from './failsafe/fail-mode';
import { bypassNames, type FailMode } from './failsafe/kernel-bridge';
import { kernelLink, LinkFaultMirror } from './failsafe/link-fault';
import { Observations } from './events/observations';
import { TrafficEvents } from './events/traffic-events';
import { countFastPath, countKernelDrops, startForwarding } from './forward';
import { notifyReady, notifyStatus, notifyStopping, startWatchdog } from '../sd-notify';
import { LinkStatus, managementRequests, MgmtLink } from './mgmt-link';
import { FastPath, fastPathSetting } from './port/fast-path';
import { busyPollStats, Port } from './port/port';
import { FIRST_GENERATION, RunningPolicy, type PolicyVersion } from './running-policy';
import { Side } from './verdict';
import type { Flow } from './flow/flow';
import { formatDiagnostic, readPolicyFile, type Diagnostic, type LoadFailure } from '../policy/diagnostics';
import { loadPolicyInBackground, type BackgroundLoad } from '../policy/load-worker';
import { actionNames } from '../policy/types';
import type { DataplaneStats, EventStats } from '../ipc/stats';
import { writeFileAtomic } from '../wire/atomic-file';
import { dataplaneNodeFlags } from '../paths';

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
  /** What the pair does while no dataplane runs it (default closed). */
  failMode?: FailMode;
  /** Mirror a carrier loss on one port by taking the other port down. */
  linkFaultPassThrough?: boolean;
}

const STATS_INTERVAL_MS = 1000;
/** Offloaded flows synced per sweep interval (port/fast-path.ts sweep() says why this many). */
const OFFLOAD_SWEEP_FLOWS = 2000;
const PURGE_INTERVAL_MS = 1000;

export function runDataplane(options: DataplaneOptions): void {
  const name = options.name ?? `${options.inside}-${options.outside}`;
  const log = pino({ name: 'gatekeeper-dataplane', base: { pair: name } }, pino.destination({ fd: 2, sync: true }));
  start(options, name, log).catch((err: Error) => {
    log.fatal({ err: err.message }, `not starting: ${err.message}`);
    process.exit(2);
  });
}

async function start(options: DataplaneOptions, name: string, log: Logger): Promise<void> {
  // The policy compiles on its worker while this thread prepares the ports (about 150 ms of ip and
  // ethtool): a restart forwards again that much sooner. A refused policy still starts nothing.
  const loading = loadFirstPolicy(options.policyPath);
  fastPathSetting(); // a bad setting is an error before anything is forwarded, not a fallback
  const ports: [Port, Port] = [new Port(options.inside), new Port(options.outside)];
  const bypassBridge = bypassNames(options.inside, options.outside).bridge;
  for (const port of ports) {
    const prep = port.prepare(bypassBridge);
    if (prep.offloadsNotChanged.length > 0) {
      log.info({ port: port.name, offloads: prep.offloadsNotChanged }, 'offloads left as the driver fixes them');
    }
  }
  const loaded = await loading;
  if (!loaded.ok) {
    logDiagnostics(log, loaded.errors);
    log.fatal('policy refused; not starting');
    process.exitCode = 2;
    return;
  }
  for (const d of loaded.warnings) log.warn(formatDiagnostic(d));
  const first: PolicyVersion = { policy: loaded.policy, groups: loaded.groups, generation: FIRST_GENERATION };

  const engine = new Engine(first.policy, first.generation);
  const startedAt = Date.now();
  // Every start may be a restart (systemd's after a crash, an upgrade): the hosts' TCP connections
  // kept running and their next segments are mid-stream. A PLC's connection must survive that, so
  // connections the policy allows are picked up for as long as the dataplane before would have kept
  // an idle one (tcp-established-idle); after that none of them can be left, and mid-stream TCP is
  // dropped again (tcp_no_flow) unless the policy sets pickup-established for all times.
  engine.pickupUntil = startedAt + first.policy.flow.tcpEstablishedIdleMs;

  // Without a management socket nothing is collected: the packet path never calls an observer.
  const mgmt = options.mgmtSocket === undefined ? null : {
    socketPath: options.mgmtSocket,
    status: new LinkStatus(),
    events: new TrafficEvents({
      pair: name,
      first,
      totals: () => ({ ...pairTotals(engine.counters), flowsActive: engine.flows.size }),
      links: [
        { name: ports[Side.Inside].name, side: 'inside', operState: () => ports[Side.Inside].operState() },
        { name: ports[Side.Outside].name, side: 'outside', operState: () => ports[Side.Outside].operState() },
      ],
      log,
    }),
  };
  engine.observer = mgmt?.events ?? null;
  const running = new RunningPolicy(engine, options.policyPath, first, (next) => mgmt?.events.policyChanging(next));
  // Hosts, conversations and identity frames for management's inventory and learn mode.
  const observations = mgmt === null ? null : new Observations({ ruleName: (generation, index) => running.ruleName(generation, index) });
  engine.setObservations(observations);

  const fastPath = new FastPath();
  const stats = (): DataplaneStats => {
    countKernelDrops(engine, ports);
    countFastPath(engine, fastPath);
    const events: EventStats | undefined = mgmt === null ? undefined : {
      connected: mgmt.status.connected, queued: mgmt.status.eventsQueued, sent: mgmt.status.eventsSent,
      dropped: mgmt.status.eventsDropped, denyOverflow: mgmt.events.counters.denyOverflow,
    };
    return { ...collectStats(name, engine, ports, running.current, startedAt, events), fastPath: fastPath.stats() };
  };
  const writeStats = (): void => {
    if (options.statsFile === undefined) return;
    mkdirSync(dirname(options.statsFile), { recursive: true });
    // Rewritten every second: atomic for readers, not fsync'd (that would wear flash for nothing).
    writeFileAtomic(options.statsFile, JSON.stringify(stats()), { mode: 0o644, durable: false });
  };
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
      const generation = running.current.generation;
      logDiagnostics(log, result.errors);
      log.error({ generation }, 'policy reload refused; the running policy is unchanged');
      notifyStatus(`forwarding, policy generation ${generation}; last reload refused`);
      return;
    }
    for (const d of result.warnings) log.warn(formatDiagnostic(d));
    applied(result.version, 'policy reloaded');
  };

  const link = mgmt === null ? null : new MgmtLink({
    socketPath: mgmt.socketPath,
    status: mgmt.status,
    hello: () => ({ pair: name, pid: process.pid, inside: options.inside, outside: options.outside,
      generation: running.current.generation, policyHash: running.current.policy.sourceHash, startedAt,
      failMode: options.failMode ?? 'closed' }),
    stats,
    collect: (final) => mgmt.events.collect(Date.now(), final),
    requests: managementRequests(engine, running, log, (version) => applied(version, 'policy committed by management')),
    observations: () => {
      const sink = observations as Observations;
      // The sweep has reported the live flows, a slice at a time.
      const message = sink.drain();
      // At most one line per interval, whatever a sender floods us with.
      const failed = sink.takeDecodeErrors();
      if (failed !== null) log.info({ failed }, 'identity frames that could not be decoded (counted, not reported)');
      return message;
    },
    log,
  });
  mgmt?.events.lifecycle('dataplane.start');
  link?.start();

  // The fail mode goes in last before forwarding: in fail-open the kernel bridge stops forwarding here,
  // so the hand-back gap is only the time until the ports below forward.
  const failSafe = takeFailSafe(options, log);
  startForwarding(engine, ports, fastPath);
  fastPath.open(ports);
  if (fastPath.on) {
    engine.offloads = fastPath;
    for (const port of ports) port.steerForFastPath();
  }
  log.info({ state: fastPath.state, reason: fastPath.reason }, fastPath.on
    ? 'kernel fast path on: flows decided for good are forwarded by the kernel, counted, and taken back at a policy change, FIN or RST'
    : 'kernel fast path not on: every frame goes through the engine');
  for (const port of ports) {
    log.info({ port: port.name, io: port.io, sendThread: port.sendThread, fallback: port.ioFallbackReason,
      limitation: port.ioLimitation, kernelDrops: port.kernelDropsUncounted }, 'port I/O');
  }
  const missingFlags = dataplaneNodeFlags.filter((flag) => !process.execArgv.includes(flag));
  if (missingFlags.length > 0) {
    log.warn({ missing: missingFlags }, `node was started without ${missingFlags.join(' ')}: V8 may hold the packet loop for ` +
      'milliseconds to shrink the heap once traffic goes quiet (run node with these flags before the CLI, as the systemd unit does)');
  }
  if (failSafe.endedBypass !== null) {
    const { since, reason } = failSafe.endedBypass;
    log.warn({ since: new Date(since).toISOString(), bypassMs: Date.now() - since, reason },
      'bypass ended: the ports were bridged by the kernel without enforcement; this dataplane enforces again');
    mgmt?.events.bypassEnded(since, reason);
  }
  const linkFault = options.linkFaultPassThrough ? new LinkFaultMirror(
    [kernelLink(options.inside), kernelLink(options.outside)],
    { mirrored: (lost, mirrored, down) => log.warn({ lost, mirrored },
      down ? 'carrier lost: the other port is taken down too' : 'carrier back: the other port is up again') },
  ) : null;
  linkFault?.start();
  log.info({ inside: options.inside, outside: options.outside, generation: first.generation, mode: first.policy.mode,
    rules: first.policy.rules.length - 1, policy: first.policy.sourceHash,
    pickupUntil: new Date(engine.pickupUntil).toISOString() }, 'forwarding; established TCP connections the policy allows are picked up until pickupUntil');

  const purge = setInterval(() => {
    engine.flows.purgeIdle();
    engine.fragments.purgeIdle();
  }, PURGE_INTERVAL_MS);
  const statsTimer = setInterval(writeStats, STATS_INTERVAL_MS);
  const offloadedActive = (flow: Flow): void => engine.offloadedActive(flow, Date.now());
  const sweepTimer = setInterval(() => {
    engine.sweep(SWEEP_FLOWS, Date.now());
    if (fastPath.on) fastPath.sweep(OFFLOAD_SWEEP_FLOWS, offloadedActive);
  }, SWEEP_INTERVAL_MS);
  writeStats();
  notifyReady(`forwarding ${options.inside} <-> ${options.outside}, policy generation ${first.generation} (${first.policy.mode})`);
  // Pings come from this event loop, so a blocked loop stops them; a vanished interface restarts the pair.
  const stopWatchdog = startWatchdog(() => ports.every((port) => port.operState() !== 'missing'));

  const stop = async (signal: string): Promise<void> => {
    failSafe.lastWords(`stopped by ${signal}`);
    failSafe.stopping();
    linkFault?.stop();
    notifyStopping();
    stopWatchdog();
    clearInterval(purge);
    clearInterval(statsTimer);
    clearInterval(sweepTimer);
    // Back to the engine first: nothing is forwarded that it does not see, and the counts are final.
    fastPath.close();
    engine.ruleTotals();
    writeStats();
    for (const port of ports) port.close();
    mgmt?.events.lifecycle('dataplane.stop', signal);
    await link?.stop();
    log.info({ signal }, 'stopped');
    process.exit(0);
  };
  process.on('uncaughtException', (err) => {
    failSafe.lastWords(`exception: ${err.message}`);
    log.fatal({ err: err.stack }, 'uncaught exception: the dataplane ends');
    process.exit(1);
  });
  process.on('SIGHUP', () => void reload());
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

/** Fail-open or fail-closed for this pair; the bypass record lives beside the policy (the pair's state). */
function takeFailSafe(options: DataplaneOptions, log: Logger): FailSafe {
  const mode = options.failMode ?? 'closed';
  const failSafe = takeOverPair({
    mode, inside: options.inside, outside: options.outside, recordDir: dirname(options.policyPath),
    onGuardRestart: (code, signal) => log.error({ code, signal }, 'the bypass guard ended while the dataplane runs; a new one took over'),
  });
  log.info({ failMode: mode }, mode === 'open'
    ? 'fail-open: if this dataplane ends, the kernel bridges the ports until a dataplane takes them back'
    : 'fail-closed: nothing passes while no dataplane runs');
  return failSafe;
}

/** The policy file, read here and compiled on a worker thread like every later load. */
async function loadFirstPolicy(path: string): Promise<BackgroundLoad | LoadFailure> {
  const read = readPolicyFile(path);
  if (!read.ok) return read;
  return loadPolicyInBackground(read.text, path);
}

function logDiagnostics(log: Logger, errors: Diagnostic[]): void {
  for (const d of errors) log.error({ file: d.file, line: d.line, col: d.col }, formatDiagnostic(d));
}

export function collectStats(
  name: string, engine: Engine, ports: Port[], running: PolicyVersion, startedAt: number, events?: EventStats,
): DataplaneStats {
  const policy = running.policy;
  const portStats = (side: Side) => ({
    name: ports[side].name,
    link: ports[side].operState(),
    ...engine.counters[side].snapshot(),
  });
  const totals = engine.sweptRuleCounters();
  return {
    pair: name,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt,
    generation: running.generation,
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
      violations: totals.violations(r.index),
    })),
    inspect: Object.fromEntries(engine.inspectCounters.map((c) => [c.protocol, c.snapshot()])),
    events,
    busyPoll: busyPollStats(ports),
  };
}
