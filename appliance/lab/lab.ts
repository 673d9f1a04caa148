// A lab of real Linux hosts: a client namespace and a server namespace joined through an appliance
// namespace whose two veth ports are the gatekeeper's outside and inside ports. Every name carries a
// per-run id, only benchmarking addresses are used (198.18.0.0/15, 2001:2::/48), and destroy()
// removes everything (deleting a namespace deletes its veths).
// The hosts keep veth's default offloads unless told otherwise (`hostOffloads: 'off'`): TX checksum
// offload and TSO/GSO on, so they send partial checksums and 64 KiB super-frames, as every VM and
// container host does. The appliance ports are left as they come; the gatekeeper sets them up.

import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, dataplaneNodeFlags } from '../paths';
import type { DataplaneStats } from '../ipc/stats';

/** The addresses of the lab hosts: one L2 segment bridged through the appliance. */
export const labAddresses = {
  client4: '198.18.1.10',
  server4: '198.18.1.100',
  client6: '2001:2:0:1::10',
  server6: '2001:2:0:1::100',
} as const;

/** How the appliance namespace joins its two ports. */
export type LabPath = 'gatekeeper' | 'bridge';

/**
 * The hosts' offloads: 'on' (veth's defaults: TX checksum, TSO, GSO; the realistic case) or 'off'
 * (tx, tso, gso and gro off: software checksums and MTU-sized frames, the per-packet worst case).
 */
export type HostOffloads = 'on' | 'off';

export class Lab {
  readonly id: string;
  readonly client: string;
  readonly server: string;
  readonly appliance: string;
  readonly insidePort = 'inside0';
  readonly outsidePort = 'outside0';
  /** Scratch directory for the dataplane's stats and logs. */
  readonly dir: string;
  /** Log lines (pino JSON) the dataplane wrote, oldest first; bounded. */
  readonly dataplaneLog: string[] = [];
  private readonly children: ChildProcess[] = [];
  private created = false;

  constructor(id = randomBytes(3).toString('hex'), readonly hostOffloads: HostOffloads = 'on') {
    this.id = id;
    this.client = `gk-${id}-client`;
    this.server = `gk-${id}-server`;
    this.appliance = `gk-${id}-appliance`;
    this.dir = mkdtempSync(join(tmpdir(), `gatekeeper-lab-${id}-`));
  }

  get statsFile(): string {
    return join(this.dir, 'stats.json');
  }

  get logFile(): string {
    return join(this.dir, 'dataplane.log');
  }

  /** Build the namespaces and links. On any failure everything built so far is removed. */
  create(): void {
    this.created = true;
    try {
      for (const ns of [this.client, this.server, this.appliance]) {
        must('ip', ['netns', 'add', ns]);
        must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      must('ip', ['-n', this.appliance, 'link', 'add', this.outsidePort, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.client]);
      must('ip', ['-n', this.appliance, 'link', 'add', this.insidePort, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.server]);
      this.configureHost(this.client, labAddresses.client4, labAddresses.client6);
      this.configureHost(this.server, labAddresses.server4, labAddresses.server6);
      for (const port of [this.outsidePort, this.insidePort]) must('ip', ['-n', this.appliance, 'link', 'set', port, 'up']);
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  private configureHost(ns: string, addr4: string, addr6: string): void {
    if (this.hostOffloads === 'off') must('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'eth0', 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
    must('ip', ['-n', ns, 'addr', 'add', `${addr4}/24`, 'dev', 'eth0']);
    must('ip', ['-n', ns, 'addr', 'add', `${addr6}/64`, 'dev', 'eth0', 'nodad']);
    must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  }

  /** Join the two appliance ports with the Linux kernel bridge instead of the gatekeeper (baselines). */
  bridgePorts(): void {
    must('ip', ['-n', this.appliance, 'link', 'add', 'br0', 'type', 'bridge']);
    must('ip', ['-n', this.appliance, 'link', 'set', this.outsidePort, 'master', 'br0']);
    must('ip', ['-n', this.appliance, 'link', 'set', this.insidePort, 'master', 'br0']);
    must('ip', ['-n', this.appliance, 'link', 'set', 'br0', 'up']);
  }

  /** MAC address of a host's eth0. */
  mac(ns: string): string {
    return this.exec(ns, ['cat', '/sys/class/net/eth0/address']).stdout.trim();
  }

  unbridgePorts(): void {
    this.exec(this.appliance, ['ip', 'link', 'del', 'br0']);
    this.exec(this.appliance, ['nft', 'flush', 'ruleset']);
  }

  /** Run a command in a namespace and wait for it. */
  exec(ns: string, argv: string[], timeoutMs = 30_000, input?: string): SpawnSyncReturns<string> {
    return spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', timeout: timeoutMs, input });
  }

  /** Start a long-running command in a namespace; it is killed by destroy(). */
  spawn(ns: string, argv: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /**
   * Start the gatekeeper between the two ports and wait until it forwards. With `mgmtSocket` it also
   * connects to management there (Unix sockets are not namespaced by network namespaces). `nodeFlags`
   * are Node.js's, the dataplane's own unless a test wants it started without them.
   */
  async startDataplane(policyPath: string, timeoutMs = 15_000, mgmtSocket?: string,
    nodeFlags: readonly string[] = dataplaneNodeFlags): Promise<ChildProcess> {
    rmSync(this.statsFile, { force: true });
    const child = spawn('ip', ['netns', 'exec', this.appliance, process.execPath, ...nodeFlags, cliPath, 'run',
      '--inside', this.insidePort, '--outside', this.outsidePort, '--policy', policyPath,
      '--name', `lab-${this.id}`, '--stats-file', this.statsFile,
      ...(mgmtSocket === undefined ? [] : ['--mgmt-socket', mgmtSocket])], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.push(child);
    let partial = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      this.dataplaneLog.push(...lines);
      if (this.dataplaneLog.length > 1000) this.dataplaneLog.splice(0, this.dataplaneLog.length - 1000);
    });
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(this.statsFile)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`dataplane did not start (exit ${child.exitCode}):\n${this.dataplaneLog.join('\n')}${partial}`);
      }
      await sleep(50);
    }
    return child;
  }

  stats(): DataplaneStats {
    return JSON.parse(readFileSync(this.statsFile, 'utf8')) as DataplaneStats;
  }

  /** Wait for the stats file to be rewritten (the dataplane writes it every second). */
  async freshStats(): Promise<DataplaneStats> {
    const before = existsSync(this.statsFile) ? readFileSync(this.statsFile, 'utf8') : '';
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      await sleep(100);
      const now = readFileSync(this.statsFile, 'utf8');
      if (now !== before) return JSON.parse(now) as DataplaneStats;
    }
    return this.stats();
  }

  /** Remove everything: child processes, namespaces (and with them every veth), scratch files. */
  destroy(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    if (this.created) {
      for (const ns of [this.client, this.server, this.appliance]) {
        spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean)
          .forEach((pid) => spawnSync('kill', ['-9', pid]));
        spawnSync('ip', ['netns', 'del', ns]);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.created = false;
  }
}

/** Namespaces left by labs whose process is gone (a crash or SIGKILL): removed by `gatekeeper lab --clean`. */
export function labNamespaces(): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  return out.split('\n').map((l) => l.split(' ')[0]).filter((n) => /^gk-[0-9a-f]{6}-(client|server|appliance)$/.test(n));
}

function must(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
