// Management service fixtures.
// - startMgmt(t): a REAL `gatekeeper mgmt --http` process on 127.0.0.1 with its own state dir and
//   socket, an admin created beforehand with `gatekeeper user add`; stopped at the end of the test.
// - startTestServer(t): buildServer() in this process with doubles of its two neighbours (the
//   DataplaneHub and the EventSink, separate components built and tested elsewhere), for
//   fastify.inject tests.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, RouteOptions } from 'fastify';
import pino from 'pino';
import type { Test } from 'tap';
import type { GatekeeperEvent } from '../../appliance/ipc/events';
import type { FlowFilter } from '../../appliance/ipc/messages';
import { hashSecret } from '../../appliance/mgmt/auth/passwords';
import type { ApplyResult, DataplaneHub, DryRunResult, FlowsResult, HistoryPoint, PairStatus, PortStatus, TopDeniedEntry, TopViolationEntry } from '../../appliance/mgmt/dataplanes/types';
import { buildServer } from '../../appliance/mgmt/server';
import type { EventSink, TargetStatus } from '../../appliance/mgmt/siem/types';
import type { SyslogTarget } from '../../appliance/mgmt/state/settings';
import type { Role } from '../../appliance/mgmt/auth/roles';
import { StateStore } from '../../appliance/mgmt/state/store';
import { cliPath } from '../../appliance/paths';

export const ADMIN = { name: 'admin', password: 'admin-password-123' };

export interface Login {
  /** Value for the Cookie header. */
  cookie: string;
  csrfToken: string;
}

// ---------------------------------------------------------------------------------------------------
// The real process

export interface RunningMgmt {
  url: string;
  socketPath: string;
  stateDir: string;
  /** Lines the service wrote to stdout/stderr (its pino log). */
  log: string[];
  /** Logs in as the admin (or another user). */
  login(user?: { name: string; password: string }): Promise<Login>;
  /** An API call as `as` (a login); JSON body in, parsed JSON (or text) out. */
  api(as: Login, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Runs the gatekeeper CLI to completion. */
export function runCli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, ...args], { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export async function startMgmt(t: Test, opts: { initialPolicy?: string } = {}): Promise<RunningMgmt> {
  const stateDir = mkdtempSync(join(tmpdir(), 'gk-mgmt-'));
  let child: ChildProcess | undefined;
  const stop = async () => {
    const c = child;
    child = undefined;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(stateDir, { recursive: true, force: true });
  };
  t.teardown(stop);

  const added = runCli(['user', 'add', ADMIN.name, '--role', 'admin', '--state-dir', stateDir], `${ADMIN.password}\n`);
  if (added.status !== 0) throw new Error(`gatekeeper user add failed: ${added.stderr}`);
  const args = ['mgmt', '--http', '--listen', `127.0.0.1:${await freePort()}`, '--state-dir', stateDir,
    '--socket', join(stateDir, 'mgmt.sock')];
  if (opts.initialPolicy) {
    const file = join(stateDir, 'initial-policy.yaml');
    writeFileSync(file, opts.initialPolicy);
    args.push('--initial-policy', file);
  }
  const port = Number(args[3].split(':')[1]);
  const url = `http://127.0.0.1:${port}`;
  const log: string[] = [];
  child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => log.push(...chunk.split('\n').filter((l) => l !== '')));
  }

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!child || child.exitCode !== null) throw new Error(`gatekeeper mgmt exited early:\n${log.join('\n')}`);
    try {
      if ((await fetch(`${url}/api/v1/auth/setup`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`gatekeeper mgmt did not answer within 20 s:\n${log.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const api = async (as: Login, method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { cookie: as.cookie, 'x-csrf-token': as.csrfToken };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (metrics, empty 204)
    }
    return { status: res.status, body: parsed };
  };
  const login = async (user = ADMIN): Promise<Login> => {
    const res = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: user.name, password: user.password }),
    });
    if (res.status !== 200) throw new Error(`login as ${user.name} failed: ${res.status} ${await res.text()}`);
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    return { cookie, csrfToken };
  };
  return { url, socketPath: join(stateDir, 'mgmt.sock'), stateDir, log, login, api, stop };
}

// ---------------------------------------------------------------------------------------------------
// In-process server with doubles

function port(name: string): PortStatus {
  return { name, link: 'up', rxPackets: 10, rxBytes: 1000, txPackets: 9, txBytes: 900, dropped: 1,
    droppedByReason: { policy: 1 }, kernelDropped: 0, rxPps: 1, rxBps: 100 };
}

/** A DataplaneHub double: one connected pair, scripted apply results, recorded calls. */
export class FakeHub implements DataplaneHub {
  applyResult: ApplyResult = { ok: true, pairs: [{ pair: 'pair0', generation: 2 }] };
  /** Resolves apply() only when set (to hold a transaction open). */
  applyGate: Promise<void> | null = null;
  readonly applied: { text: string; source: string }[] = [];
  active: { text: string; hash: string } | null = null;
  readonly dryRuns: { active: string; candidate: string }[] = [];
  readonly flowQueries: { filter: FlowFilter & { pair?: string }; limit: number }[] = [];
  private readonly listeners: ((e: GatekeeperEvent) => void)[] = [];
  pairStatus: PairStatus = {
    pair: 'pair0', connected: true, bypass: false, pid: 1234, generation: 1, policyHash: 'unknown', mode: 'enforce', uptimeMs: 5000,
    lastSeen: Date.now(), ports: { inside: port('inside0'), outside: port('outside0') },
    flows: { active: 1, capacity: 1000, created: 3, evicted: 0 }, rates: { allowedPps: 1, deniedPps: 0, rxPps: 1, rxBps: 100 },
    rules: [], inspect: {},
  };
  /** What topViolations() answers (most refused first). */
  violations: TopViolationEntry[] = [];

  async listen(): Promise<void> {}
  pairs(): PairStatus[] {
    return [this.pairStatus];
  }
  history(_pair: string, seconds: number): HistoryPoint[] {
    return [{ t: Date.now() - seconds * 1000, rxPps: 1, rxBps: 100, allowedPps: 1, deniedPps: 0 }];
  }
  topDenied(limit: number): TopDeniedEntry[] {
    const entry: TopDeniedEntry = { pair: 'pair0', src: '198.18.1.10', srcGroups: ['client'], dst: '198.18.1.100', dstGroups: ['server'],
      proto: 'tcp', dstPort: 23, rule: 'default', action: 'deny', count: 5, lastSeen: new Date().toISOString() };
    return [entry].slice(0, limit);
  }
  topViolations(limit: number): TopViolationEntry[] {
    return this.violations.slice(0, limit);
  }
  async flows(filter: FlowFilter & { pair?: string }, limit: number): Promise<FlowsResult> {
    this.flowQueries.push({ filter, limit });
    const now = Date.now();
    return {
      flows: [{ pair: 'pair0', proto: 'tcp', src: '198.18.1.10', srcPort: 40000, dst: '198.18.1.100', dstPort: 8080, vlan: 0,
        rule: 'client-test-services', verdict: 'allow', state: 'established', initiatorSide: 'outside', packetsOut: 3, packetsIn: 2,
        bytesOut: 300, bytesIn: 200, firstSeen: now - 1000, lastSeen: now }],
      matched: 1, total: 1,
    };
  }
  async apply(text: string, source: string): Promise<ApplyResult> {
    this.applied.push({ text, source });
    if (this.applyGate) await this.applyGate;
    return this.applyResult;
  }
  setActivePolicy(text: string, hash: string): void {
    this.active = { text, hash };
  }
  async dryRun(active: string, candidate: string): Promise<DryRunResult> {
    this.dryRuns.push({ active, candidate });
    return { observed: 1, changes: [] };
  }
  onEvent(listener: (event: GatekeeperEvent) => void): void {
    this.listeners.push(listener);
  }
  /** Delivers an event as if a dataplane had sent it. */
  emit(event: GatekeeperEvent): void {
    for (const l of this.listeners) l(event);
  }
  async metrics(): Promise<string> {
    return '# HELP gatekeeper_rx_packets_total Received packets\n# TYPE gatekeeper_rx_packets_total counter\ngatekeeper_rx_packets_total{pair="pair0",port="inside0"} 10\n';
  }
  async close(): Promise<void> {}
}

/** An EventSink double that records what it is given. */
export class FakeSink implements EventSink {
  readonly published: GatekeeperEvent[] = [];
  targets: SyslogTarget[] = [];
  configure(targets: SyslogTarget[]): void {
    this.targets = targets;
  }
  publish(event: GatekeeperEvent): void {
    this.published.push(event);
  }
  async sendTest(targetName: string): Promise<{ ok: boolean; error?: string }> {
    return { ok: false, error: `test double: nothing sent to ${targetName}` };
  }
  status(): TargetStatus[] {
    return this.targets.map((t) => ({ name: t.name, connected: false, sent: 0, spooled: 0, spoolBytes: 0, droppedFromSpool: 0, filtered: 0 }));
  }
  async close(): Promise<void> {}
}

export interface TestServer {
  app: FastifyInstance;
  stateDir: string;
  hub: FakeHub;
  sink: FakeSink;
  /** The service's log lines (JSON). */
  log: string[];
  routes: RouteOptions[];
  /** Logs in over inject. */
  login(name: string, password: string): Promise<Login>;
  /** An injected API call as `as` (cookie + CSRF token); undefined = anonymous. */
  call(as: Login | undefined, method: string, url: string, body?: unknown): Promise<{ status: number; json: any; headers: Record<string, unknown> }>;
}

export const USERS: { name: string; role: Role; password: string }[] = [
  { name: 'alice', role: 'admin', password: 'alice-password-1' },
  { name: 'oscar', role: 'operator', password: 'oscar-password-1' },
  { name: 'vera', role: 'viewer', password: 'vera-password-11' },
];

/** Writes users straight into a state directory (as `gatekeeper user add` does). */
export async function seedUsers(stateDir: string, users = USERS): Promise<void> {
  const store = StateStore.open(stateDir, { warn: () => undefined }, { recover: false });
  const records = [];
  for (const u of users) {
    records.push({ name: u.name, role: u.role, passwordHash: await hashSecret(u.password), createdAt: new Date().toISOString(), lastLoginAt: null });
  }
  store.saveUsers(records);
}

export function tempStateDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gk-mgmt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startTestServer(
  t: Test,
  opts: { stateDir?: string; http?: boolean; users?: boolean; hub?: FakeHub; initialPolicy?: { text: string; file: string }; uiDir?: string } = {},
): Promise<TestServer> {
  const stateDir = opts.stateDir ?? tempStateDir(t);
  if (opts.users !== false && !opts.stateDir) await seedUsers(stateDir);
  const hub = opts.hub ?? new FakeHub();
  const sink = new FakeSink();
  const log: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(line) });
  const routes: RouteOptions[] = [];
  const app = await buildServer({ stateDir, http: opts.http ?? true, hub, events: sink, log: logger,
    initialPolicy: opts.initialPolicy, uiDir: opts.uiDir, onRoute: (r) => routes.push(r) });
  t.teardown(() => app.close());
  await app.ready();

  const call: TestServer['call'] = async (as, method, url, body) => {
    const headers: Record<string, string> = {};
    if (as) Object.assign(headers, { cookie: as.cookie, 'x-csrf-token': as.csrfToken });
    const res = await app.inject({ method: method as 'GET', url, headers, ...(body === undefined ? {} : { payload: body as object }) });
    let json: unknown;
    try {
      json = res.json();
    } catch {
      json = res.body;
    }
    return { status: res.statusCode, json, headers: res.headers };
  };
  const login = async (name: string, password: string): Promise<Login> => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: name, password } });
    if (res.statusCode !== 200) throw new Error(`login as ${name}: ${res.statusCode} ${res.body}`);
    const cookie = String(res.headers['set-cookie']).split(';')[0];
    return { cookie, csrfToken: (res.json() as { csrfToken: string }).csrfToken };
  };
  return { app, stateDir, hub, sink, log, routes, login, call };
}
