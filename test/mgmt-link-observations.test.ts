// The management link's observations: sent every interval while management is connected and only
// then (while it is away the observations are not even drained: the tables keep to their bounds),
// nothing when there is nothing to say, and what a real engine observed arrives whole after a
// reconnect. The management side is a Unix socket server that answers hello (as in mgmt-link.test.ts).

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Engine } from '../appliance/dataplane/engine';
import { Observations } from '../appliance/dataplane/events/observations';
import { MgmtLink } from '../appliance/dataplane/mgmt-link';
import { Side } from '../appliance/dataplane/verdict';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import type { ObservationsMessage } from '../appliance/ipc/messages';
import { loadPolicyText } from '../appliance/policy/load';
import { frame } from './lib/frames';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('observations go to a connected management only, and wait in their tables meanwhile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gk-obs-link-'));
  const socketPath = join(dir, 'mgmt.sock');
  const loaded = loadPolicyText(`version: 1
default: deny
rules:
  - name: dns
    from: 198.18.1.10
    to: 198.18.1.100
    service: udp/53
    action: allow
`, 'p.yaml');
  if (!loaded.ok) throw new Error('policy');
  const engine = new Engine(loaded.policy, 1);
  const observations = new Observations({ ruleName: (_g, i) => engine.policy.rules[i].name });
  engine.setObservations(observations);
  let drains = 0;
  const received: ObservationsMessage[] = [];
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  const listen = () => new Promise<void>((resolve) => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      const reader = new LineReader<Record<string, unknown>>((m) => {
        if (m.type === 'hello') socket.write(encodeMessage({ type: 'welcome', version: 1 }));
        if (m.type === 'observations') received.push(m as unknown as ObservationsMessage);
      }, () => socket.destroy());
      socket.on('data', (c) => reader.push(c));
    });
    server.listen(socketPath, resolve);
  });
  const link = new MgmtLink({
    socketPath,
    hello: () => ({ pair: 'p', pid: process.pid, inside: 'a', outside: 'b', generation: 1, policyHash: 'h', startedAt: Date.now() }),
    stats: () => ({}) as never,
    collect: () => ({ events: [], dropped: 0 }),
    requests: { prepare: async () => ({ ok: true, errors: [] }), commit: () => ({ ok: false, error: 'no' }), abort: () => {}, flows: () => ({ error: 'no' }) },
    observations: () => {
      drains++;
      return observations.drain(engine.flows.flows(), (f) => engine.appCountsOf(f));
    },
    observationsIntervalMs: 50,
    statsIntervalMs: 60_000,
    maxBackoffMs: 50,
    log: pino({ level: 'silent' }),
  });
  t.teardown(async () => {
    await link.stop(200);
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve())));
    rmSync(dir, { recursive: true, force: true });
  });
  link.start();
  // Management away: a DNS query is observed, nothing is drained.
  const query = frame({ src: '198.18.1.10', dst: '198.18.1.100', proto: 'udp', sport: 5353, dport: 53 });
  engine.process(query, query.length, Side.Outside, 1000);
  await sleep(300);
  t.equal(drains, 0, 'not drained while management is away');
  await listen();
  const deadline = Date.now() + 5000;
  while (received.length === 0 && Date.now() < deadline) await sleep(20);
  t.equal(received.length, 1);
  t.match(received[0], { sightings: [{ address: '198.18.1.10', frames: 1 }], conversations: [{ rule: 'dns', flows: 1, packets: 1 }], dropped: 0 },
    'what was observed while away arrives after the reconnect');
  const before = drains;
  await sleep(300);
  t.ok(drains > before, 'drained every interval while connected');
  t.equal(received.length, 1, 'but nothing is sent when there is nothing to say');
});
