// A small plant of real Linux hosts in network namespaces, for the asset-inventory and learn tests
// (issue 11). One gatekeeper pair between a switch and a PLC:
//
//   hmi ─┐                                  ┌──────────────┐
//   eng ─┼─ br0 (switch ns) ── up0 ═ outside0 │ gatekeeper ns │ inside0 ═ eth0 ── plc
//   hist ┘   (+ newcomer, added on demand)   └──────────────┘
//
// The outside is a Linux bridge in its own namespace (the gatekeeper bridges exactly two ports, so
// the three outside hosts meet on a switch, as in a plant); the inside is the PLC alone. Services:
// the PLC runs a real Modbus/TCP server (modbus-server.py, Debian's pymodbus), Debian's lldpd
// (system name plc-line1, in a private /run so it never meets the root namespace's) and a listener
// on tcp/22; the historian listens on tcp/8086 and runs Debian's dnsmasq as the DHCP server; the
// engineering station takes its address by DHCP (busybox udhcpc, host name eng-station). Traffic:
// the HMI reads holding registers (mbpoll, function 3), the engineering station reads and writes
// (function 6), the PLC pushes lines to the historian, and the three outside hosts ping the PLC.
// Addresses only in 198.18.20.0/24 (IPv6 is off in the hosts and the switch, so no link-local
// noise reaches the inventory); every host has a fixed MAC, the PLC's with Siemens' OUI so one
// asset has a vendor. Hosts keep veth's default offloads. Every name carries a per-run id; destroy()
// removes everything and runs from the test's teardown and, should the process end first, from an
// exit/signal hook (signal-exit, tap's own). It does not judge: the tests do.

import { execFile, spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { onExit } from 'signal-exit';
import type { Test } from 'tap';
import type { DataplaneStats } from '../../appliance/ipc/stats';
import { cliPath, dataplaneNodeFlags } from '../../appliance/paths';
import { ModbusServer, python } from './modbus-server';
import type { RunningLab } from './lab-fixture';

export { sleep };

export type HostName = 'hmi' | 'eng' | 'historian' | 'plc' | 'newcomer';

export interface PlantHost {
  /** Namespace suffix (short: interface and namespace names stay small). */
  ns: string;
  mac: string;
  ip: string;
  side: 'inside' | 'outside';
}

/** The plant's hosts. The newcomer joins the switch only when a test adds it (addNewcomer). */
export const plantHosts: Readonly<Record<HostName, PlantHost>> = {
  hmi: { ns: 'hmi', mac: '02:47:4b:20:00:11', ip: '198.18.20.11', side: 'outside' },
  eng: { ns: 'eng', mac: '02:47:4b:20:00:12', ip: '198.18.20.12', side: 'outside' },
  historian: { ns: 'hist', mac: '02:47:4b:20:00:13', ip: '198.18.20.13', side: 'outside' },
  // 00:1b:1b is Siemens AG in the IEEE registry: a MAC, not an address, so a real OUI is fine here.
  plc: { ns: 'plc', mac: '00:1b:1b:20:01:00', ip: '198.18.20.100', side: 'inside' },
  newcomer: { ns: 'new', mac: '02:47:4b:20:00:50', ip: '198.18.20.50', side: 'outside' },
};

/** The four hosts that run from the start. */
export const plantFour: readonly HostName[] = ['hmi', 'eng', 'historian', 'plc'];

export const plant = {
  prefix: 24,
  broadcast: '198.18.20.255',
  historianPort: 8086,
  sshPort: 22,
  /** What the PLC's lldpd announces. */
  lldpName: 'plc-line1',
  lldpDescription: 'SIMATIC S7-1500 line 1 (lab)',
  /** The host name the engineering station sends in its DHCP requests. */
  dhcpName: 'eng-station',
  /** Pause between rounds of the background traffic (each host). */
  trafficIntervalS: 1,
} as const;

/** What a gatekeeper runs before anyone wrote a policy: nothing passes but LLDP (the learn tests start here). */
export const freshPolicy = `version: 1
mode: enforce
default: deny
rules: []
l2:
  allow: [lldp]
`;

/** The engineering station's write: function 6 to holding register 10 (mbpoll counts from 1). */
export const engWrite = { register: 11, value: 7 };

/** Why the plant lab cannot run here, or false. */
export function plantLabUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'the plant lab needs root';
  for (const tool of ['ip', 'nc', 'ping', 'tcpdump', 'mbpoll', 'lldpd', 'lldpcli', 'dnsmasq', 'busybox', 'rsyslogd']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `the plant lab needs ${tool}`;
  }
  if (spawnSync('getent', ['passwd', '_lldpd']).status !== 0) return 'the plant lab needs lldpd\'s privilege-separation user _lldpd (Debian\'s lldpd package)';
  if (spawnSync(python, ['-c', 'import pymodbus.server.async_io']).status !== 0) return 'the plant lab needs Debian\'s python3-pymodbus for /usr/bin/python3';
  if (!existsSync(cliPath)) return `the plant lab needs the built CLI (${cliPath}): npm run build`;
  return false;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Logs every connection a listener accepts, and its bytes when it closes: the oracle of what reached it. */
const SINK = `
import json, socket, sys, threading
log = open(sys.argv[1], 'a', buffering=1)
lock = threading.Lock()
def record(**e):
    with lock:
        log.write(json.dumps(e) + '\\n')
def serve(conn, peer, port):
    n = 0
    with conn:
        conn.settimeout(10)
        try:
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                n += len(d)
        except OSError:
            pass
    record(event='close', port=port, peer=peer, bytes=n)
def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    s.listen(128)
    while True:
        conn, addr = s.accept()
        record(event='accept', port=port, peer=addr[0])
        threading.Thread(target=serve, args=(conn, addr[0], port), daemon=True).start()
threads = [threading.Thread(target=listen, args=(int(p),), daemon=True) for p in sys.argv[2:]]
for t in threads: t.start()
print('listening', flush=True)
for t in threads: t.join()
`;

export interface SinkEntry {
  event: 'accept' | 'close';
  port: number;
  peer: string;
  bytes?: number;
}

/** A TCP listener's log: who connected, and how many bytes each connection carried. */
export class TcpSink {
  constructor(readonly logFile: string) {}

  entries(since = 0): SinkEntry[] {
    if (!existsSync(this.logFile)) return [];
    return readFileSync(this.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SinkEntry).slice(since);
  }

  mark(): number {
    return this.entries().length;
  }

  /** Peers whose connections were accepted since the mark. */
  accepted(since: number): string[] {
    return this.entries(since).filter((e) => e.event === 'accept').map((e) => e.peer);
  }

  /** Bytes received per closed connection since the mark, with the peer. */
  received(since: number): { peer: string; bytes: number }[] {
    return this.entries(since).filter((e) => e.event === 'close').map((e) => ({ peer: e.peer, bytes: e.bytes ?? 0 }));
  }
}

const liveLabs = new Set<PlantLab>();
let exitHookInstalled = false;

export class PlantLab {
  readonly id: string;
  /** The gatekeeper's namespace and the switch's. */
  readonly gk: string;
  readonly sw: string;
  readonly insidePort = 'inside0';
  readonly outsidePort = 'outside0';
  readonly dir: string;
  /** The pair's name (the dataplane's --name). */
  readonly pair: string;
  readonly dataplaneLog: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly namespaces: string[] = [];
  private dataplane: ChildProcess | undefined;
  private policyFile = '';
  modbus: ModbusServer | undefined;
  historian: TcpSink | undefined;
  /** The PLC's tcp/22 listener (a service no rule should ever open from the HMI). */
  plcSsh: TcpSink | undefined;

  constructor(id = randomBytes(3).toString('hex')) {
    this.id = id;
    this.gk = `gp-${id}-gk`;
    this.sw = `gp-${id}-sw`;
    this.pair = `plant-${id}`;
    this.dir = mkdtempSync(join(tmpdir(), `gatekeeper-plant-${id}-`));
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      onExit(() => {
        for (const lab of liveLabs) lab.destroy();
      });
    }
    liveLabs.add(this);
  }

  /** Namespace of a host. */
  ns(host: HostName): string {
    return `gp-${this.id}-${plantHosts[host].ns}`;
  }

  get statsFile(): string {
    return join(this.dir, 'stats.json');
  }

  /** Build the namespaces, the switch and the links; the four hosts get their MACs and (but eng) addresses. */
  create(): void {
    try {
      for (const ns of [this.gk, this.sw]) this.addNamespace(ns, ns === this.sw);
      must('ip', ['-n', this.gk, 'link', 'add', this.outsidePort, 'type', 'veth', 'peer', 'name', 'up0', 'netns', this.sw]);
      must('ip', ['-n', this.sw, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0']);
      must('ip', ['-n', this.sw, 'link', 'set', 'up0', 'master', 'br0', 'up']);
      must('ip', ['-n', this.sw, 'link', 'set', 'br0', 'up']);
      for (const host of ['hmi', 'eng', 'historian'] as const) this.addSwitchHost(host, host !== 'eng');
      this.addNamespace(this.ns('plc'), true);
      must('ip', ['-n', this.gk, 'link', 'add', this.insidePort, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns('plc')]);
      this.configureHost('plc', true);
      for (const port of [this.outsidePort, this.insidePort]) must('ip', ['-n', this.gk, 'link', 'set', port, 'up']);
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** The newcomer: a host plugged into the switch after learning (a MAC never seen before). */
  addNewcomer(): void {
    this.addSwitchHost('newcomer', true);
  }

  private addNamespace(ns: string, noIpv6: boolean): void {
    must('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    if (noIpv6) must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }

  private addSwitchHost(host: HostName, withAddress: boolean): void {
    const port = `${plantHosts[host].ns}0`;
    this.addNamespace(this.ns(host), true);
    must('ip', ['-n', this.sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns(host)]);
    must('ip', ['-n', this.sw, 'link', 'set', port, 'master', 'br0', 'up']);
    this.configureHost(host, withAddress);
  }

  private configureHost(host: HostName, withAddress: boolean): void {
    const ns = this.ns(host);
    must('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', plantHosts[host].mac]);
    if (withAddress) this.assignAddress(host);
    must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  }

  private assignAddress(host: HostName): void {
    must('ip', ['-n', this.ns(host), 'addr', 'replace', `${plantHosts[host].ip}/${plant.prefix}`, 'dev', 'eth0']);
  }

  // -------------------------------------------------------------------------------------------------
  // Running things in the hosts

  /** Run in a host (or the switch / gatekeeper namespace, by name) and wait. */
  exec(where: HostName | string, argv: string[], timeoutMs = 20_000): Run {
    const started = Date.now();
    const r: SpawnSyncReturns<string> = spawnSync('ip', ['netns', 'exec', this.nsOf(where), ...argv], { encoding: 'utf8', timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '', ms: Date.now() - started };
  }

  /** The same without blocking the event loop (a browser or a server in this process keeps running). */
  run(where: HostName | string, argv: string[], timeoutMs = 20_000): Promise<Run> {
    const started = Date.now();
    return new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', this.nsOf(where), ...argv], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
        const status = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
        resolve({ status, stdout: stdout ?? '', stderr: stderr ?? '', ms: Date.now() - started });
      });
    });
  }

  /** A long-running command in a host; killed by destroy(). */
  spawn(where: HostName | string, argv: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.nsOf(where), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  private nsOf(where: HostName | string): string {
    return where in plantHosts ? this.ns(where as HostName) : where;
  }

  /** Start and wait for a line on stdout/stderr that says the service is up. */
  private async startService(where: HostName, argv: string[], ready: RegExp, what: string, timeoutMs = 10_000): Promise<ChildProcess> {
    const child = this.spawn(where, argv);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + timeoutMs;
    while (!ready.test(out)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not start (exit ${child.exitCode}):\n${out}`);
      await sleep(50);
    }
    return child;
  }

  // -------------------------------------------------------------------------------------------------
  // Services

  /** Everything the plant runs: the PLC's Modbus server, lldpd and tcp/22, the historian's listener and DHCP server. */
  async startServices(): Promise<void> {
    await Promise.all([this.startModbus(), this.startSinks(), this.startLldpd(), this.startDhcpServer()]);
  }

  private async startModbus(): Promise<void> {
    // ModbusServer wants the lab-fixture shape; it uses only the scratch dir, spawn and the server namespace.
    const host = { lab: { dir: this.dir, server: this.ns('plc'), spawn: (ns: string, argv: string[]) => this.spawn(ns, argv) } };
    this.modbus = new ModbusServer(host as unknown as RunningLab);
    await this.modbus.start();
  }

  private async startSinks(): Promise<void> {
    this.historian = new TcpSink(join(this.dir, 'historian.log'));
    this.plcSsh = new TcpSink(join(this.dir, 'plc-ssh.log'));
    await Promise.all([
      this.startService('historian', [python, '-u', '-c', SINK, this.historian.logFile, String(plant.historianPort)], /listening/, 'the historian listener'),
      this.startService('plc', [python, '-u', '-c', SINK, this.plcSsh.logFile, String(plant.sshPort)], /listening/, 'the PLC tcp/22 listener'),
    ]);
  }

  /**
   * Debian's lldpd in the PLC, in a mount namespace of its own (ip netns exec makes one) with a
   * private tmpfs on /run: its pid file, control socket and privsep chroot (/run/lldpd, compiled in)
   * never meet the root namespace's or another lab's. Announces every 2 s, so a short learning
   * period sees several frames.
   */
  private async startLldpd(): Promise<void> {
    const conf = join(this.dir, 'lldpd.conf');
    writeFileSync(conf, [
      `configure system hostname ${plant.lldpName}`,
      `configure system description "${plant.lldpDescription}"`,
      'configure lldp tx-interval 2',
      '',
    ].join('\n'));
    // The lldpcli that lldpd runs to read the configuration drops root: it cannot read the lab's
    // private scratch dir, so the file is copied onto the private /run first.
    const script = 'mount -t tmpfs -o mode=0755 gk-plant-run /run && mkdir -m 0755 /run/lldpd && ' +
      `install -m 0644 ${conf} /run/lldpd.conf && exec lldpd -d -k -I eth0 -u /run/lldpd.socket -O /run/lldpd.conf`;
    await this.startService('plc', ['sh', '-c', script], /lldpd should resume operations/, 'lldpd');
  }

  /** dnsmasq on the historian: DHCP only (no DNS), a fixed lease for the engineering station, no router offered. */
  private async startDhcpServer(): Promise<void> {
    const eng = plantHosts.eng;
    await this.startService('historian', ['dnsmasq', '--keep-in-foreground', '--no-daemon', '--conf-file=/dev/null', '--port=0',
      '--no-hosts', '--no-resolv', '--interface=eth0', '--bind-interfaces', '--user=root', '--group=root',
      `--pid-file=${join(this.dir, 'dnsmasq.pid')}`, `--dhcp-leasefile=${join(this.dir, 'dnsmasq.leases')}`,
      '--dhcp-range=198.18.20.200,198.18.20.250,255.255.255.0,1h', `--dhcp-host=${eng.mac},${eng.ip}`,
      '--dhcp-option=option:router', '--dhcp-authoritative', '--log-dhcp'], /DHCP, sockets bound/, 'dnsmasq');
  }

  /**
   * The engineering station asks for an address (busybox udhcpc, host name in option 12) and takes
   * the one it was given (the script does nothing, so the test assigns it). Throws when no lease.
   */
  async dhcp(): Promise<Run> {
    const r = await this.run('eng', ['busybox', 'udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '5', '-T', '1',
      '-x', `hostname:${plant.dhcpName}`, '-s', '/bin/true'], 15_000);
    const lease = new RegExp(`lease of ${plantHosts.eng.ip.replace(/\./g, '\\.')} obtained`);
    if (r.status !== 0 || !lease.test(r.stdout + r.stderr)) throw new Error(`the engineering station got no DHCP lease:\n${r.stdout}${r.stderr}`);
    this.assignAddress('eng');
    return r;
  }

  // -------------------------------------------------------------------------------------------------
  // Traffic

  /** mbpoll once from a host against the PLC (unit 1): options, then the values to write (none: a read). */
  async mbpoll(from: HostName, args: string[], values: string[] = []): Promise<Run & { values: number[] }> {
    const r = await this.run(from, ['mbpoll', '-m', 'tcp', '-1', '-o', '1', '-a', '1', ...args, plantHosts.plc.ip, ...values], 10_000);
    return { ...r, values: [...r.stdout.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)].map((m) => Number(m[2])) };
  }

  /** Read holding registers 0-9 (function 3). */
  readRegisters(from: HostName): Promise<Run & { values: number[] }> {
    return this.mbpoll(from, ['-t', '4', '-r', '1', '-c', '10']);
  }

  /** Write one holding register (function 6). */
  writeRegister(from: HostName, register = engWrite.register, value = engWrite.value): Promise<Run & { values: number[] }> {
    return this.mbpoll(from, ['-t', '4', '-r', String(register)], [String(value)]);
  }

  ping(from: HostName, to: HostName, count = 2): Promise<Run> {
    return this.run(from, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', plantHosts[to].ip], 10_000);
  }

  /** A TCP connection that sends one line and closes (the PLC's push to the historian). */
  sendLine(from: HostName, to: HostName, port: number, line = `${from} ${Date.now()}`): Promise<Run> {
    return this.run(from, ['sh', '-c', `printf '%s\\n' "$1" | nc -N -w 2 ${plantHosts[to].ip} ${port}`, 'sh', line], 10_000);
  }

  /** Connect only (nc -z). */
  connect(from: HostName, to: HostName, port: number): Promise<Run> {
    return this.run(from, ['nc', '-z', '-w', '2', plantHosts[to].ip, String(port)], 10_000);
  }

  /**
   * The plant's everyday traffic in the background, a round every second per host: the HMI reads
   * and pings, the engineering station reads, writes every third round and pings, the historian
   * pings, the PLC pushes a line to the historian. Ends when stop() is called (or at destroy()).
   */
  startTraffic(): { stop: () => void } {
    const plc = plantHosts.plc.ip;
    const read = `mbpoll -m tcp -1 -o 1 -a 1 -t 4 -r 1 -c 10 ${plc} >/dev/null 2>&1`;
    const ping = `ping -c 1 -W 1 ${plc} >/dev/null 2>&1`;
    const pause = `sleep ${plant.trafficIntervalS}`;
    const loops: [HostName, string][] = [
      ['hmi', `while :; do ${read}; ${ping}; ${pause}; done`],
      ['eng', `i=0; while :; do ${read}; if [ $((i % 3)) -eq 0 ]; then mbpoll -m tcp -1 -o 1 -a 1 -t 4 -r ${engWrite.register} ${plc} ${engWrite.value} >/dev/null 2>&1; fi; ` +
        `${ping}; i=$((i + 1)); ${pause}; done`],
      ['historian', `while :; do ${ping}; ${pause}; done`],
      ['plc', `while :; do printf 'plc-line1 hr0=1000\\n' | nc -N -w 2 ${plantHosts.historian.ip} ${plant.historianPort} >/dev/null 2>&1; ${pause}; done`],
    ];
    const children = loops.map(([host, script]) => this.spawn(host, ['sh', '-c', script]));
    return {
      stop: () => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        // `ip netns exec` runs sh in place (exec), so killing it ends the loop; a command it runs ends on its own.
      },
    };
  }

  /**
   * tcpdump (verbose, with link-level headers) on an interface of a namespace; resolves once it
   * listens, so nothing sent afterwards is missed. stop() ends it and gives what it printed.
   */
  async capture(where: string, iface: string, filter: string): Promise<{ stop: () => Promise<string> }> {
    const child = this.spawn(where, ['tcpdump', '-i', iface, '-nn', '-e', '-v', '-l', filter]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 5000;
    while (!/listening on/.test(out)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tcpdump on ${where}/${iface} did not start: ${out}`);
      await sleep(50);
    }
    return {
      stop: async () => {
        await sleep(300);
        child.kill('SIGINT');
        await exited;
        return out;
      },
    };
  }

  // -------------------------------------------------------------------------------------------------
  // The gatekeeper

  /** Start the dataplane on the pair (connected to management at mgmtSocket when given); resolves once it forwards. */
  async startDataplane(policyText: string, mgmtSocket?: string, timeoutMs = 15_000): Promise<ChildProcess> {
    this.policyFile = join(this.dir, 'policy.yaml');
    writeFileSync(this.policyFile, policyText);
    rmSync(this.statsFile, { force: true });
    const child = this.spawn(this.gk, [process.execPath, ...dataplaneNodeFlags, cliPath, 'run', '--inside', this.insidePort, '--outside', this.outsidePort,
      '--policy', this.policyFile, '--name', this.pair, '--stats-file', this.statsFile,
      ...(mgmtSocket === undefined ? [] : ['--mgmt-socket', mgmtSocket])]);
    this.dataplane = child;
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

  /** Replace the dataplane's policy file and SIGHUP it (no management); resolves when it answered. */
  async reload(text: string): Promise<void> {
    if (!this.dataplane) throw new Error('no dataplane');
    const before = this.dataplaneLog.length;
    writeFileSync(this.policyFile, text);
    this.dataplane.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    while (!this.dataplaneLog.slice(before).some((l) => /policy reload/.test(l))) {
      if (Date.now() > deadline) throw new Error(`the dataplane did not answer the reload:\n${this.dataplaneLog.slice(before).join('\n')}`);
      await sleep(50);
    }
  }

  stats(): DataplaneStats {
    return JSON.parse(readFileSync(this.statsFile, 'utf8')) as DataplaneStats;
  }

  /** Everything: processes, namespaces (deleting one deletes its veths), scratch files. Safe to call twice. */
  destroy(): void {
    liveLabs.delete(this);
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const ns of this.namespaces.splice(0).reverse()) {
      spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean)
        .forEach((pid) => spawnSync('kill', ['-9', pid]));
      spawnSync('ip', ['netns', 'del', ns]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Build the plant and start its services (no gatekeeper yet); torn down at the end of the test, also on failure. */
export async function startPlant(t: Test): Promise<PlantLab> {
  const lab = new PlantLab();
  t.teardown(() => lab.destroy());
  lab.create();
  await lab.startServices();
  return lab;
}

function must(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}
