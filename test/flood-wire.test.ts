// Issue 12 through the wire: a spoofed SYN flood at an allowed service must not cut the connection
// already running. A real lab: a Modbus-like echo server on tcp/502 in the server namespace, polled
// every 100 ms over one connection by the client, while trafgen sends SYNs from random sources in
// 198.19.0.0/16 (inside 198.18.0.0/15) to the same service for about 10 s; the server answers each
// with a SYN-ACK (its route to them points at the client's MAC). The policy's max-flows is small,
// so the flood surely exceeds the flow table. test/flood.test.ts does the same through the engine
// alone, on simulated time.

import t from 'tap';
import { readFileSync } from 'node:fs';
import type { DataplaneStats } from '../appliance/ipc/stats';
import { labAddresses as A, labUnavailable, sleep, startLab } from './lib/lab-fixture';
import { PYTHON, pythonUnavailable, slowestAnswer, startEchoServer, startPoller } from './lib/tcp-poll';
import { synFlood, trafgen, trafgenUnavailable } from './lib/trafgen';

const MAX_FLOWS = 2000;
/**
 * SYNs offered per second. On the 2-core test box the dataplane (JS, one thread) handles each SYN and
 * the server's SYN-ACK while trafgen, the server's kernel and other tests share the cores. Measured
 * there with other labs running: of 25k/s it saw 21-24k/s (the rest dropped by the kernel and
 * counted as kernel_dropped: 4-15 %), of 40k/s 29-30k/s (24-28 % dropped): about 25-30k SYNs/s, with
 * their SYN-ACKs 50-60k frames/s, is what the box sustains. The comment the test prints gives each run's numbers.
 */
const SYN_RATE = 25_000;
const FLOOD_SECONDS = 10;
/** A poll not answered within this long counts as lost (a Modbus master's usual response timeout is 1-5 s). */
const POLL_TIMEOUT_MS = 2000;
/**
 * Dataplane RSS bound: measured about 205 MB before the flood (2 x 32 MiB receive rings mapped whole,
 * receive slots, V8) and 12-17 MB more during it; the flow table holds max-flows + 1024 flows at most.
 */
const RSS_BOUND_MB = 300;
const RSS_GROWTH_BOUND_MB = 64;

const POLICY = `
version: 1
default: deny
groups:
  plant: [198.18.0.0/15]
  plc: ['${A.server4}']
rules:
  - name: modbus
    from: plant
    to: plc
    service: modbus
    action: allow
flows:
  max-flows: ${MAX_FLOWS}
`;

const skip = labUnavailable() || trafgenUnavailable() || pythonUnavailable();

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024;
}

t.test(`a ${SYN_RATE / 1000}k/s spoofed SYN flood for ${FLOOD_SECONDS} s does not cut an established Modbus connection`, { skip }, async (t) => {
  const { lab, dataplane } = await startLab(t, POLICY);
  // The server answers the spoofed sources through a gateway whose MAC is the client's: its SYN-ACKs
  // cross the gatekeeper as the flows' replies, and the client's stack drops them (not its address).
  lab.exec(lab.server, ['ip', 'neigh', 'replace', '198.18.1.1', 'lladdr', lab.mac(lab.client), 'dev', 'eth0', 'nud', 'permanent']);
  lab.exec(lab.server, ['ip', 'route', 'add', '198.19.0.0/16', 'via', '198.18.1.1', 'dev', 'eth0']);
  await startEchoServer(lab, [502]);
  const flood = synFlood(lab.mac(lab.client), lab.mac(lab.server), A.server4, 502);

  const pid = dataplane.pid!;
  const rssBefore = rssMb(pid);
  const before = await lab.freshStats();
  const polls = startPoller(lab, A.server4, 502, { seconds: FLOOD_SECONDS + 3, intervalMs: 100, timeoutMs: POLL_TIMEOUT_MS });
  await sleep(1000);
  let rssMax = rssBefore;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssMax = Math.max(rssMax, rssMb(pid));
      await sleep(250);
    }
  })();
  const floodStart = Date.now();
  const sending = trafgen(lab, lab.client, flood, SYN_RATE * FLOOD_SECONDS, SYN_RATE);
  // A new connection in the middle of the flood: how long its handshake takes.
  await sleep((FLOOD_SECONDS * 1000) / 2);
  const opening = lab.exec(lab.client, [PYTHON, '-c', `import socket, time
t = time.time()
s = socket.create_connection(('${A.server4}', 502), timeout=10)
print(round((time.time() - t) * 1000))`], 15_000);
  const sent = await sending;
  const floodEnd = Date.now();
  const result = await polls;
  sampling = false;
  await sampler;
  const after: DataplaneStats = await lab.freshStats();

  const seen = after.ports.outside.rx_packets - before.ports.outside.rx_packets;
  const kernel = after.ports.outside.kernel_dropped + after.ports.inside.kernel_dropped;
  const answers = after.ports.inside.rx_packets - before.ports.inside.rx_packets;
  const synAcksForwarded = after.ports.inside.forwarded - before.ports.inside.forwarded;
  const f = after.flows;
  t.comment(`trafgen sent ${sent.sent} SYNs in ${(sent.ms / 1000).toFixed(1)} s (${Math.round(sent.sent / (sent.ms / 1000))}/s); ` +
    `the dataplane saw ${seen} frames on the outside, ${answers} (SYN-ACKs) on the inside, forwarded ${synAcksForwarded} of them; kernel drops ${kernel}`);
  t.comment(`flows: created ${f.created}, earlyDropped ${f.earlyDropped}, evicted ${f.evicted}, active ${f.active}, embryonic ${f.embryonic}`);
  t.comment(`a new connection during the flood: ${opening.status === 0 ? `connected in ${opening.stdout.trim()} ms` : `failed: ${opening.stderr.trim().split('\n').pop()}`}`);
  t.comment(`polls ${result.polls}, slowest answer ${slowestAnswer(result).toFixed(1)} ms; dataplane RSS ${rssBefore.toFixed(0)} MB before, ${rssMax.toFixed(0)} MB at most`);

  t.equal(sent.sent, SYN_RATE * FLOOD_SECONDS, 'trafgen sent every SYN');
  t.equal(result.error, null, `no poll lost or failed: each answered byte-exact within ${POLL_TIMEOUT_MS} ms, no reset`);
  const answered = result.samples.map(([, at]) => at);
  t.ok(result.samples.length > 0 && result.samples[0][0] < floodStart && answered[answered.length - 1] > floodEnd,
    'the polls ran before, through and after the flood');
  const longest = answered.reduce((m, at, i) => (i === 0 ? 0 : Math.max(m, at - answered[i - 1])), 0);
  t.ok(longest < POLL_TIMEOUT_MS, `answers kept coming (${result.polls} polls, longest silence ${longest.toFixed(0)} ms)`);
  t.ok(f.created - before.flows.created > 10 * (f.capacity + f.embryonic), `the flood went far beyond the table (${f.created} flows created)`);
  t.ok(f.earlyDropped > 0, `unanswered flows were dropped early to make room (${f.earlyDropped})`);
  t.equal(f.evicted, 0, 'no answered flow was evicted');
  t.ok(rssMax < RSS_BOUND_MB, `dataplane RSS stayed below ${RSS_BOUND_MB} MB (${rssMax.toFixed(0)} MB)`);
  t.ok(rssMax - rssBefore < RSS_GROWTH_BOUND_MB, `and grew by less than ${RSS_GROWTH_BOUND_MB} MB (${(rssMax - rssBefore).toFixed(0)} MB)`);
});
