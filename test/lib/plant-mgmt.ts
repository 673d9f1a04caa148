// The management side of the plant lab: a REAL `gatekeeper mgmt --http` process on loopback that
// can be stopped and started again on the same state directory and port (the inventory must
// survive a restart), an admin made with `gatekeeper user add`, and a real rsyslogd (test/lib/
// rsyslog.ts) set up as its SIEM target. startMgmt (mgmt-fixture.ts) removes its state when it
// stops, which is why this one exists; it shares that fixture's admin, CLI runner and free port.
// It does not judge: the tests do.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { cliPath } from '../../appliance/paths';
import { ADMIN, freePort, runCli, type Login } from './mgmt-fixture';
import { parse5424, Rsyslog, type Rfc5424 } from './rsyslog';

export { ADMIN, type Login };

export interface ApiResult<T = any> {
  status: number;
  body: T;
}

export class PlantMgmt {
  readonly stateDir = mkdtempSync(join(tmpdir(), 'gk-plant-mgmt-'));
  readonly socketPath = join(this.stateDir, 'mgmt.sock');
  /** The service's log lines (pino JSON), every run, oldest first. */
  readonly log: string[] = [];
  url = '';
  private child: ChildProcess | undefined;
  private port = 0;
  private initialPolicyFile: string | undefined;

  /** Makes the state directory and the admin; with initialPolicy, that text is stored as version 1. */
  static async create(t: Test, initialPolicy?: string): Promise<PlantMgmt> {
    const mgmt = new PlantMgmt();
    t.teardown(() => mgmt.destroy());
    const added = runCli(['user', 'add', ADMIN.name, '--role', 'admin', '--state-dir', mgmt.stateDir], `${ADMIN.password}\n`);
    if (added.status !== 0) throw new Error(`gatekeeper user add failed: ${added.stderr}`);
    if (initialPolicy !== undefined) {
      mgmt.initialPolicyFile = join(mgmt.stateDir, 'initial-policy.yaml');
      writeFileSync(mgmt.initialPolicyFile, initialPolicy);
    }
    mgmt.port = await freePort();
    mgmt.url = `http://127.0.0.1:${mgmt.port}`;
    await mgmt.start();
    return mgmt;
  }

  /** Start the process (again: same state, socket and port) and wait until it answers. */
  async start(): Promise<void> {
    if (this.child) throw new Error('management is already running');
    const args = ['mgmt', '--http', '--listen', `127.0.0.1:${this.port}`, '--state-dir', this.stateDir, '--socket', this.socketPath,
      ...(this.initialPolicyFile ? ['--initial-policy', this.initialPolicyFile] : [])];
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => this.log.push(...chunk.split('\n').filter((l) => l !== '')));
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gatekeeper mgmt exited early (${child.exitCode}):\n${this.log.slice(-40).join('\n')}`);
      try {
        if ((await fetch(`${this.url}/api/v1/auth/setup`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`gatekeeper mgmt did not answer within 20 s:\n${this.log.slice(-40).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM, as systemd stops it; SIGKILL after 5 s. */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  async login(user = ADMIN): Promise<Login> {
    const res = await fetch(`${this.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: user.name, password: user.password }),
    });
    if (res.status !== 200) throw new Error(`login as ${user.name} failed: ${res.status} ${await res.text()}`);
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    return { cookie, csrfToken };
  }

  /** An API call as `as`; JSON in, parsed JSON (or the text) out. */
  async api<T = any>(as: Login, method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
    const headers: Record<string, string> = { cookie: as.cookie, 'x-csrf-token': as.csrfToken };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed as T };
  }

  /** The same, throwing with the route and the answer unless the status is `expect`. */
  async must<T = any>(as: Login, method: string, path: string, body?: unknown, expect = 200): Promise<T> {
    const r = await this.api<T>(as, method, path, body);
    if (r.status !== expect) {
      throw new Error(`${method} ${path} answered ${r.status}, expected ${expect}: ${JSON.stringify(r.body).slice(0, 2000)}`);
    }
    return r.body;
  }

  /** Waits until the pair's dataplane is connected (GET /api/v1/status). */
  async waitForPair(as: Login, pair: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await this.api<{ pairs?: { pair: string; connected: boolean }[] }>(as, 'GET', '/api/v1/status');
      if (status.status === 200 && status.body.pairs?.some((p) => p.pair === pair && p.connected)) return;
      if (Date.now() > deadline) throw new Error(`the dataplane of ${pair} did not connect to management: ${JSON.stringify(status.body).slice(0, 1000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A real rsyslogd with one TCP input named "siem", set as management's only syslog target (RFC 5424, every severity). */
export async function startSiem(t: Test, mgmt: PlantMgmt, as: Login): Promise<Rsyslog> {
  const rsyslog = new Rsyslog([{ name: 'siem', kind: 'tcp', port: await freePort() }]);
  t.teardown(() => rsyslog.destroy());
  await rsyslog.start();
  await mgmt.must(as, 'PUT', '/api/v1/settings/syslog', {
    targets: [{ name: 'siem', enabled: true, host: '127.0.0.1', port: rsyslog.port('siem'), transport: 'tcp', format: 'rfc5424',
      minSeverity: 'debug', types: [] }],
  });
  return rsyslog;
}

/** The RFC 5424 lines the SIEM received whose MSGID (the event type) is `type`. */
export function siemEvents(rsyslog: Rsyslog, type: string): Rfc5424[] {
  return rsyslog.lines('siem').map(parse5424).filter((m) => m.msgId === type);
}

/** A parameter from whichever SD element carries it (names as docs/siem.md gives them). */
export function sdParam(m: Rfc5424, name: string): string | undefined {
  for (const params of m.sd.values()) if (params.has(name)) return params.get(name);
  return undefined;
}
