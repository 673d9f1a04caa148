// `gatekeeper lab`: a running demo a person can poke at with real tools, removed on exit or Ctrl-C.

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Lab, labAddresses, labNamespaces, sleep } from './lab';
import { cliPath, labPolicyPath } from '../paths';
import type { DataplaneStats } from '../ipc/stats';

export interface LabCommandOptions {
  policy?: string;
  clean?: boolean;
  /** Stop by itself after this many seconds. */
  for?: number;
  /** Where the management service (web UI) listens: plain HTTP, meant for loopback. */
  listen: string;
}

/** The lab's management service: its own state dir, an admin with a fresh password, plain HTTP. */
interface LabMgmt {
  process: ChildProcess;
  url: string;
  password: string;
  socket: string;
}

/** TCP ports the lab's server listens on, so allowed, rejected and denied can be tried at once. */
const SERVER_PORTS = [8080, 8081, 9999];
const execFileAsync = promisify(execFile);
/** Management's socket, in the lab's directory. */
const MGMT_SOCKET = 'mgmt.sock';

export async function runLab(options: LabCommandOptions): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('gatekeeper lab: must run as root (it creates network namespaces)\n');
    return 2;
  }
  if (options.clean) {
    const stale = labNamespaces();
    for (const ns of stale) spawnSync('ip', ['netns', 'del', ns]);
    process.stdout.write(stale.length ? `removed ${stale.join(', ')}\n` : 'nothing to clean\n');
    return 0;
  }

  const lab = new Lab();
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = (): void => {
    stopping = true;
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('exit', () => {
    for (const child of children) child.kill('SIGKILL');
    lab.destroy();
  });
  try {
    lab.create();
    const policy = join(lab.dir, 'policy.yaml');
    copyFileSync(options.policy ?? labPolicyPath, policy);
    // Both start at once: the dataplane forwards at once and connects when management is up.
    const [mgmt, dataplane] = await Promise.all([
      startMgmt(lab, policy, options.listen, children),
      lab.startDataplane(policy, undefined, join(lab.dir, MGMT_SOCKET)),
    ]);
    for (const port of SERVER_PORTS) {
      lab.spawn(lab.server, ['nc', '-lk', labAddresses.server4, String(port)]);
      lab.spawn(lab.server, ['nc', '-6', '-lk', labAddresses.server6, String(port)]);
    }
    printIntro(lab, policy, dataplane.pid ?? 0, mgmt);

    const deadline = options.for ? Date.now() + options.for * 1000 : Infinity;
    let last = '';
    let logged = 0;
    let mgmtExitReported = false;
    while (!stopping && Date.now() < deadline) {
      await sleep(500);
      for (; logged < lab.dataplaneLog.length; logged++) process.stdout.write(`${describeLog(lab.dataplaneLog[logged])}\n`);
      if (dataplane.exitCode !== null) {
        process.stderr.write(`dataplane exited with ${dataplane.exitCode}; stopping the lab\n`);
        return 1;
      }
      if (mgmt.process.exitCode !== null && !mgmtExitReported) {
        process.stderr.write(`management service exited with ${mgmt.process.exitCode}; the dataplane keeps forwarding\n`);
        mgmtExitReported = true;
      }
      const line = summarize(lab.stats());
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
    }
    process.stdout.write('stopping: removing namespaces and links\n');
    return 0;
  } catch (err) {
    process.stderr.write(`gatekeeper lab: ${(err as Error).message}\n`);
    return 1;
  } finally {
    for (const child of children) child.kill('SIGTERM');
    lab.destroy();
  }
}

/** Runs `gatekeeper mgmt` on the host (the management side), seeded with the lab policy, and waits for it. */
async function startMgmt(lab: Lab, policy: string, listen: string, children: ChildProcess[]): Promise<LabMgmt> {
  const stateDir = join(lab.dir, 'mgmt');
  const socket = join(lab.dir, MGMT_SOCKET);
  const password = randomBytes(9).toString('base64url');
  const passwordFile = join(lab.dir, 'admin-password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  try {
    await execFileAsync(process.execPath, [cliPath, 'user', 'add', 'admin', '--role', 'admin', '--state-dir', stateDir,
      '--password-file', passwordFile]);
  } catch (err) {
    throw new Error(`could not create the lab admin: ${String((err as { stderr?: string }).stderr ?? err).trim()}`);
  }
  const child = spawn(process.execPath, [cliPath, 'mgmt', '--http', '--listen', listen, '--state-dir', stateDir,
    '--socket', socket, '--initial-policy', policy], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let errors = '';
  child.stderr?.on('data', (d: Buffer) => (errors += d.toString()));
  const url = `http://${listen}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`management service exited with ${child.exitCode}: ${errors.trim()}`);
    try {
      const res = await fetch(`${url}/api/v1/auth/setup`);
      if (res.ok) return { process: child, url, password, socket };
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`management service did not answer on ${url}`);
}

function printIntro(lab: Lab, policy: string, pid: number, mgmt: LabMgmt): void {
  const c = `ip netns exec ${lab.client}`;
  const s = `ip netns exec ${lab.server}`;
  const a = labAddresses;
  process.stdout.write(`
gatekeeper lab ${lab.id} is running (Ctrl-C removes it).

  client  ${a.client4.padEnd(13)} ${a.client6.padEnd(16)} namespace ${lab.client}  (outside port)
  server  ${a.server4.padEnd(13)} ${a.server6.padEnd(16)} namespace ${lab.server}  (inside port: the protected asset)
  The server listens on TCP ${SERVER_PORTS.join(', ')}.

Try, in another terminal:
  ${c} ping -c3 ${a.server4}              # allowed
  ${c} ping -c3 ${a.server6}          # allowed (IPv6, neighbour discovery passes)
  ${c} nc -vz -w2 ${a.server4} 8080        # allowed: succeeded
  ${c} nc -vz -w2 ${a.server4} 8081        # rejected: refused at once (TCP RST)
  ${c} nc -vz -w2 ${a.server4} 9999        # denied: times out
  ${s} nc -vz -w2 ${a.client4} 22          # denied: the asset may not open connections

Web UI: ${mgmt.url}   user admin   password ${mgmt.password}
  dashboard, flows, events; edit the policy there: errors, diff and dry-run before apply, history, rollback.
Policy file of the dataplane: ${policy}
  or edit it and reload by hand:  kill -HUP ${pid}   (a bad file is refused; the running policy stays)
Counters: ${lab.statsFile}   Dataplane log: stderr of pid ${pid}

`);
}

/** A dataplane log line (pino JSON) as a person reads it. */
function describeLog(line: string): string {
  try {
    const entry = JSON.parse(line) as { level: number; msg: string };
    const level = entry.level >= 50 ? 'ERROR' : entry.level >= 40 ? 'WARN' : 'info';
    return `[dataplane ${level}] ${entry.msg}`;
  } catch {
    return `[dataplane] ${line}`;
  }
}

function summarize(stats: DataplaneStats): string {
  const ports = [stats.ports.outside, stats.ports.inside];
  const forwarded = ports.reduce((n, p) => n + p.forwarded, 0);
  const drops: Record<string, number> = {};
  for (const p of ports) {
    for (const [reason, n] of Object.entries(p.dropped)) if (n > 0) drops[reason] = (drops[reason] ?? 0) + n;
  }
  const dropped = Object.values(drops).reduce((a, b) => a + b, 0);
  const reasons = Object.entries(drops).map(([r, n]) => `${r} ${n}`).join(', ');
  const rules = stats.rules.filter((r) => r.packets > 0).map((r) => `${r.name} ${r.packets}`).join(', ');
  return `gen ${stats.generation} | forwarded ${forwarded} | dropped ${dropped}${reasons ? ` (${reasons})` : ''} | ` +
    `flows ${stats.flows.active} | rules: ${rules || '-'}`;
}
