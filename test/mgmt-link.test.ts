// The dataplane's management link against a real Unix socket server that speaks the IPC protocol:
// hello/welcome, stats, event batches, the policy transaction (with the policy file on disk), flows,
// protocol errors, reconnection and the bounded event queue.

import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Engine } from '../appliance/dataplane/engine';
import { Side, Verdict } from '../appliance/dataplane/verdict';
import { pairTotals } from '../appliance/dataplane/counters';
import { TrafficEvents } from '../appliance/dataplane/events/traffic-events';
import { managementRequests, MgmtLink, type MgmtLinkOptions } from '../appliance/dataplane/mgmt-link';
import { RunningPolicy } from '../appliance/dataplane/running-policy';
import type { GatekeeperEvent } from '../appliance/ipc/events';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import { loadPolicyText } from '../appliance/policy/load';
import { frame, type FrameSpec } from './lib/frames';

const C = '198.18.1.10';
const S = '198.18.1.100';

const policyText = (extraRule = '') => `version: 1
default: deny
groups:
  client: [${C}, "2001:2:0:1::10"]
  server: [${S}]
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
${extraRule}`;

type Message = Record<string, unknown> & { type: string };

/** The management side: a Unix socket server that records what it receives and answers hello. */
class Peer {
  readonly messages: Message[] = [];
  /** Arrival time of each message (same index). */
  readonly arrivedAt: number[] = [];
  hellos = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(readonly path: string, private readonly welcomeVersion = 1) {}

  async listen(): Promise<void> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      const reader = new LineReader<Message>((m) => {
        this.messages.push(m);
        this.arrivedAt.push(Date.now());
        if (m.type === 'hello') {
          this.hellos++;
          socket.write(encodeMessage({ type: 'welcome', version: this.welcomeVersion }));
        }
      }, () => socket.destroy());
      socket.on('data', (chunk) => reader.push(chunk));
    });
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    this.server = server;
  }

  send(message: object | string): void {
    const line = typeof message === 'string' ? message : encodeMessage(message);
    for (const s of this.sockets) s.write(line);
  }

  of(type: string): Message[] {
    return this.messages.filter((m) => m.type === type);
  }

  async waitFor(type: string, test: (m: Message) => boolean = () => true, timeoutMs = 5000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => m.type === type && test(m));
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no ${type} message within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /**
   * Send a request and wait for the reply carrying its requestId. A prepare compiles on a worker
   * thread: in the full suite, beside a lab flooding both cores, it once took more than 5 s.
   */
  async request(message: Message & { requestId: number }): Promise<Message> {
    this.send(message);
    return waitUntil(() => this.messages.find((m) => m.requestId === message.requestId), 20_000);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

interface Setup {
  dir: string;
  socketPath: string;
  policyPath: string;
  engine: Engine;
  running: RunningPolicy;
  events: TrafficEvents;
  link: MgmtLink;
  peer: Peer;
  logLines: string[];
}

/** A dataplane without ports: the real engine, policy state, event log and link; the peer listening unless told not to. */
async function setup(t: Test, opts: { listen?: boolean; welcomeVersion?: number; link?: Partial<MgmtLinkOptions> } = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'gk-mgmt-link-'));
  const socketPath = join(dir, 'mgmt.sock');
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, policyText());
  const first = loadPolicyText(policyText(), policyPath);
  if (!first.ok) throw new Error('test policy refused');
  const logLines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  const engine = new Engine(first.policy, 1);
  const version = { policy: first.policy, groups: first.model.groups, generation: 1 };
  const events = new TrafficEvents({ pair: 'test-pair', first: version,
    totals: () => ({ ...pairTotals(engine.counters), flowsActive: engine.flows.size }), links: [], log });
  const running = new RunningPolicy(engine, policyPath, version, (next) => events.policyChanging(next));
  engine.observer = events;
  const peer = new Peer(socketPath, opts.welcomeVersion);
  if (opts.listen !== false) await peer.listen();
  const link = new MgmtLink({
    socketPath,
    hello: () => ({ pair: 'test-pair', pid: process.pid, inside: 'in0', outside: 'out0', generation: engine.generation,
      policyHash: running.current.policy.sourceHash, startedAt: 1 }),
    stats: () => ({ pair: 'test-pair', generation: engine.generation } as never),
    collect: (final) => events.collect(Date.now(), final),
    requests: managementRequests(engine, running, log, () => {}),
    log,
    maxBackoffMs: 200,
    ...opts.link,
  });
  link.start();
  t.teardown(async () => {
    await link.stop(200);
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, socketPath, policyPath, engine, running, events, link, peer, logLines };
}

t.test('hello, welcome, stats every second, events in batches', async (t) => {
  const s = await setup(t);
  const hello = await s.peer.waitFor('hello');
  t.match(hello, { version: 1, pair: 'test-pair', generation: 1, policyHash: s.running.current.policy.sourceHash, inside: 'in0' });
  await waitUntil(() => s.link.connected);
  await waitUntil(() => s.peer.of('stats').length >= 4, 5000);
  const times = s.peer.messages.map((m, i) => (m.type === 'stats' ? s.peer.arrivedAt[i] : -1)).filter((x) => x >= 0);
  const gaps = times.slice(2).map((at, i) => at - times[i + 1]);
  t.ok(gaps.every((g) => g >= 800 && g <= 1300), `stats every second after the one sent at welcome: gaps ${gaps.join(', ')} ms`);
  t.match(s.peer.of('stats')[0], { stats: { pair: 'test-pair', generation: 1 } });

  s.events.lifecycle('dataplane.start');
  const batch = await s.peer.waitFor('events');
  t.match(batch, { dropped: 0, events: [{ type: 'dataplane.start', pair: 'test-pair', pid: process.pid }] });

  // 1200 events at once go out as batches of at most 500, right away (not one tick per batch).
  const before = s.peer.of('events').length;
  const many: GatekeeperEvent[] = Array.from({ length: 1200 }, (_, i) =>
    ({ type: 'dataplane.start', time: new Date().toISOString(), severity: 'notice', detail: String(i) }));
  s.link.enqueue(many);
  await waitUntil(() => s.peer.of('events').slice(before).reduce((n, m) => n + (m.events as unknown[]).length, 0) >= 1200);
  const sizes = s.peer.of('events').slice(before).map((m) => (m.events as unknown[]).length);
  t.ok(sizes.every((n) => n <= 500), `batches of at most 500: ${sizes.join(', ')}`);
  const details = s.peer.of('events').slice(before).flatMap((m) => (m.events as { detail: string }[]).map((e) => e.detail));
  t.same(details, many.map((e) => (e as { detail: string }).detail), 'in order, none lost');
});

t.test('a management speaking another IPC version is refused and retried later', async (t) => {
  const s = await setup(t, { welcomeVersion: 99 });
  // The second refusal is counted when the link reads the peer's answer, just after the peer saw hello.
  await waitUntil(() => s.peer.hellos >= 2 && s.link.counters.protocolErrors >= 2, 3000);
  t.notOk(s.link.connected, 'never connected');
  t.ok(s.link.counters.protocolErrors >= 2, 'each attempt counted as a protocol error');
  t.equal(s.peer.of('stats').length, 0, 'no stats sent to a peer that did not welcome us');
  t.ok(s.logLines.some((l) => l.includes('IPC version 99')), 'logged with the version');
});

t.test('policy transaction: prepare aside, commit swaps and persists, refusal and abort change nothing', async (t) => {
  const s = await setup(t);
  await waitUntil(() => s.link.connected);
  const original = readFileSync(s.policyPath, 'utf8');
  const next = policyText(`  - name: ssh
    from: client
    to: server
    service: ssh
    action: allow
`);

  const prepared = await s.peer.request({ type: 'policy.prepare', requestId: 1, text: next, source: 'policy v2' });
  t.match(prepared, { type: 'policy.prepared', requestId: 1, ok: true, errors: [] });
  t.equal(s.engine.generation, 1, 'prepare does not change what runs');
  t.equal(readFileSync(s.policyPath, 'utf8'), original, 'nor the file');

  const committed = await s.peer.request({ type: 'policy.commit', requestId: 2 });
  const hash = createHash('sha256').update(next).digest('hex');
  t.match(committed, { type: 'policy.committed', requestId: 2, generation: 2 });
  t.equal(committed.policyHash, s.engine.policy.sourceHash, 'reports the hash it runs');
  t.equal(s.engine.policy.sourceHash, hash, 'the hash is the SHA-256 of the committed text');
  t.equal(s.engine.generation, 2, 'generation + 1');
  t.equal(readFileSync(s.policyPath, 'utf8'), next, 'committed text persisted to the policy file');
  t.equal((await s.running.reload()).ok, true, 'a SIGHUP reload reads the same text back');
  t.equal(s.engine.generation, 3);

  const bad = await s.peer.request({ type: 'policy.prepare', requestId: 3, text: 'version: 1\nrules:\n  - name: x\n    from: nowhere\n', source: 'policy v3' });
  t.match(bad, { type: 'policy.prepared', requestId: 3, ok: false });
  const errors = bad.errors as string[];
  t.ok(errors.length > 0 && errors.every((e) => /^policy v3:\d+:\d+: /.test(e)), `file:line:col errors: ${errors.join(' | ')}`);
  const noPrepared = await s.peer.request({ type: 'policy.commit', requestId: 4 });
  t.match(noPrepared, { type: 'error', requestId: 4, message: /no prepared policy/ }, 'commit after a refused prepare is an error');
  t.equal(s.engine.generation, 3, 'refusal changed nothing');
  t.equal(readFileSync(s.policyPath, 'utf8'), next, 'file untouched');

  await s.peer.request({ type: 'policy.prepare', requestId: 5, text: policyText(), source: 'policy v4' });
  s.peer.send({ type: 'policy.abort', requestId: 6 });
  const afterAbort = await s.peer.request({ type: 'policy.commit', requestId: 7 });
  t.match(afterAbort, { type: 'error', requestId: 7 }, 'nothing left to commit after abort');
  t.equal(s.engine.generation, 3, 'abort changed nothing');
  t.equal(readFileSync(s.policyPath, 'utf8'), next);
  t.ok(s.link.connected, 'still connected after all that');
});

t.test('flows.get: filter, most recent first, limit', async (t) => {
  const s = await setup(t);
  await waitUntil(() => s.link.connected);
  const send = (spec: Partial<FrameSpec>, now: number) => {
    const f = frame({ src: C, dst: S, proto: 'tcp', ...spec } as FrameSpec);
    return s.engine.process(f, f.length, Side.Outside, now).verdict;
  };
  t.equal(send({ dport: 8080, sport: 40001, flags: 'S' }, 1_000), Verdict.Forward);
  t.equal(send({ dport: 8080, sport: 40002, flags: 'S' }, 2_000), Verdict.Forward);
  t.equal(send({ proto: 'udp', dport: 53, sport: 40003 }, 3_000), Verdict.Forward);
  t.equal(send({ proto: 'icmp', icmpType: 8, icmpId: 7 }, 4_000), Verdict.Forward);
  t.equal(send({ dport: 22, sport: 40004, flags: 'S' }, 5_000), Verdict.Drop, 'denied: no flow');

  const web = await s.peer.request({ type: 'flows.get', requestId: 1, filter: { port: 8080 }, limit: 10 });
  t.match(web, { type: 'flows', matched: 2, total: 4 });
  t.match(web.flows, [
    { proto: 'tcp', src: C, srcPort: 40002, dst: S, dstPort: 8080, rule: 'web', verdict: 'allow', state: 'opening',
      initiatorSide: 'outside', packetsOut: 1, packetsIn: 0, firstSeen: 2000, lastSeen: 2000 },
    { srcPort: 40001, lastSeen: 1000 },
  ], 'most recent first');

  const limited = await s.peer.request({ type: 'flows.get', requestId: 2, filter: { address: S }, limit: 1 });
  t.match(limited, { matched: 4, total: 4 });
  t.match(limited.flows, [{ proto: 'icmp', dstPort: 8, rule: 'web' }], 'limit 1: the newest');

  const dns = await s.peer.request({ type: 'flows.get', requestId: 3, filter: { rule: 'dns', verdict: 'allow' }, limit: 10 });
  t.match(dns, { matched: 1, flows: [{ proto: 'udp', dstPort: 53, state: 'none' }] });

  const none = await s.peer.request({ type: 'flows.get', requestId: 4, filter: { address: '2001:2:0:1::10' }, limit: 10 });
  t.match(none, { matched: 0, flows: [] });

  const bad = await s.peer.request({ type: 'flows.get', requestId: 5, filter: { address: 'plc-1' }, limit: 10 });
  t.match(bad, { type: 'error', requestId: 5, message: /not an IPv4 or IPv6 address/ });
  t.ok(s.link.connected, 'a bad filter value is an error reply, not a protocol error');
});

t.test('garbage from management: logged, connection dropped and re-established, no crash', async (t) => {
  const s = await setup(t);
  await waitUntil(() => s.link.connected);
  const garbage = ['this is not json\n', '{"type":"bogus"}\n', '{"type":"policy.prepare","requestId":"x"}\n', '[1,2]\n',
    '{"type":"flows.get","requestId":1,"filter":{"port":70000},"limit":5}\n', '{"type":"welcome","version":1}\n'];
  for (const [i, line] of garbage.entries()) {
    s.peer.send(line);
    await waitUntil(() => s.peer.hellos >= i + 2, 3000);
    await waitUntil(() => s.link.connected);
  }
  t.equal(s.link.counters.protocolErrors, garbage.length, 'each one counted');
  t.equal(s.link.counters.connections, garbage.length + 1, 'and reconnected after each');
  t.ok(s.logLines.filter((l) => l.includes('management protocol error')).length >= garbage.length, 'logged');
  const r = await s.peer.request({ type: 'flows.get', requestId: 99, filter: {}, limit: 1 });
  t.equal(r.type, 'flows', 'still answers afterwards');
});

t.test('reconnects after management restarts; queue is bounded while it is down', async (t) => {
  // The production backoff (capped at 2 s), not the short one the other tests use.
  const s = await setup(t, { link: { queueCapacity: 100, maxBackoffMs: undefined } });
  await waitUntil(() => s.link.connected);
  await s.peer.close();
  await waitUntil(() => !s.link.connected);

  const events: GatekeeperEvent[] = Array.from({ length: 250 }, (_, i) =>
    ({ type: 'dataplane.start', time: new Date().toISOString(), severity: 'notice', detail: String(i) }));
  s.link.enqueue(events);
  t.match(s.link.counters, { eventsQueued: 100, eventsDropped: 150 }, 'the oldest 150 dropped and counted');

  const restarted = new Peer(s.socketPath);
  t.teardown(() => restarted.close());
  const downAt = Date.now();
  await sleep(2500);
  await restarted.listen();
  const batch = await restarted.waitFor('events', () => true, 4000);
  t.ok(Date.now() - downAt < 2500 + 2500, 'reconnected within the 2 s backoff bound after 2.5 s down');
  t.equal(batch.dropped, 150, 'dropped count sent');
  const delivered = batch.events as { type: string; count?: number; detail?: string }[];
  t.same(delivered.map((e) => e.detail), events.slice(150).map((e) => (e as { detail: string }).detail), 'the newest 100 kept, in order');
  await restarted.waitFor('stats');
});
