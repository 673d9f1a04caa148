// Liveness probes against real hosts: an asset namespace joined to the root namespace (where
// management runs, with its own stack; never through a data port) by a veth, real ICMP and ICMPv6
// echo answered by that namespace's kernel, counted on the wire with tcpdump. The inventory is a
// fake of the Inventory interface (inventory/types.ts) that records what the prober tells it.
// Proves: up with a measured RTT; down only after K misses; up again on the first answer; only
// assets of enabled groups probed, only at their inventory addresses; the global rate limit; off by
// default; without CAP_NET_RAW one clear log line, a counter and no crash; CAP_NET_RAW alone suffices.

import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AssetEvent } from '../appliance/ipc/events';
import { LivenessProber } from '../appliance/mgmt/inventory/liveness';
import type { Asset, AssetFilter, Inventory } from '../appliance/mgmt/inventory/types';
import { DEFAULT_LIVENESS, type LivenessSettings } from '../appliance/mgmt/state/settings';
import { projectRoot } from '../appliance/paths';

const missing = process.getuid?.() !== 0 ? 'needs root'
  : ['ip', 'tcpdump', 'setpriv', 'sysctl'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function must(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** One asset host in a namespace of its own, reached from the root namespace over a veth. */
class AssetHost {
  readonly id = randomBytes(2).toString('hex');
  readonly ns = `gkl-${this.id}`;
  readonly hostIf = `gkl${this.id}`;
  private readonly octet = parseInt(this.id.slice(0, 2), 16);
  readonly v4 = (host: number) => `198.19.${this.octet}.${host}`;
  /** A 4th group with no leading zero, so it reads the same in tcpdump's output. */
  readonly v6 = (host: number) => `2001:2:0:${(parseInt(this.id, 16) | 0x1000).toString(16)}::${host.toString(16)}`;

  create(): void {
    try {
      must(['ip', 'netns', 'add', this.ns]);
      must(['ip', 'link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns]);
      must(['ip', 'addr', 'add', `${this.v4(1)}/24`, 'dev', this.hostIf]);
      must(['ip', '-6', 'addr', 'add', `${this.v6(1)}/64`, 'dev', this.hostIf, 'nodad']);
      must(['ip', 'link', 'set', this.hostIf, 'up']);
      must(['ip', '-n', this.ns, 'link', 'set', 'lo', 'up']);
      must(['ip', '-n', this.ns, 'link', 'set', 'eth0', 'up']);
      this.addAddresses([10, 20]);
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  addAddresses(hosts: number[]): void {
    for (const h of hosts) {
      must(['ip', '-n', this.ns, 'addr', 'add', `${this.v4(h)}/24`, 'dev', 'eth0']);
      must(['ip', '-n', this.ns, '-6', 'addr', 'add', `${this.v6(h)}/64`, 'dev', 'eth0', 'nodad']);
    }
  }

  /** The asset's kernel stops (true) or starts again (false) answering echo requests. */
  ignoreEcho(ignore: boolean): void {
    const v = ignore ? '1' : '0';
    must(['ip', 'netns', 'exec', this.ns, 'sysctl', '-q', '-w', `net.ipv4.icmp_echo_ignore_all=${v}`, `net.ipv6.icmp.echo_ignore_all=${v}`]);
  }

  destroy(): void {
    spawnSync('ip', ['link', 'del', this.hostIf]);
    spawnSync('ip', ['netns', 'del', this.ns]);
  }

  policy(): string {
    return `version: 1
mode: enforce
default: deny
groups:
  plc:
    members: [${this.v4(10)}, "${this.v6(10)}", ${this.v4(100)}-${this.v4(149)}]
  hmi:
    members: [${this.v4(20)}, "${this.v6(20)}"]
rules:
  - name: hmi-pings-plc
    from: hmi
    to: plc
    service: ping
    action: allow
`;
  }
}

/** Echo requests seen leaving the root namespace on the veth: [epoch seconds, destination]. */
class Capture {
  readonly requests: [number, string][] = [];
  private child: ChildProcess | null = null;

  async start(t: Test, ifname: string): Promise<void> {
    const child = spawn('tcpdump', ['-i', ifname, '-n', '-l', '-tt', '-Q', 'out',
      'icmp[icmptype] == icmp-echo or (icmp6 and ip6[40] == 128)'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    t.teardown(() => this.stop());
    let buffered = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^(\d+\.\d+) IP6? (\S+) > (\S+?):? ICMP/.exec(line);
        if (m) this.requests.push([Number(m[1]), m[3].replace(/:$/, '')]);
      }
    });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
      child.stderr?.on('data', (b: Buffer) => {
        err += b.toString();
        if (err.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  stop(): void {
    this.child?.kill();
    this.child = null;
  }

  to(address: string): number {
    return this.requests.filter(([, dst]) => dst === address).length;
  }
}

function asset(id: number, addresses: string[], extra: Partial<Asset> = {}): Asset {
  return {
    id, pair: 'pair0', mac: `02:00:00:00:00:${id.toString(16).padStart(2, '0')}`, vendor: null, addresses, router: false, vlan: 0,
    side: 'inside', name: `asset-${id}`, identity: {}, firstSeen: 0, lastSeen: 0, packets: 0, bytes: 0, offers: [], uses: [],
    liveness: { state: 'unknown', rttMs: null, checkedAt: null, changedAt: null }, ...extra,
  };
}

/** The Inventory's liveness seam: records every call, changes state like the inventory does, raises events on a change. */
class FakeInventory implements Pick<Inventory, 'assets' | 'liveness'> {
  readonly calls: { id: number; answered: boolean; rttMs: number | null; at: number }[] = [];
  constructor(readonly list: Asset[]) {}
  assets(filter: AssetFilter): Asset[] {
    return this.list.slice(0, filter.limit);
  }
  liveness(id: number, answered: boolean, rttMs: number | null, now: number): AssetEvent | null {
    this.calls.push({ id, answered, rttMs, at: now });
    const a = this.list.find((x) => x.id === id);
    if (!a) return null;
    const before = a.liveness.state;
    const state = answered ? 'up' : 'down';
    a.liveness = { state, rttMs: answered ? rttMs : a.liveness.rttMs, checkedAt: now, changedAt: before === state ? a.liveness.changedAt : now };
    // The first answer of an asset never probed before is not "back up".
    if (before === state || (before === 'unknown' && state === 'up')) return null;
    return { type: state === 'up' ? 'asset.up' : 'asset.down', severity: state === 'up' ? 'info' : 'warning', time: new Date(now).toISOString(),
      pair: a.pair, asset: id, mac: a.mac, address: a.addresses[0] ?? '', name: a.name ?? '', vendor: '', vlan: 0, side: a.side,
      ...(answered && rttMs !== null ? { rttMs } : {}) } as AssetEvent;
  }
}

function quietLog() {
  const lines: string[] = [];
  const add = (level: string) => (obj: object, msg: string) => void lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  return { lines, info: add('info'), warn: add('warn'), error: add('error') };
}

function lab(t: Test): AssetHost {
  const host = new AssetHost();
  host.create();
  t.teardown(() => host.destroy());
  return host;
}

async function waitFor(what: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (what()) return true;
    await sleep(50);
  }
  return what();
}

const PLC: LivenessSettings = {
  ...DEFAULT_LIVENESS, enabled: true, intervalSeconds: 1, timeoutMs: 300, downAfter: 3, maxProbesPerSecond: 10,
  groups: { plc: { enabled: true }, hmi: { enabled: false } },
};

t.test('down after K misses, up on the first answer, IPv4 and IPv6, only enabled groups', { skip: missing }, async (t) => {
  const host = lab(t);
  const capture = new Capture();
  await capture.start(t, host.hostIf);
  const inventory = new FakeInventory([
    asset(1, [host.v4(10)]),
    asset(2, [host.v6(10)]),
    asset(3, [host.v4(20), host.v6(20)]), // group hmi: probing off
    asset(4, [host.v4(10), host.v4(11)], { router: true }), // a router's addresses are the hosts behind it
    asset(5, []),
  ]);
  const events: { event: AssetEvent; timeouts: number }[] = [];
  const log = quietLog();
  const text = host.policy();
  const prober = new LivenessProber({
    inventory, settings: () => PLC, activePolicy: () => ({ text, hash: 'h1' }), log,
    onEvent: (event) => events.push({ event, timeouts: prober.counters().timeouts }),
  });
  prober.start();
  t.teardown(() => prober.stop());

  const up = (id: number) => inventory.calls.some((c) => c.id === id && c.answered);
  t.ok(await waitFor(() => up(1) && up(2), 8000), `both assets answered: ${log.lines.join('; ')}`);
  const rtts = inventory.calls.filter((c) => c.answered).map((c) => c.rttMs ?? -1);
  t.ok(rtts.every((r) => r > 0 && r < 300), `round-trip times measured: ${rtts.join(', ')} ms`);
  t.comment(`RTT over the veth (IPv4 and IPv6): ${Math.min(...rtts)}–${Math.max(...rtts)} ms`);
  t.equal(prober.status().state, 'probing');

  const silencedAt = Date.now();
  host.ignoreEcho(true);
  const down = (id: number) => events.find((e) => e.event.type === 'asset.down' && e.event.asset === id);
  t.ok(await waitFor(() => Boolean(down(1) && down(2)), 8000), 'asset.down for the IPv4 and the IPv6 asset');
  for (const id of [1, 2]) {
    const d = down(id);
    if (!d) continue;
    const firstMiss = inventory.calls.find((c) => c.id === id && !c.answered);
    t.equal(firstMiss?.at, Date.parse(d.event.time), `asset ${id}: the first miss the inventory hears of is the one that takes it down`);
    const afterMs = Date.parse(d.event.time) - silencedAt;
    // K=3 at 1 s: the 3rd unanswered probe times out 2 intervals plus the timeout after the first.
    t.ok(afterMs >= 2 * 1000 + 300 - 150, `asset ${id} down ${afterMs} ms after it stopped answering (not before K=3 misses)`);
    t.ok(afterMs <= 3 * 1000 + 300 + 1000, `and not much later (${afterMs} ms)`);
  }
  t.ok(events.filter((e) => e.event.type === 'asset.down').every((e) => e.timeouts >= 3), 'each down came after at least 3 timeouts');

  host.ignoreEcho(false);
  const back = (id: number) => events.find((e) => e.event.type === 'asset.up' && e.event.asset === id);
  t.ok(await waitFor(() => Boolean(back(1) && back(2)), 4000), 'asset.up for both once they answer again');
  for (const id of [1, 2]) t.ok((back(id)?.event.rttMs ?? 0) > 0, `asset ${id} up with its RTT: ${back(id)?.event.rttMs} ms`);

  prober.stop();
  await sleep(500); // probes in flight time out
  const wanted = new Set([host.v4(10), host.v6(10)]);
  const others = capture.requests.filter(([, dst]) => !wanted.has(dst));
  t.same(others, [], 'nothing but the two enabled assets was probed (not the hmi group, not the router\'s addresses)');
  t.ok(capture.to(host.v4(10)) >= 5 && capture.to(host.v6(10)) >= 5, `on the wire: ${capture.to(host.v4(10))} IPv4 and ${capture.to(host.v6(10))} IPv6 echo requests`);
  const c = prober.counters();
  t.equal(c.sent, capture.requests.length, `counters.sent (${c.sent}) matches the echo requests on the wire`);
  t.equal(c.sent, c.answered + c.timeouts + c.errors, `every probe ended answered or timed out (${JSON.stringify(c)})`);
  t.equal(c.errors, 0, 'no errors');
});

t.test('the global rate limit holds with many assets due at once', { skip: missing }, async (t) => {
  const host = lab(t);
  const hosts = Array.from({ length: 50 }, (_, i) => 100 + i);
  host.addAddresses(hosts);
  const capture = new Capture();
  await capture.start(t, host.hostIf);
  const inventory = new FakeInventory(hosts.map((h, i) => asset(10 + i, [host.v4(h)])));
  const rate = 5;
  const text = host.policy();
  const prober = new LivenessProber({
    inventory, settings: () => ({ ...PLC, maxProbesPerSecond: rate }), activePolicy: () => ({ text, hash: 'h1' }),
    log: quietLog(), onEvent: () => undefined,
  });
  prober.start();
  t.teardown(() => prober.stop());
  t.ok(await waitFor(() => capture.requests.length > 0, 5000), 'probing started');
  const seconds = 4;
  await sleep(seconds * 1000);
  prober.stop();
  await sleep(400);
  const times = capture.requests.map(([at]) => at);
  const span = times[times.length - 1] - times[0];
  let worst = 0;
  for (let i = 0; i < times.length; i++) {
    let j = i;
    while (j < times.length && times[j] - times[i] < 1) j++;
    worst = Math.max(worst, j - i);
  }
  const measured = (times.length - 1) / span;
  t.comment(`${times.length} probes in ${span.toFixed(2)} s: ${measured.toFixed(2)}/s, at most ${worst} in any second (limit ${rate}/s, 50 assets due every second)`);
  t.ok(worst <= rate + 1, `never more than the limit (plus one tick's token) in any second: ${worst}`);
  t.ok(measured >= rate * 0.8 && measured <= rate * 1.1, `and it does send at the limit: ${measured.toFixed(2)}/s`);
  t.equal(new Set(capture.requests.map(([, dst]) => dst)).size, Math.min(50, times.length), 'round robin: no asset probed twice before every asset once');
  t.equal(prober.counters().targets, 0, 'stopped: no targets');
});

t.test('off by default: nothing is sent, no socket opened', { skip: missing }, async (t) => {
  const host = lab(t);
  const capture = new Capture();
  await capture.start(t, host.hostIf);
  const inventory = new FakeInventory([asset(1, [host.v4(10)]), asset(2, [host.v6(10)])]);
  const text = host.policy();
  for (const [what, settings] of [
    ['the defaults', DEFAULT_LIVENESS],
    ['master switch on, no group listed', { ...DEFAULT_LIVENESS, enabled: true }],
    ['groups listed, master switch off', { ...PLC, enabled: false }],
  ] as const) {
    let opened = 0;
    const prober = new LivenessProber({
      inventory, settings: () => settings, activePolicy: () => ({ text, hash: 'h1' }), log: quietLog(), onEvent: () => undefined,
      transport: { open: () => { opened++; return null; }, echo: async () => ({ kind: 'timeout' }), close: () => undefined },
    });
    prober.start();
    await sleep(1500);
    prober.stop();
    t.equal(opened, 0, `${what}: the socket is never opened`);
    t.same(prober.counters(), { sent: 0, answered: 0, timeouts: 0, errors: 0, targets: 0, disabled: 0 }, `${what}: all counters 0`);
  }
  const real = new LivenessProber({
    inventory, settings: () => DEFAULT_LIVENESS, activePolicy: () => ({ text, hash: 'h1' }), log: quietLog(), onEvent: () => undefined,
  });
  real.start();
  await sleep(1500);
  real.stop();
  await sleep(200);
  t.equal(real.status().state, 'off', 'state off');
  t.equal(capture.requests.length, 0, 'with the real sockets and the defaults: no echo request on the wire');
});

/** A prober in a child process with the given credentials (setpriv), probing host .10 for 2 s; its report. */
function childProbe(t: Test, host: AssetHost, credentials: string[]) {
  const module = join(projectRoot, 'dist/appliance/mgmt/inventory/liveness.js');
  const script = `
const { LivenessProber } = require(${JSON.stringify(module)});
const [address, text] = JSON.parse(process.argv[1]);
const calls = [];
const logged = [];
const log = Object.fromEntries(['info', 'warn', 'error'].map((l) => [l, (o, m) => logged.push(l + ': ' + m)]));
const inventory = {
  assets: () => [{ id: 1, router: false, addresses: [address] }],
  liveness: (id, answered, rttMs) => { calls.push({ id, answered, rttMs }); return null; },
};
const settings = { enabled: true, intervalSeconds: 1, timeoutMs: 300, downAfter: 3, maxProbesPerSecond: 10, groups: { plc: { enabled: true } } };
const prober = new LivenessProber({ inventory, settings: () => settings, activePolicy: () => ({ text, hash: 'h' }), log, onEvent: () => {} });
prober.start();
setTimeout(() => { const status = prober.status(); prober.stop(); console.log(JSON.stringify({ status, calls, logged })); process.exit(0); }, 2500);
`;
  const r = spawnSync('setpriv', [...credentials, process.execPath, '-e', script, JSON.stringify([host.v4(10), host.policy()])],
    { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH } });
  t.equal(r.status, 0, `the child exited normally (no crash)${r.status ? `: ${r.stderr}` : ''}`);
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as {
      status: { state: string; reason: string; counters: Record<string, number> }; calls: { answered: boolean; rttMs: number }[]; logged: string[];
    };
  } catch {
    t.fail(`no report from the child: ${r.stdout}${r.stderr}`);
    return null;
  }
}

const childMissing = missing || (existsSync(join(projectRoot, 'dist/appliance/mgmt/inventory/liveness.js')) ? false : 'needs `npm run build` (dist/)');

t.test('capabilities: without CAP_NET_RAW a clear error and a counter; with CAP_NET_RAW alone it probes', { skip: childMissing }, async (t) => {
  const host = lab(t);
  // Root's uid, but only the capabilities given below: capabilities, not the uid, decide raw sockets.
  // (Another uid could not read a checkout under a directory only root may enter, as CI's and
  // /root are; the unit's own user is checked under systemd in systemd.test.ts.)
  const user = ['--reuid=0', '--regid=0', '--clear-groups', '--no-new-privs'];

  const without = childProbe(t, host, [...user, '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all']);
  if (without) {
    t.equal(without.status.state, 'disabled', 'probing disabled');
    t.match(without.status.reason, /Operation not permitted.*CAP_NET_RAW/, `the reason says what is missing: "${without.status.reason}"`);
    t.equal(without.status.counters.errors, 1, 'counted once, not once per tick');
    t.equal(without.status.counters.sent, 0, 'nothing sent');
    t.equal(without.logged.filter((l) => l.startsWith('error: liveness probes disabled')).length, 1, `one log line: ${without.logged.join(' | ')}`);
    t.same(without.calls, [], 'the inventory is not told anything');
  }

  const only = childProbe(t, host, [...user, '--inh-caps=-all,+net_raw', '--ambient-caps=-all,+net_raw', '--bounding-set=-all,+net_raw']);
  if (only) {
    t.equal(only.status.state, 'probing', `probing with CAP_NET_RAW as its only capability${only.status.reason ? `: ${only.status.reason}` : ''}`);
    t.ok(only.calls.length >= 2 && only.calls.every((c) => c.answered && c.rttMs > 0), `answered: ${JSON.stringify(only.calls)}`);
  }
});
