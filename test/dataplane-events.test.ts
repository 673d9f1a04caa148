// Events from the packet path: deny summaries (a flood becomes a handful of records), flow.start /
// flow.end for logged rules with group names, monitor mode, policy swaps. First on crafted frames
// through the real engine, then end to end in a namespace lab with a test management peer.

import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Engine } from '../appliance/dataplane/engine';
import { Side, Verdict } from '../appliance/dataplane/verdict';
import { pairTotals } from '../appliance/dataplane/counters';
import { DenySummary } from '../appliance/dataplane/events/deny-summary';
import { TrafficEvents } from '../appliance/dataplane/events/traffic-events';
import { RunningPolicy } from '../appliance/dataplane/running-policy';
import type { DenySummaryEvent, FlowEndEvent, FlowStartEvent, GatekeeperEvent } from '../appliance/ipc/events';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import { Lab, labAddresses as A, sleep } from '../appliance/lab/lab';
import { loadPolicyText } from '../appliance/policy/load';
import { CLIENT_MAC, frame, SERVER_MAC, type FrameSpec } from './lib/frames';
import { labUnavailable } from './lib/lab-fixture';

const C = '198.18.1.10';
const S = '198.18.1.100';
const C6 = '2001:2:0:1::10';
const S6 = '2001:2:0:1::100';
const INTERVAL = 10_000;

const policyText = (mode = 'enforce', extra = '') => `version: 1
mode: ${mode}
default: deny
groups:
  client: [${C}, "${C6}"]
  server: [${S}, "${S6}"]
  plant: [198.18.1.64/26]
rules:
  - name: web
    from: client
    to: server
    service: [tcp/8080, ping]
    action: allow
    log: true
  - name: dns
    from: client
    to: server
    service: udp/53
    action: allow
  - name: refused
    from: client
    to: server
    service: tcp/8081
    action: reject
flows:
  tcp-closing-idle: 50ms
${extra}`;

function harness(t: Test, mode = 'enforce') {
  const dir = mkdtempSync(join(tmpdir(), 'gk-events-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const text = policyText(mode);
  const first = loadPolicyText(text, 'test.yaml');
  if (!first.ok) throw new Error(first.errors.map((e) => e.message).join('\n'));
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, text);
  const logLines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  const engine = new Engine(first.policy, 1);
  const version = { policy: first.policy, groups: first.model.groups, generation: 1 };
  const events = new TrafficEvents({ pair: 'p', first: version, totals: () => ({ ...pairTotals(engine.counters), flowsActive: engine.flows.size }),
    links: [], log }, 0);
  const running = new RunningPolicy(engine, policyPath, version, (next) => events.policyChanging(next, 0));
  engine.observer = events;
  return { engine, running, events, policyPath, logLines };
}

const out = (s: Partial<FrameSpec>): Buffer => frame({ src: C, dst: S, proto: 'tcp', ...s } as FrameSpec);
const back = (s: Partial<FrameSpec>): Buffer =>
  frame({ src: S, dst: C, proto: 'tcp', srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);
const run = (e: Engine, f: Buffer, side: Side, now = 1000) => e.process(f, f.length, side, now).verdict;
const ofType = <T extends GatekeeperEvent>(events: GatekeeperEvent[], type: T['type']) => events.filter((e) => e.type === type) as T[];

t.test('100 000 denied SYNs from changing source ports become one deny.summary', async (t) => {
  const h = harness(t);
  const syn = out({ dport: 9999, flags: 'S' });
  const packets = 100_000;
  // Packets 1000..5999 ms after the event log started: all inside the first interval.
  const at = (i: number) => 1000 + Math.floor(i / 20);
  for (let i = 0; i < packets; i++) {
    syn.writeUInt16BE(20_000 + (i % 40_000), 34); // TCP source port
    if (h.engine.process(syn, syn.length, Side.Outside, at(i)).verdict !== Verdict.Drop) throw new Error('not dropped');
  }

  t.equal(ofType(h.events.collect(at(packets)).events, 'deny.summary').length, 0, 'nothing before the interval ends');
  const summaries = ofType<DenySummaryEvent>(h.events.collect(INTERVAL).events, 'deny.summary');
  t.equal(summaries.length, 1, 'one record for the whole flood');
  t.match(summaries[0], {
    type: 'deny.summary', pair: 'p', severity: 'warning', src: C, srcPort: 0, srcGroups: ['client'], dst: S, dstPort: 9999,
    dstGroups: ['server', 'plant'], proto: 'tcp', vlan: 0, rule: 'default', action: 'deny', monitor: false, count: packets,
    bytes: packets * syn.length, firstSeen: new Date(1000).toISOString(), lastSeen: new Date(at(packets - 1)).toISOString(),
  });
  t.equal(ofType(h.events.collect(2 * INTERVAL).events, 'deny.summary').length, 0, 'the next interval starts empty');
});

t.test('one record per key: rejects, other destinations, IPv6, a single source port kept', async (t) => {
  const h = harness(t);
  for (let i = 0; i < 5; i++) run(h.engine, out({ dport: 8081, flags: 'S', sport: 41000 }), Side.Outside);
  run(h.engine, out({ dport: 22, flags: 'S' }), Side.Outside);
  run(h.engine, frame({ src: C6, dst: S6, proto: 'udp', dport: 9000 }), Side.Outside);
  run(h.engine, back({ sport: 8080, dport: 40000, flags: 'S' }), Side.Inside);
  const summaries = ofType<DenySummaryEvent>(h.events.collect(INTERVAL).events, 'deny.summary');
  t.equal(summaries.length, 4);
  t.match(summaries.find((e) => e.dstPort === 8081), { rule: 'refused', action: 'reject', count: 5, srcPort: 41000 });
  t.match(summaries.find((e) => e.dstPort === 22), { rule: 'default', action: 'deny', count: 1 });
  t.match(summaries.find((e) => e.proto === 'udp'), { src: C6, dst: S6, srcGroups: ['client'], dstGroups: ['server'], dstPort: 9000 });
  t.match(summaries.find((e) => e.src === S), { dst: C, srcGroups: ['server', 'plant'], dstGroups: ['client'], dstPort: 40000 });
});

t.test('the key table is bounded: overflow is counted and logged', async (t) => {
  const table = new DenySummary(4);
  const none = new Uint32Array(4);
  for (let port = 1; port <= 10; port++) table.record(4, 1, 2, none, none, 6, 1000, port, 0, 0, 60, port);
  table.record(4, 1, 2, none, none, 6, 1000, 1, 0, 0, 60, 11);
  t.equal(table.size, 4);
  t.equal(table.overflow, 6, 'six keys did not fit');
  t.same(table.drain().map((e) => [e.dstPort, e.count]), [[1, 2], [2, 1], [3, 1], [4, 1]], 'known keys still counted');
  t.equal(table.size, 0, 'drained');

  const h = harness(t);
  for (let port = 1; port <= 5000; port++) run(h.engine, out({ dport: port, flags: 'S' }), Side.Outside);
  const summaries = ofType(h.events.collect(INTERVAL).events, 'deny.summary');
  t.equal(summaries.length, 4096, 'at most 4096 records per interval');
  t.equal(h.events.counters.denyOverflow, 5000 - 4096, 'the packets of the other keys counted as overflow');
  t.ok(h.logLines.some((l) => l.includes('denied traffic had more distinct')), 'and logged');
});

t.test('flow.start and flow.end for logged rules, with group names', async (t) => {
  const h = harness(t);
  const e = h.engine;
  const sent = [
    out({ dport: 8080, flags: 'S' }), out({ dport: 8080, flags: 'A' }), out({ dport: 8080, flags: 'PA', payload: [1, 2, 3, 4] }),
    out({ dport: 8080, flags: 'FA' }),
  ];
  const answered = [back({ sport: 8080, dport: 40000, flags: 'SA' }), back({ sport: 8080, dport: 40000, flags: 'FA' })];
  run(e, sent[0], Side.Outside, 1000);
  run(e, answered[0], Side.Inside, 1001);
  run(e, sent[1], Side.Outside, 1002);
  run(e, sent[2], Side.Outside, 1003);
  run(e, answered[1], Side.Inside, 1004);
  run(e, sent[3], Side.Outside, 1250);
  // Not logged: rule dns.
  run(e, frame({ src: C, dst: S, proto: 'udp', dport: 53 }), Side.Outside, 1300);
  const started = h.events.collect(1300).events;
  const starts = ofType<FlowStartEvent>(started, 'flow.start');
  t.equal(starts.length, 1, 'one flow.start: only the logged rule');
  t.match(starts[0], { src: C, srcPort: 40000, srcGroups: ['client'], dst: S, dstPort: 8080, dstGroups: ['server', 'plant'],
    proto: 'tcp', rule: 'web', action: 'allow', monitor: false, time: new Date(1000).toISOString() });
  await sleep(80);
  e.flows.purgeIdle();
  const ended = ofType<FlowEndEvent>(h.events.collect(1400).events, 'flow.end');
  t.equal(ended.length, 1);
  t.match(ended[0], { src: C, dst: S, dstGroups: ['server', 'plant'], rule: 'web', reason: 'closed', durationMs: 250,
    packetsOut: 4, packetsIn: 2 });
  t.equal(ended[0].bytesOut, sent.reduce((n, f) => n + f.length, 0), 'bytes from the initiator');
  t.equal(ended[0].bytesIn, answered.reduce((n, f) => n + f.length, 0), 'bytes from the responder');

  // ICMP echo (logged) cut by a reload that no longer allows it.
  run(e, frame({ src: C, dst: S, proto: 'icmp', icmpType: 8, icmpId: 9 }), Side.Outside, 2000);
  h.events.collect(2000);
  writeFileSync(h.policyPath, policyText().replace('service: [tcp/8080, ping]', 'service: [tcp/8080]'));
  t.ok((await h.running.reload()).ok);
  t.equal(run(e, frame({ src: C, dst: S, proto: 'icmp', icmpType: 8, icmpId: 9 }), Side.Outside, 2100), Verdict.Drop);
  t.match(ofType<FlowEndEvent>(h.events.collect(2200).events, 'flow.end'), [{ proto: 'icmp', dstPort: 8, reason: 'cut', rule: 'web' }]);
});

t.test('monitor mode: every packet of a would-be-denied flow is summarized, marked monitor', async (t) => {
  const h = harness(t, 'monitor');
  const e = h.engine;
  t.equal(run(e, out({ dport: 22, flags: 'S' }), Side.Outside), Verdict.Forward);
  t.equal(run(e, back({ sport: 22, dport: 40000, flags: 'SA' }), Side.Inside), Verdict.Forward);
  t.equal(run(e, out({ dport: 22, flags: 'A' }), Side.Outside), Verdict.Forward);
  const summaries = ofType<DenySummaryEvent>(h.events.collect(INTERVAL).events, 'deny.summary');
  t.match(summaries, [{ src: C, dst: S, dstPort: 22, srcPort: 40000, count: 3, monitor: true, severity: 'notice', rule: 'default' }]);
});

t.test('a policy swap reports the old policy\'s summaries under its own rule names', async (t) => {
  const h = harness(t);
  run(h.engine, out({ dport: 8081, flags: 'S' }), Side.Outside);
  writeFileSync(h.policyPath, policyText().replace('name: refused', 'name: renamed'));
  t.ok((await h.running.reload()).ok);
  run(h.engine, out({ dport: 8081, flags: 'S' }), Side.Outside);
  const summaries = ofType<DenySummaryEvent>(h.events.collect(INTERVAL).events, 'deny.summary');
  t.same(summaries.map((s) => [s.rule, s.count]).sort(), [['refused', 1], ['renamed', 1]]);
});

t.test('counters.snapshot every interval; lifecycle events', async (t) => {
  const h = harness(t);
  run(h.engine, out({ dport: 22, flags: 'S' }), Side.Outside);
  run(h.engine, out({ dport: 8080, flags: 'S' }), Side.Outside);
  h.events.lifecycle('dataplane.start');
  const events = h.events.collect(60_000).events;
  t.match(ofType(events, 'counters.snapshot'), [{ generation: 1, rxPackets: 2, dropped: 1, flowsActive: 1, pair: 'p' }]);
  t.match(ofType(events, 'dataplane.start'), [{ pid: process.pid, pair: 'p' }]);
  t.equal(ofType(h.events.collect(61_000).events, 'counters.snapshot').length, 0, 'not again before the next interval');
});

// ---------------------------------------------------------------------------------------------------
// End to end: real hosts, the real dataplane process, a test management peer on a Unix socket.

type Message = Record<string, unknown> & { type: string };

class Peer {
  readonly messages: Message[] = [];
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(readonly path: string) {}

  async listen(): Promise<void> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      const reader = new LineReader<Message>((m) => {
        this.messages.push(m);
        if (m.type === 'hello') socket.write(encodeMessage({ type: 'welcome', version: 1 }));
      }, () => socket.destroy());
      socket.on('data', (chunk) => reader.push(chunk));
    });
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    this.server = server;
  }

  send(message: object): void {
    for (const s of this.sockets) s.write(encodeMessage(message));
  }

  events(): GatekeeperEvent[] {
    return this.messages.filter((m) => m.type === 'events').flatMap((m) => m.events as GatekeeperEvent[]);
  }

  async waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 8000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** 2000 TCP SYNs from random source ports to server:9999, sent from a raw socket as fast as Python goes. */
const synFlood = `
import random, socket, struct
src, dst = '${A.client4}', '${A.server4}'
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i in range(2000):
    tcp = struct.pack('!HHIIBBHHH', random.randint(20000, 60000), 9999, i, 0, 5 << 4, 2, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', csum(pseudo + tcp)) + tcp[18:]
    s.sendto(tcp, (dst, 0))
`;

t.test('lab: events end to end with management down, up, restarting', { skip: labUnavailable() }, async (t) => {
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'gk-events-lab-'));
  const peers: Peer[] = [];
  t.teardown(async () => {
    lab.destroy();
    for (const p of peers) await p.close();
    rmSync(dir, { recursive: true, force: true });
  });
  lab.create();
  const socketPath = join(dir, 'mgmt.sock');
  const policyPath = join(dir, 'policy.yaml');
  const labPolicy = `version: 1
default: deny
groups:
  client: [${A.client4}]
  server: [${A.server4}]
  plant: [198.18.1.64/26]
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
    action: allow
    log: true
flows:
  tcp-closing-idle: 1s
`;
  writeFileSync(policyPath, labPolicy);
  const dataplane = await lab.startDataplane(policyPath, 15_000, socketPath);
  const inClient = (argv: string[]) => lab.exec(lab.client, argv, 20_000);

  // Management is not there: allowed traffic flows anyway, and events wait in the queue.
  const ping = inClient(['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]);
  t.equal(ping.status, 0, `ping passes with management down ${ping.stderr}`);
  const server = lab.spawn(lab.server, ['sh', '-c', 'printf from-server | nc -N -l 8080']);
  await sleep(300);
  const nc = inClient(['sh', '-c', `printf from-client | nc -N -w 3 ${A.server4} 8080`]);
  t.equal(nc.stdout, 'from-server', 'logged TCP connection carries data with management down');
  server.kill();

  const peer = new Peer(socketPath);
  peers.push(peer);
  await peer.listen();
  const hello = await peer.waitFor(() => peer.messages.find((m) => m.type === 'hello'), 'hello');
  t.match(hello, { version: 1, pair: `lab-${lab.id}`, inside: lab.insidePort, outside: lab.outsidePort, generation: 1 });
  await peer.waitFor(() => peer.messages.some((m) => m.type === 'stats'), 'stats');
  const start = await peer.waitFor(() => ofType<FlowStartEvent>(peer.events(), 'flow.start')[0], 'flow.start');
  t.match(start, { src: A.client4, dst: A.server4, dstPort: 8080, srcGroups: ['client'], dstGroups: ['server', 'plant'], rule: 'web', proto: 'tcp' });
  t.ok(peer.events().some((e) => e.type === 'dataplane.start'), 'dataplane.start queued while management was down');
  const end = await peer.waitFor(() => ofType<FlowEndEvent>(peer.events(), 'flow.end')[0], 'flow.end', 8000);
  t.match(end, { src: A.client4, dst: A.server4, dstGroups: ['server', 'plant'], rule: 'web', reason: 'closed' });
  t.ok(end.packetsOut >= 4 && end.packetsIn >= 3 && end.bytesOut > 0 && end.bytesIn > 0, `counted both ways: ${JSON.stringify(end)}`);

  // A denied flood: a handful of summaries, the right count.
  const flood = inClient(['python3', '-c', synFlood]);
  t.equal(flood.status, 0, flood.stderr);
  const summaries = await peer.waitFor(() => {
    const list = ofType<DenySummaryEvent>(peer.events(), 'deny.summary').filter((e) => e.dstPort === 9999);
    return list.reduce((n, e) => n + e.count, 0) >= 2000 ? list : undefined;
  }, 'deny summaries of the flood', 15_000);
  t.ok(summaries.length <= 2, `${summaries.length} deny.summary events for 2000 denied SYNs`);
  t.match(summaries[0], { src: A.client4, dst: A.server4, proto: 'tcp', rule: 'default', action: 'deny', srcPort: 0,
    srcGroups: ['client'], dstGroups: ['server', 'plant'] });
  t.equal(summaries.reduce((n, e) => n + e.count, 0), 2000, 'every denied SYN counted once');

  // Link state of the ports.
  inClient(['ip', 'link', 'set', 'eth0', 'down']);
  await peer.waitFor(() => peer.events().find((e) => e.type === 'link.down'), 'link.down');
  t.match(peer.events().find((e) => e.type === 'link.down'), { port: lab.outsidePort, side: 'outside' });
  inClient(['ip', 'link', 'set', 'eth0', 'up']);
  await peer.waitFor(() => peer.events().find((e) => e.type === 'link.up'), 'link.up');

  // Management restarts: forwarding goes on, the dataplane comes back on its own.
  await peer.close();
  await sleep(300);
  const during = inClient(['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]);
  t.equal(during.status, 0, 'ping passes while management is away');
  const again = new Peer(socketPath);
  peers.push(again);
  await again.listen();
  await again.waitFor(() => again.messages.find((m) => m.type === 'hello'), 'hello after restart', 5000);
  await again.waitFor(() => again.messages.some((m) => m.type === 'stats'), 'stats after restart');

  // A policy transaction: the committed policy (no more ping) runs at once and survives a restart.
  const noPing = labPolicy.replace(/  - name: ping\n(    .*\n){4}/, '');
  t.not(noPing, labPolicy);
  again.send({ type: 'policy.prepare', requestId: 1, text: noPing, source: 'policy v2' });
  t.match(await again.waitFor(() => again.messages.find((m) => m.requestId === 1), 'prepared'), { type: 'policy.prepared', ok: true });
  again.send({ type: 'policy.commit', requestId: 2 });
  t.match(await again.waitFor(() => again.messages.find((m) => m.requestId === 2), 'committed'), { type: 'policy.committed', generation: 2 });
  t.not(inClient(['ping', '-c', '1', '-W', '1', A.server4]).status, 0, 'ping refused by the committed policy');
  t.equal(readFileSync(policyPath, 'utf8'), noPing, 'committed policy persisted');

  // Stopping sends dataplane.stop before the process exits.
  dataplane.kill('SIGTERM');
  await again.waitFor(() => again.events().find((e) => e.type === 'dataplane.stop'), 'dataplane.stop');
  await again.waitFor(() => dataplane.exitCode !== null, 'exit');
  t.equal(dataplane.exitCode, 0, 'clean exit');

  // Restarted while management is down: it runs the last committed policy.
  await again.close();
  await lab.startDataplane(policyPath, 15_000, socketPath);
  t.not(inClient(['ping', '-c', '1', '-W', '1', A.server4]).status, 0, 'still no ping after the restart');
  const server2 = lab.spawn(lab.server, ['sh', '-c', 'printf again | nc -N -l 8080']);
  await sleep(300);
  t.equal(inClient(['sh', '-c', `printf x | nc -N -w 3 ${A.server4} 8080`]).stdout, 'again', 'the web rule still allows');
  server2.kill();
});
