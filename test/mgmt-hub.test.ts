// The dataplane side of management over a real Unix socket: the "dataplanes" here are small clients
// speaking the IPC protocol (appliance/ipc/messages.ts) line by line.

import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DenySummaryEvent, FlowStartEvent, GatekeeperEvent } from '../appliance/ipc/events';
import type { DataplaneStats } from '../appliance/ipc/stats';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import { IPC_VERSION, type FlowRecord, type HelloMessage, type ManagementMessage } from '../appliance/ipc/messages';
import { createDataplaneHub, type DataplaneHubOptions } from '../appliance/mgmt/dataplanes/hub';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface LogLine {
  level: string;
  fields: object;
  message: string;
}

function testLog(lines: LogLine[]) {
  const at = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message });
  return { info: at('info'), warn: at('warn'), error: at('error') };
}

/** A hub on a fresh socket path whose parent directory does not exist yet; closed at teardown. */
async function startHub(t: Test, options: Partial<DataplaneHubOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gk-hub-'));
  const socketPath = join(dir, 'run', 'mgmt.sock');
  const logLines: LogLine[] = [];
  const hub = createDataplaneHub({ socketPath, log: testLog(logLines), ...options });
  const events: GatekeeperEvent[] = [];
  hub.onEvent((e) => events.push(e));
  t.teardown(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await hub.listen();
  return { hub, socketPath, dir, logLines, events };
}

type PrepareAnswer = { kind: 'ok' } | { kind: 'refuse'; errors: string[] } | { kind: 'silent' } | { kind: 'disconnect' };

/** A dataplane as the hub sees it: hello, then answers prepare/commit/flows.get as configured. */
class FakeDataplane {
  readonly received: ManagementMessage[] = [];
  prepare: PrepareAnswer = { kind: 'ok' };
  commit: 'ok' | 'silent' = 'ok';
  flows: FlowRecord[] = [];
  answerFlows = true;
  generation = 1;
  policyHash: string;
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private preparedText = '';
  private waiters: { type: string; resolve: (m: ManagementMessage) => void; from: number }[] = [];

  constructor(socketPath: string, readonly pair: string, policyHash = 'initial-hash') {
    this.policyHash = policyHash;
    this.socket = connect(socketPath);
    const reader = new LineReader<ManagementMessage>(
      (m) => this.receive(m),
      () => this.socket.destroy(),
    );
    this.socket.on('data', (chunk) => reader.push(chunk));
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve()));
  }

  static async connect(socketPath: string, pair: string, hello: Partial<HelloMessage> = {}): Promise<FakeDataplane> {
    const dp = new FakeDataplane(socketPath, pair, hello.policyHash);
    dp.send({
      type: 'hello', version: IPC_VERSION, pair, pid: 1000 + pair.length, inside: `${pair}-in`, outside: `${pair}-out`,
      generation: dp.generation, policyHash: dp.policyHash, startedAt: Date.now() - 5000, ...hello,
    });
    await dp.next('welcome');
    return dp;
  }

  send(message: object): void {
    this.socket.write(encodeMessage(message));
  }

  writeRaw(text: string): void {
    this.socket.write(text);
  }

  end(): void {
    this.socket.destroy();
  }

  /** The first message of `type` received from now on (or already received after index `from`). */
  next(type: string, from = this.received.length, timeoutMs = 3000): Promise<ManagementMessage> {
    const seen = this.received.slice(from).find((m) => m.type === type);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.pair}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ type, from, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  }

  types(): string[] {
    return this.received.map((m) => m.type);
  }

  private receive(m: ManagementMessage): void {
    this.received.push(m);
    this.waiters = this.waiters.filter((w) => (w.type === m.type ? (w.resolve(m), false) : true));
    if (m.type === 'policy.prepare') {
      this.preparedText = m.text;
      const a = this.prepare;
      if (a.kind === 'ok') this.send({ type: 'policy.prepared', requestId: m.requestId, ok: true, errors: [] });
      else if (a.kind === 'refuse') this.send({ type: 'policy.prepared', requestId: m.requestId, ok: false, errors: a.errors });
      else if (a.kind === 'disconnect') this.socket.destroy();
    } else if (m.type === 'policy.commit' && this.commit === 'ok') {
      this.generation++;
      this.policyHash = sha256(this.preparedText);
      this.send({ type: 'policy.committed', requestId: m.requestId, generation: this.generation, policyHash: this.policyHash });
    } else if (m.type === 'flows.get' && this.answerFlows) {
      const flows = this.flows.slice(0, m.limit);
      this.send({ type: 'flows', requestId: m.requestId, flows, matched: this.flows.length, total: this.flows.length + 10 });
    }
  }
}

function port(name: string, rxPackets: number, rxBytes: number, dropped: Record<string, number> = {}) {
  return {
    name, link: 'up', rx_packets: rxPackets, rx_bytes: rxBytes, tx_packets: rxPackets, tx_bytes: rxBytes, forwarded: rxPackets,
    rejects_sent: 0, rejects_suppressed: 0, send_errors: 0, monitor_would_drop: 0, kernel_dropped: rxPackets / 100, rx_segments: rxPackets + 5, fast_path_frames: rxPackets / 2,
    dropped: { policy: 0, decode: 0, ...dropped }, decode_errors: {},
  };
}

function stats(pair: string, uptimeMs: number, rx: number, rules: { allow: number; deny: number }): DataplaneStats {
  return {
    pair, pid: 1000 + pair.length, uptimeMs, generation: 1, policyHash: 'initial-hash', mode: 'enforce',
    ports: { inside: port(`${pair}-in`, rx, rx * 100, { policy: rules.deny }), outside: port(`${pair}-out`, rx * 2, rx * 200) },
    flows: { active: 7, capacity: 1000, created: 20, evicted: 0, expired: 13, closed: 0, cut: 0, chained: 0, earlyDropped: 0, embryonic: 0 },
    fragments: { tracked: 0 },
    rules: [
      { name: 'web', action: 'allow', packets: rules.allow, bytes: rules.allow * 100, flows: 3, violations: 0 },
      { name: 'blocked', action: 'reject', packets: rules.deny, bytes: rules.deny * 60, flows: 0, violations: 0 },
      { name: 'default', action: 'deny', packets: 0, bytes: 0, flows: 0, violations: 0 },
    ],
    inspect: {},
    busyPoll: { backoffs: uptimeMs / 1000, stalls: uptimeMs / 500 },
    fastPath: { state: 'on', flows: 4, capacity: 65536, offloads: 9, notOffloadable: 1, tableFull: 2, withdrawn: 5 },
  };
}

/** Waits until `check` holds (the hub handles messages asynchronously). */
async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** name{labels} → value, from Prometheus text. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable metrics line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

const policy = (webAction: string, blockedAction: string) => `version: 1
mode: enforce
default: deny
groups:
  client: [198.18.1.1-198.18.1.99, "2001:2:0:1::1-2001:2:0:1::99"]
  server: [198.18.1.100, "2001:2:0:1::100"]
rules:
  - name: ping
    from: client
    to: server
    service: ping
    action: allow
  - name: web
    from: client
    to: server
    service: tcp/8080
    action: ${webAction}
  - name: test-port
    from: client
    to: server
    service: tcp/9999
    action: ${blockedAction}
`;

t.test('socket: parent created, mode 0660, stale socket replaced, live socket and non-socket refused', async (t) => {
  const { socketPath, dir } = await startHub(t);
  t.ok(lstatSync(socketPath).isSocket(), 'listening on the path');
  t.equal(lstatSync(socketPath).mode & 0o777, 0o660);
  await t.rejects(createDataplaneHub({ socketPath, log: testLog([]) }).listen(), /another management service/);

  // A socket file nobody answers on, as a crashed process leaves it: closing a server unlinks its
  // path, so a second name for the same socket inode stays behind.
  const stale = join(dir, 'stale.sock');
  const crashed = join(dir, 'crashed.sock');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(stale, resolve));
  linkSync(stale, crashed);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.ok(lstatSync(crashed).isSocket(), 'stale socket file left behind');
  const hub2 = createDataplaneHub({ socketPath: crashed, log: testLog([]) });
  await hub2.listen();
  const dp = await FakeDataplane.connect(crashed, 'p1');
  t.equal(hub2.pairs().length, 1, 'the new hub serves on the replaced path');
  dp.end();
  await hub2.close();
  t.notOk(existsSync(crashed), 'the socket file is removed on close');

  const plain = join(dir, 'plain-file');
  writeFileSync(plain, 'not a socket');
  await t.rejects(createDataplaneHub({ socketPath: plain, log: testLog([]) }).listen(), /is not a socket/);
});

t.test('hello: version mismatch gets an error and is closed; welcome and connect/disconnect events otherwise', async (t) => {
  const { hub, socketPath, logLines, events } = await startHub(t);
  const old = new FakeDataplane(socketPath, 'old');
  old.send({ type: 'hello', version: IPC_VERSION + 1, pair: 'old', pid: 1, inside: 'a', outside: 'b', generation: 1, policyHash: 'x', startedAt: 0 });
  const error = await old.next('error');
  t.match(error, { type: 'error', message: /IPC version 2 is not supported: management speaks version 1/ });
  await old.closed;
  t.same(hub.pairs(), [], 'not registered');
  t.ok(logLines.some((l) => l.level === 'warn' && /protocol error/.test(l.message) && (l.fields as { kind: string }).kind === 'version_mismatch'), 'logged');
  t.match(await hub.metrics(), /gatekeeper_ipc_protocol_errors_total\{reason="version_mismatch"\} 1/);

  const dp = await FakeDataplane.connect(socketPath, 'pair-a');
  t.match(dp.received[0], { type: 'welcome', version: IPC_VERSION });
  t.match(hub.pairs(), [{ pair: 'pair-a', connected: true, generation: 1, policyHash: 'initial-hash', ports: { inside: { name: 'pair-a-in' } } }]);
  t.match(events, [{ type: 'dataplane.connected', pair: 'pair-a', severity: 'info' }]);
  dp.end();
  await until(() => events.length === 2, 'disconnect event');
  t.match(events[1], { type: 'dataplane.disconnected', pair: 'pair-a' });
  t.match(hub.pairs(), [{ pair: 'pair-a', connected: false }], 'a pair seen once stays listed');

  // The same pair connecting again replaces the old connection.
  const first = await FakeDataplane.connect(socketPath, 'pair-b');
  const second = await FakeDataplane.connect(socketPath, 'pair-b', { pid: 4242 });
  await first.closed;
  t.match(hub.pairs().filter((p) => p.pair === 'pair-b'), [{ connected: true, pid: 4242 }]);
  t.notOk(events.some((e) => e.type === 'dataplane.disconnected' && e.pair === 'pair-b'), 'replacing is not a disconnect');
  second.end();
});

t.test('a fail-open pair whose dataplane is gone is in bypass: bypass.on, status and metric say so', async (t) => {
  const { hub, socketPath, events } = await startHub(t);
  const closed = await FakeDataplane.connect(socketPath, 'closed-pair');
  const open = await FakeDataplane.connect(socketPath, 'open-pair', { failMode: 'open' });
  t.match(hub.pairs().find((p) => p.pair === 'open-pair'), { connected: true, bypass: false });
  closed.end();
  open.end();
  await until(() => events.filter((e) => e.type === 'dataplane.disconnected').length === 2, 'both disconnected');
  const bypass = events.filter((e) => e.type === 'bypass.on');
  t.match(bypass, [{ type: 'bypass.on', pair: 'open-pair', severity: 'critical', reason: /dataplane ended/ }], 'bypass.on for the fail-open pair only');
  t.match(hub.pairs().find((p) => p.pair === 'open-pair'), { connected: false, bypass: true });
  t.match(hub.pairs().find((p) => p.pair === 'closed-pair'), { connected: false, bypass: false });
  const metrics = await hub.metrics();
  t.match(metrics, /gatekeeper_bypass\{pair="open-pair"\} 1/);
  t.match(metrics, /gatekeeper_bypass\{pair="closed-pair"\} 0/);
  const back = await FakeDataplane.connect(socketPath, 'open-pair', { failMode: 'open' });
  t.match(hub.pairs().find((p) => p.pair === 'open-pair'), { connected: true, bypass: false }, 'a returning dataplane ends it');
  back.end();
});

t.test('bad input closes that connection only, is counted, and never crashes the hub', async (t) => {
  const { hub, socketPath } = await startHub(t);
  const cases: [string, (dp: FakeDataplane) => void, string][] = [
    ['garbage', (dp) => dp.writeRaw('this is not json\n'), 'invalid_json'],
    ['unknown type', (dp) => dp.send({ type: 'teleport' }), 'unknown_type'],
    ['no type', (dp) => dp.writeRaw('[1,2,3]\n'), 'invalid_message'],
    ['malformed stats', (dp) => dp.send({ type: 'stats', stats: { pair: 'x', ports: {} } }), 'invalid_message'],
    ['malformed reply', (dp) => dp.send({ type: 'policy.prepared', requestId: 'one' }), 'invalid_message'],
    ['too long', (dp) => dp.writeRaw('{"type":"events","events":["' + 'x'.repeat(16 * 1024 * 1024) + '"]}\n'), 'too_long'],
  ];
  for (const [name, sendBad, kind] of cases) {
    const dp = await FakeDataplane.connect(socketPath, `bad-${kind}`);
    sendBad(dp);
    await dp.closed;
    t.pass(`${name}: connection closed`);
    t.match(await hub.metrics(), new RegExp(`gatekeeper_ipc_protocol_errors_total\\{reason="${kind}"\\} [1-9]`), `${name}: counted as ${kind}`);
  }
  const before = new FakeDataplane(socketPath, 'no-hello');
  before.send({ type: 'stats', stats: stats('x', 0, 0, { allow: 0, deny: 0 }) });
  await before.closed;
  t.match(await hub.metrics(), /reason="no_hello"\} 1/, 'a message before hello closes');

  // A malformed event in a batch is skipped and counted; the connection stays.
  const events: GatekeeperEvent[] = [];
  hub.onEvent((e) => events.push(e));
  const dp = await FakeDataplane.connect(socketPath, 'good');
  dp.send({ type: 'events', dropped: 0, events: [{ type: 'nonsense' }, { type: 'link.up', time: new Date().toISOString(), severity: 'notice', port: 'eth0', side: 'inside' }] });
  await until(() => events.some((e) => e.type === 'link.up'), 'the good event');
  t.match(await hub.metrics(), /reason="bad_event"\} 1/);
  // A dataplane cannot forge management's events (audit, policy); its own events.dropped is
  // replaced by the one the hub makes from the batch's count.
  dp.send({ type: 'events', dropped: 3, events: [
    { type: 'auth.login', time: new Date().toISOString(), severity: 'notice', user: 'admin', from: '198.18.0.1' },
    { type: 'events.dropped', time: new Date().toISOString(), severity: 'warning', count: 3 },
  ] });
  await until(() => events.some((e) => e.type === 'events.dropped'), 'events.dropped');
  t.match(await hub.metrics(), /reason="bad_event"\} 2/);
  t.notOk(events.some((e) => e.type === 'auth.login'), 'forged audit event not passed on');
  t.match(events.filter((e) => e.type === 'events.dropped'), [{ pair: 'good', count: 3 }]);
  t.equal(events.filter((e) => e.type === 'events.dropped').length, 1, 'reported once');
  t.match(hub.pairs().find((p) => p.pair === 'good'), { connected: true }, 'still connected after all that');
  dp.end();
});

t.test('events with an unknown severity, an unreadable time or more than 8 KiB are skipped and counted', async (t) => {
  const { hub, socketPath, events } = await startHub(t);
  const dp = await FakeDataplane.connect(socketPath, 'pair0');
  const linkUp = { type: 'link.up', time: new Date().toISOString(), severity: 'notice', port: 'eth0', side: 'inside' };
  dp.send({ type: 'events', dropped: 0, events: [
    { ...linkUp, port: 'bad-severity', severity: 'whatever' },
    { ...linkUp, port: 'bad-time', time: 'yesterday' },
    { ...linkUp, port: 'too-big', padding: 'x'.repeat(8192) },
    { ...linkUp, port: 'good' },
  ] });
  await until(() => events.some((e) => e.type === 'link.up'), 'the good event');
  t.same(events.filter((e) => e.type === 'link.up').map((e) => (e as { port: string }).port), ['good'], 'only the good event passed on');
  t.match(await hub.metrics(), /reason="bad_event"\} 3/, 'the others counted');
  dp.end();
});

t.test('stats: rates from successive snapshots, 1 s history, metrics per port and per rule', async (t) => {
  const { hub, socketPath } = await startHub(t);
  const dp = await FakeDataplane.connect(socketPath, 'p1');
  dp.send({ type: 'stats', stats: stats('p1', 10_000, 1000, { allow: 500, deny: 20 }) });
  await until(() => hub.pairs()[0].ports.inside.rxPackets === 1000, 'first snapshot');
  t.same(hub.pairs()[0].rates, { allowedPps: 0, deniedPps: 0, rxPps: 0, rxBps: 0 }, 'no rate from one snapshot');
  t.same(hub.history('p1', 60), []);

  // Two seconds of dataplane time later: inside +400 packets (+40 000 bytes), outside +800 (+80 000).
  dp.send({ type: 'stats', stats: stats('p1', 12_000, 1400, { allow: 900, deny: 60 }) });
  await until(() => hub.pairs()[0].ports.inside.rxPackets === 1400, 'second snapshot');
  const status = hub.pairs()[0];
  t.same(status.rates, { rxPps: 600, rxBps: 480_000, allowedPps: 200, deniedPps: 20 }, 'pps, bits per second, rule rates');
  t.equal(status.ports.inside.rxPps, 200);
  t.equal(status.ports.outside.rxBps, 320_000);
  t.equal(status.ports.inside.dropped, 60);
  t.same(status.ports.inside.droppedByReason, { policy: 60, decode: 0 });
  t.equal(status.ports.inside.kernelDropped, 14, 'frames the kernel dropped: apart from the policy\'s drops');
  t.match(status.flows, { active: 7, capacity: 1000, created: 20 });
  const history = hub.history('p1', 60);
  t.equal(history.length, 1);
  t.match(history[0], { rxPps: 600, allowedPps: 200, deniedPps: 20 });
  t.same(hub.history('unknown', 60), []);

  const m = parseMetrics(await hub.metrics());
  t.equal(m.get('gatekeeper_port_rx_packets_total{pair="p1",port="inside"}'), 1400);
  t.equal(m.get('gatekeeper_port_rx_packets_total{pair="p1",port="outside"}'), 2800);
  t.equal(m.get('gatekeeper_port_rx_bytes_total{pair="p1",port="inside"}'), 140_000);
  t.equal(m.get('gatekeeper_port_tx_bytes_total{pair="p1",port="outside"}'), 280_000);
  t.equal(m.get('gatekeeper_port_dropped_total{pair="p1",port="inside",reason="policy"}'), 60);
  t.equal(m.get('gatekeeper_port_kernel_dropped_total{pair="p1",port="outside"}'), 28);
  t.equal(m.get('gatekeeper_port_rx_segments_total{pair="p1",port="outside"}'), 2805);
  t.equal(m.get('gatekeeper_rule_packets_total{pair="p1",rule="web",action="allow"}'), 900);
  t.equal(m.get('gatekeeper_rule_bytes_total{pair="p1",rule="blocked",action="reject"}'), 3600);
  t.equal(m.get('gatekeeper_rule_flows_total{pair="p1",rule="web",action="allow"}'), 3);
  t.equal(m.get('gatekeeper_flows_active{pair="p1"}'), 7);
  t.equal(m.get('gatekeeper_busy_poll_backoffs_total{pair="p1"}'), 12, 'busy polling: back-offs');
  t.equal(m.get('gatekeeper_busy_poll_stalls_total{pair="p1"}'), 24, 'and stalls (the host held the CPU)');
  t.equal(m.get('gatekeeper_port_fast_path_frames_total{pair="p1",port="outside"}'), 1400, 'frames the kernel fast path forwarded');
  t.equal(m.get('gatekeeper_fast_path_flows{pair="p1"}'), 4, 'flows it forwards now');
  t.equal(m.get('gatekeeper_fast_path_table_full_total{pair="p1"}'), 2, 'and directions it had no room for');
  t.equal(m.get('gatekeeper_dataplane_connected{pair="p1"}'), 1);
  t.equal(m.get('gatekeeper_policy_generation{pair="p1"}'), 1);
  t.match(await hub.metrics(), /# TYPE gatekeeper_rule_packets_total counter/);

  dp.send({ type: 'events', events: [], dropped: 5 });
  await eventually(async () => parseMetrics(await hub.metrics()).get('gatekeeper_events_dropped_total{pair="p1"}') === 5, 'dropped events counted');
  dp.end();
  await until(() => !hub.pairs()[0].connected, 'disconnect');
  t.equal(parseMetrics(await hub.metrics()).get('gatekeeper_dataplane_connected{pair="p1"}'), 0);
});

t.test('history: one point per snapshot, at most the last 15 minutes', async (t) => {
  let now = Date.now();
  const { hub, socketPath } = await startHub(t, { clock: () => now });
  const dp = await FakeDataplane.connect(socketPath, 'p1');
  const snapshot = async (uptimeMs: number, rx: number) => {
    dp.send({ type: 'stats', stats: stats('p1', uptimeMs, rx, { allow: rx, deny: 0 }) });
    await until(() => hub.pairs()[0].ports.inside.rxPackets === rx, `snapshot ${rx}`);
  };
  await snapshot(1000, 100);
  await snapshot(2000, 200);
  now += 10 * 60 * 1000;
  await snapshot(3000, 400);
  t.same(hub.history('p1', 60).map((p) => p.rxPps), [600], 'last minute');
  t.same(hub.history('p1', 3600).map((p) => p.rxPps), [300, 600], 'asking for more than 15 minutes gives 15 minutes');
  now += 20 * 60 * 1000;
  await snapshot(4000, 500);
  t.same(hub.history('p1', 3600).map((p) => p.rxPps), [300], 'older points are gone');
  dp.end();
});

t.test('apply: no dataplane connected is a success with no pairs', async (t) => {
  const { hub } = await startHub(t);
  t.same(await hub.apply(policy('allow', 'deny'), 'policy v1'), { ok: true, pairs: [] });
});

t.test('apply: both dataplanes prepare, then both commit', async (t) => {
  const { hub, socketPath } = await startHub(t);
  const a = await FakeDataplane.connect(socketPath, 'a');
  const b = await FakeDataplane.connect(socketPath, 'b');
  const text = policy('allow', 'deny');
  const result = await hub.apply(text, 'policy v2');
  t.same(result, { ok: true, pairs: [{ pair: 'a', generation: 2 }, { pair: 'b', generation: 2 }] });
  for (const dp of [a, b]) {
    t.same(dp.types(), ['welcome', 'policy.prepare', 'policy.commit'], `${dp.pair}: prepare then commit`);
    t.match(dp.received[1], { text, source: 'policy v2' });
  }
  t.equal((a.received[1] as { requestId: number }).requestId, (b.received[1] as { requestId: number }).requestId, 'one requestId per transaction');
  t.match(hub.pairs(), [{ pair: 'a', generation: 2, policyHash: sha256(text) }, { pair: 'b', generation: 2, policyHash: sha256(text) }]);
  a.end();
  b.end();
});

t.test('apply: one refuses → both abort, nobody commits, the reason is reported', async (t) => {
  const { hub, socketPath } = await startHub(t);
  const a = await FakeDataplane.connect(socketPath, 'a');
  const b = await FakeDataplane.connect(socketPath, 'b');
  b.prepare = { kind: 'refuse', errors: ['policy v3:4:7: unknown group "servers"'] };
  const result = await hub.apply(policy('allow', 'deny'), 'policy v3');
  t.match(result, { ok: false, error: /1 of 2 dataplanes did not prepare the policy \(b\): every dataplane keeps its running policy/ });
  t.same(result.ok === false && result.details, [{ pair: 'b', error: 'refused: policy v3:4:7: unknown group "servers"' }]);
  await a.next('policy.abort', 0);
  await b.next('policy.abort', 0);
  for (const dp of [a, b]) t.notOk(dp.types().includes('policy.commit'), `${dp.pair}: no commit`);
  t.match(hub.pairs(), [{ pair: 'a', generation: 1 }, { pair: 'b', generation: 1 }]);
  a.end();
  b.end();
});

t.test('apply: a silent dataplane times out and a vanishing one fails the transaction; both abort', async (t) => {
  const { hub, socketPath } = await startHub(t, { prepareTimeoutMs: 300 });
  const a = await FakeDataplane.connect(socketPath, 'a');
  const b = await FakeDataplane.connect(socketPath, 'b');
  b.prepare = { kind: 'silent' };
  const started = Date.now();
  const timedOut = await hub.apply(policy('allow', 'deny'), 'policy v4');
  t.ok(Date.now() - started < 2000, 'bounded by the prepare timeout');
  t.same(timedOut.ok === false && timedOut.details, [{ pair: 'b', error: 'no policy.prepared answer within 300 ms' }]);
  await a.next('policy.abort', 0);
  await b.next('policy.abort', 0);

  b.prepare = { kind: 'disconnect' };
  const from = a.received.length;
  const vanished = await hub.apply(policy('allow', 'deny'), 'policy v5');
  t.same(vanished.ok === false && vanished.details, [{ pair: 'b', error: 'disconnected' }]);
  await a.next('policy.abort', from);
  t.notOk(a.types().includes('policy.commit'));
  a.end();
});

t.test('apply: commit not confirmed → the active policy is pushed back to those that committed', async (t) => {
  const { hub, socketPath } = await startHub(t, { commitTimeoutMs: 300 });
  const active = policy('allow', 'deny');
  hub.setActivePolicy(active, sha256(active));
  const a = await FakeDataplane.connect(socketPath, 'a', { policyHash: sha256(active) });
  const b = await FakeDataplane.connect(socketPath, 'b', { policyHash: sha256(active) });
  b.commit = 'silent';
  const result = await hub.apply(policy('deny', 'allow'), 'policy v6');
  t.match(result, { ok: false, error: /1 of 2 dataplanes did not confirm the commit \(b\); the active policy was restored on a/ });
  const prepares = a.received.filter((m) => m.type === 'policy.prepare');
  t.equal(prepares.length, 2, 'a got the candidate, then the active policy again');
  t.match(prepares[1], { text: active });
  t.equal(a.policyHash, sha256(active));
  a.end();
  b.end();
});

t.test('apply: transactions run one at a time', async (t) => {
  const { hub, socketPath } = await startHub(t);
  const a = await FakeDataplane.connect(socketPath, 'a');
  const [first, second] = await Promise.all([hub.apply(policy('allow', 'deny'), 'v7'), hub.apply(policy('deny', 'deny'), 'v8')]);
  t.match([first, second], [{ ok: true, pairs: [{ generation: 2 }] }, { ok: true, pairs: [{ generation: 3 }] }]);
  t.same(a.types(), ['welcome', 'policy.prepare', 'policy.commit', 'policy.prepare', 'policy.commit'], 'never interleaved');
  a.end();
});

t.test('active policy: a dataplane that connects with another hash gets it; one that runs it does not', async (t) => {
  const { hub, socketPath, events, logLines } = await startHub(t);
  const active = policy('allow', 'deny');
  hub.setActivePolicy(active, 'not the sha-256 of the text');
  t.ok(logLines.some((l) => l.level === 'warn' && /not the SHA-256/.test(l.message)), 'a wrong hash is logged and replaced');
  const stale = await FakeDataplane.connect(socketPath, 'stale', { policyHash: 'old-hash' });
  const prepare = await stale.next('policy.prepare', 0);
  t.match(prepare, { text: active, source: 'active policy' });
  await stale.next('policy.commit', 0);
  await until(() => events.some((e) => e.type === 'policy.applied'), 'policy.applied event');
  t.match(events.find((e) => e.type === 'policy.applied'), { pair: 'stale', author: 'management', policyHash: sha256(active) });
  t.match(hub.pairs(), [{ pair: 'stale', generation: 2, policyHash: sha256(active) }]);

  const current = await FakeDataplane.connect(socketPath, 'current', { policyHash: sha256(active) });
  await sleep(200);
  t.same(current.types(), ['welcome'], 'nothing pushed');

  // A refusal is reported as an event too.
  const refusing = new FakeDataplane(socketPath, 'refusing');
  refusing.prepare = { kind: 'refuse', errors: ['interface missing'] };
  refusing.send({ type: 'hello', version: IPC_VERSION, pair: 'refusing', pid: 7, inside: 'i', outside: 'o', generation: 1, policyHash: 'other', startedAt: 0 });
  await until(() => events.some((e) => e.type === 'policy.refused'), 'policy.refused event');
  t.match(events.find((e) => e.type === 'policy.refused'), { pair: 'refusing', errors: ['refused: interface missing'] });
  await refusing.next('policy.abort', 0);
  for (const dp of [stale, current, refusing]) dp.end();
});

const flow = (src: string, dstPort: number, lastSeen: number, extra: Partial<FlowRecord> = {}): FlowRecord => ({
  proto: 'tcp', src, srcPort: 40000 + dstPort, dst: '198.18.1.100', dstPort, vlan: 0, rule: 'web', verdict: 'allow', state: 'established',
  initiatorSide: 'outside', packetsOut: 1, packetsIn: 1, bytesOut: 60, bytesIn: 60, firstSeen: lastSeen - 1000, lastSeen, ...extra,
});

t.test('flows: filter passed through, answers merged most recent first, a silent pair skipped', async (t) => {
  const { hub, socketPath, logLines } = await startHub(t, { flowsTimeoutMs: 300 });
  const a = await FakeDataplane.connect(socketPath, 'a');
  const b = await FakeDataplane.connect(socketPath, 'b');
  const c = await FakeDataplane.connect(socketPath, 'c');
  a.flows = [flow('198.18.1.10', 8080, 5000), flow('198.18.1.10', 8081, 3000)];
  b.flows = [flow('198.18.1.11', 8080, 4000), flow('198.18.1.11', 8081, 1000)];
  c.answerFlows = false;
  const result = await hub.flows({ address: '198.18.1.100', port: 8080, rule: 'web', verdict: 'allow' }, 3);
  for (const dp of [a, b, c]) {
    t.match(dp.received.find((m) => m.type === 'flows.get'), { filter: { address: '198.18.1.100', port: 8080, rule: 'web', verdict: 'allow' }, limit: 3 });
  }
  t.same(result.flows.map((f) => [f.pair, f.lastSeen]), [['a', 5000], ['b', 4000], ['a', 3000]]);
  t.equal(result.matched, 4);
  t.equal(result.total, 24);
  t.ok(logLines.some((l) => /left out of the flows answer/.test(l.message) && (l.fields as { pair: string }).pair === 'c'), 'silent pair logged');

  const onlyB = await hub.flows({ pair: 'b' }, 10);
  t.same(onlyB.flows.map((f) => f.pair), ['b', 'b']);
  t.same(b.received.filter((m) => m.type === 'flows.get').map((m) => (m as { filter: object }).filter), [
    { address: '198.18.1.100', port: 8080, rule: 'web', verdict: 'allow' },
    {},
  ], 'the pair selector is not sent to the dataplane');
  t.equal(a.received.filter((m) => m.type === 'flows.get').length, 1, 'other pairs not asked');
  t.same(await hub.flows({ pair: 'nope' }, 10), { flows: [], matched: 0, total: 0 });
  for (const dp of [a, b, c]) dp.end();
});

const deny = (src: string, dstPort: number, count: number, extra: Partial<DenySummaryEvent> = {}): DenySummaryEvent => ({
  type: 'deny.summary', time: new Date().toISOString(), severity: 'warning', pair: 'spoofed', src, srcPort: 40000, srcGroups: ['client'],
  dst: '198.18.1.100', dstPort, dstGroups: ['server'], proto: 'tcp', vlan: 0, rule: 'test-port', action: 'deny', monitor: false, count, bytes: count * 60,
  firstSeen: new Date().toISOString(), lastSeen: new Date().toISOString(), ...extra,
});

t.test('topDenied: deny summaries of the last hour, summed per conversation', async (t) => {
  let now = Date.now();
  const { hub, socketPath, events } = await startHub(t, { clock: () => now });
  const dp = await FakeDataplane.connect(socketPath, 'p1');
  dp.send({ type: 'events', dropped: 0, events: [deny('198.18.1.10', 9999, 5), deny('198.18.1.11', 22, 7), deny('198.18.1.10', 9999, 5)] });
  await until(() => events.filter((e) => e.type === 'deny.summary').length === 3, 'events delivered');
  t.ok(events.filter((e) => e.type === 'deny.summary').every((e) => e.pair === 'p1'), 'pair set from the connection');
  t.match(hub.topDenied(10), [
    { pair: 'p1', src: '198.18.1.10', dstPort: 9999, count: 10, rule: 'test-port', action: 'deny', srcGroups: ['client'] },
    { pair: 'p1', src: '198.18.1.11', dstPort: 22, count: 7 },
  ]);
  t.equal(hub.topDenied(1).length, 1);
  now += 61 * 60 * 1000;
  t.same(hub.topDenied(10), [], 'older than an hour: gone');
  dp.end();
});

t.test('dry-run: observed flows whose verdict changes under a candidate', async (t) => {
  let now = Date.now();
  const { hub, socketPath, events } = await startHub(t, { clock: () => now, flowPollMs: 100 });
  const dp = await FakeDataplane.connect(socketPath, 'p1');
  const allowed: FlowStartEvent = {
    type: 'flow.start', time: new Date().toISOString(), severity: 'info', src: '198.18.1.10', srcPort: 40001, srcGroups: ['client'],
    dst: '198.18.1.100', dstPort: 8080, dstGroups: ['server'], proto: 'tcp', vlan: 0, rule: 'web', action: 'allow', monitor: false,
  };
  dp.send({
    type: 'events', dropped: 0,
    events: [allowed, deny('198.18.1.10', 9999, 3), deny('2001:2:0:1::10', 9999, 1, { dst: '2001:2:0:1::100' }), deny('198.18.1.10', 9999, 1, { proto: 'udp', rule: 'default' })],
  });
  // Polled flow tables feed the dry-run too: an ICMP echo flow (ports are the echo id).
  dp.flows = [flow('198.18.1.12', 0, Date.now(), { proto: 'icmp', srcPort: 77, dstPort: 77, rule: 'ping' })];
  await until(() => events.length >= 5, 'events delivered');
  await dp.next('flows.get');
  await sleep(50);

  const active = policy('allow', 'deny');
  const same = await hub.dryRun(active, active);
  t.equal(same.observed, 5);
  t.same(same.changes, [], 'the running policy changes nothing');

  const result = await hub.dryRun(active, policy('deny', 'allow'));
  const key = (c: { src: string; proto: string; dstPort: number }) => `${c.proto} ${c.src} ${c.dstPort}`;
  t.same(result.changes.map(key).sort(), ['tcp 198.18.1.10 8080', 'tcp 198.18.1.10 9999', 'tcp 2001:2:0:1::10 9999']);
  t.match(result.changes.find((c) => c.dstPort === 8080), { pair: 'p1', srcPort: 40001, before: { rule: 'web', action: 'allow' }, after: { rule: 'web', action: 'deny' } });
  t.match(result.changes.find((c) => c.dstPort === 9999 && c.src === '198.18.1.10'), { before: { rule: 'test-port', action: 'deny' }, after: { rule: 'test-port', action: 'allow' } });

  const noPing = policy('allow', 'deny').replace('service: ping\n    action: allow', 'service: ping\n    action: reject');
  t.match((await hub.dryRun(active, noPing)).changes, [{ proto: 'icmp', src: '198.18.1.12', dstPort: 8, before: { rule: 'ping', action: 'allow' }, after: { action: 'reject' } }]);

  // Still allowed, but no longer every request: a modbus block on the web rule is a change too.
  const readOnly = active.replace('service: tcp/8080\n    action: allow', 'service: tcp/8080\n    action: allow\n    modbus:\n      functions: [read]\n      units: [1]');
  t.match((await hub.dryRun(active, readOnly)).changes, [{ dstPort: 8080, before: { rule: 'web', action: 'allow', inspection: undefined },
    after: { rule: 'web', action: 'allow', inspection: /^modbus: functions .*; units 1; .*on-violation reset$/ } }], 'an added block');
  t.same((await hub.dryRun(readOnly, readOnly)).changes, [], 'the same block: no change');

  await t.rejects(hub.dryRun(active, 'version: 1\nrules: [oops'), /candidate policy does not compile: candidate policy:\d+:\d+: /);
  now += 2 * 60 * 60 * 1000;
  dp.flows = [];
  t.equal((await hub.dryRun(active, active)).observed, 0, 'older than an hour: forgotten');
  dp.end();
});
