// Issue 12: a flood of spoofed SYNs to an allowed service must not cut the flows already running.
// Through the real Engine on simulated time: 1,000,000 SYNs from random 198.18.0.0/15 sources at
// 100k/s, each answered by the server's SYN-ACK, while an established Modbus connection polls once a
// second. Before the early drop (plain LRU, max-flows 100k) the 100k new flows between two polls
// pushed the established flow out and every poll was dropped (tcp_no_flow). Must not depend on wall
// time: the flow table ages by the test clock.

import t from 'tap';
import { Engine } from '../appliance/dataplane/engine';
import { Side, Verdict } from '../appliance/dataplane/verdict';
import { loadPolicyText } from '../appliance/policy/load';
import { prng } from '../appliance/policy/generate';
import { FRAME_BYTES, PROTO_TCP, TCP_ACK, writeFrame, type FlowSpec } from '../bench/frames';
import { CLIENT_MAC, frame, SERVER_MAC } from './lib/frames';

const SYNS = 1_000_000;
/** 100k SYNs per simulated second. */
const SYN_INTERVAL_MS = 0.01;
const SYNS_PER_SECOND = 100_000;
const TCP_SYN = 0x02;
const SERVER = '198.18.0.100';
const SERVER_IP = 0xc6120064;
const PLANT = 0xc6120000;
const PLANT_SIZE = 1 << 17;

const policyText = `version: 1
default: deny
groups:
  plant: [198.18.0.0/15]
  plc: [${SERVER}]
rules:
  - name: modbus
    from: plant
    to: plc
    service: [tcp/502]
    action: allow
`;

/** One client connection to the PLC: handshake and poll frames with consistent seq/ack numbers. */
function connection(client: string, sport: number) {
  const out = (flags: string, seq: number, ack: number, payload?: number[]) =>
    frame({ src: client, dst: SERVER, proto: 'tcp', sport, dport: 502, flags, seq, ack, payload });
  const back = (flags: string, seq: number, ack: number, payload?: number[]) =>
    frame({ src: SERVER, dst: client, proto: 'tcp', sport: 502, dport: sport, flags, seq, ack, payload, srcMac: SERVER_MAC, dstMac: CLIENT_MAC });
  // Modbus read holding registers (unit 1, 10 registers at 0) and its answer; the numbers stay fixed
  // because the engine does not follow sequence numbers after the handshake.
  const request = [0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10];
  const response = [0, 1, 0, 0, 0, 23, 1, 3, 20, ...new Array<number>(20).fill(0)];
  return {
    syn: out('S', 1000, 0),
    synAck: back('SA', 5000, 1001),
    ack: out('A', 1001, 5001),
    request: out('PA', 1001, 5001, request),
    response: back('PA', 5001, 1013, response),
  };
}

t.test('a SYN flood early-drops unanswered flows; established and newly completed flows keep every packet', async (t) => {
  const loaded = loadPolicyText(policyText, 'flood.yaml');
  if (!loaded.ok) throw new Error(loaded.errors[0].message);
  let clock = 1000;
  const e = new Engine(loaded.policy, 1, { clock: { now: () => clock } });
  const bound = e.flows.capacity + e.flows.embryonicBudget;
  t.equal(e.flows.capacity, 100_000, 'default max-flows');
  t.equal(e.flows.embryonicBudget, 25_000, 'a quarter of max-flows for unanswered flows');

  let sent = 0;
  let lost = 0;
  const pass = (f: Buffer, side: Side) => {
    sent++;
    if (e.process(f, f.length, side, clock).verdict !== Verdict.Forward) lost++;
  };
  const handshake = (c: ReturnType<typeof connection>) => {
    pass(c.syn, Side.Outside);
    pass(c.synAck, Side.Inside);
    pass(c.ack, Side.Outside);
  };
  const poll = (c: ReturnType<typeof connection>) => {
    pass(c.request, Side.Outside);
    pass(c.response, Side.Inside);
  };

  const modbus = connection('198.19.0.1', 40000);
  handshake(modbus);
  t.equal(e.flows.counters.embryonic, 0, 'the completed handshake made the flow assured');
  poll(modbus);

  // Spoofed SYNs, and the server's SYN-ACK to each: a server answers every SYN to an open port.
  // Sources are scattered over the /15 by an odd multiplier (a bijection mod 2^17) and a random salt,
  // the source port steps every 2^17 SYNs: no two SYNs share a 4-tuple, so the counts below are exact.
  const salt = Math.floor(prng(12)() * PLANT_SIZE);
  const syn = Buffer.alloc(FRAME_BYTES);
  const synAck = Buffer.alloc(FRAME_BYTES);
  const spoofed: FlowSpec = { src: 0, dst: SERVER_IP, proto: PROTO_TCP, sport: 0, dport: 502 };
  const late = connection('198.19.0.2', 40001);
  let lateOpen = false;
  let maxSize = 0;
  let maxEmbryonic = 0;
  let synAcksPassed = 0;
  for (let i = 1; i <= SYNS; i++) {
    clock = 1000 + i * SYN_INTERVAL_MS;
    spoofed.src = (PLANT + (((i * 40_503) ^ salt) & (PLANT_SIZE - 1))) >>> 0;
    // Below the clients' 40000/40001, so no spoofed SYN lands on their 4-tuples.
    spoofed.sport = 1024 + (i >>> 17) * 4000;
    writeFrame(syn, 0, spoofed);
    writeFrame(synAck, 0, spoofed, true, TCP_SYN | TCP_ACK);
    e.process(syn, syn.length, Side.Outside, clock);
    if (e.process(synAck, synAck.length, Side.Inside, clock).verdict === Verdict.Forward) synAcksPassed++;

    // A legitimate connection opened in the middle of the flood: SYN-ACK after 0.5 ms, ACK after 1 ms.
    if (i === SYNS / 2) pass(late.syn, Side.Outside);
    if (i === SYNS / 2 + 50) pass(late.synAck, Side.Inside);
    if (i === SYNS / 2 + 100) {
      pass(late.ack, Side.Outside);
      lateOpen = true;
    }
    if (i % SYNS_PER_SECOND === 0) {
      poll(modbus);
      if (lateOpen) poll(late);
    }
    if ((i & 1023) === 0) {
      maxSize = Math.max(maxSize, e.flows.size);
      maxEmbryonic = Math.max(maxEmbryonic, e.flows.counters.embryonic);
    }
  }
  poll(modbus);
  poll(late);

  const c = e.flows.counters;
  t.equal(lost, 0, `no packet of the two real connections dropped (${sent} sent)`);
  t.equal(synAcksPassed, SYNS, 'every SYN-ACK found its flow: only the oldest unanswered flows were dropped');
  t.equal(c.created, SYNS + 2, `the flood created a flow per SYN, ${(c.created / bound).toFixed(0)}x what the table holds`);
  t.ok(maxSize <= bound, `table size (buckets) stayed ≤ max-flows + budget = ${bound} (max seen ${maxSize})`);
  t.ok(maxEmbryonic <= e.flows.embryonicBudget, `embryonic flows stayed ≤ the budget (max seen ${maxEmbryonic})`);
  t.equal(c.embryonic, e.flows.embryonicBudget, 'the budget is full of spoofed attempts');
  // Nothing expired (10 s of flood, 30 s opening timeout) or closed: every flow but the two assured
  // ones and the budget's worth still waiting was dropped early, and lru-cache never had to evict.
  t.equal(c.earlyDropped, SYNS - e.flows.embryonicBudget, `early drops: ${c.earlyDropped}, the SYNs beyond the budget`);
  t.equal(c.evicted, 0, 'no least-recently-used eviction');
  t.equal([...e.flows.flows()].length, 2 + e.flows.embryonicBudget, 'flow records held: the two connections and the budget');
});

t.test('answered means the handshake completed, not the SYN-ACK; UDP once the responder replied', async (t) => {
  const loaded = loadPolicyText(policyText.replace('[tcp/502]', '[tcp/502, udp/502]'), 'flood.yaml');
  if (!loaded.ok) throw new Error(loaded.errors[0].message);
  const e = new Engine(loaded.policy, 1, { clock: { now: () => 1000 } });
  const c = connection('198.19.0.3', 40002);
  const run = (f: Buffer, side: Side) => e.process(f, f.length, side, 1000).verdict;
  run(c.syn, Side.Outside);
  run(c.synAck, Side.Inside);
  t.equal(e.flows.counters.embryonic, 1, 'still embryonic after the SYN-ACK');
  // A blind spoofer's ACK does not carry the SYN-ACK's seq + 1.
  run(frame({ src: '198.19.0.3', dst: SERVER, proto: 'tcp', sport: 40002, dport: 502, flags: 'A', seq: 1001, ack: 777 }), Side.Outside);
  t.equal(e.flows.counters.embryonic, 1, 'an ACK with the wrong ack number does not complete it');
  t.equal(run(c.ack, Side.Outside), Verdict.Forward);
  t.equal(e.flows.counters.embryonic, 0, 'the ACK of the SYN-ACK does');

  const udp = (src: string, dst: string, sport: number, dport: number) => frame({ src, dst, proto: 'udp', sport, dport });
  run(udp('198.19.0.4', SERVER, 5000, 502), Side.Outside);
  t.equal(e.flows.counters.embryonic, 1, 'a UDP flow is embryonic until answered');
  t.equal(run(udp(SERVER, '198.19.0.4', 502, 5000), Side.Inside), Verdict.Forward);
  t.equal(e.flows.counters.embryonic, 0, 'the reply answers it');
});
