// Engine benchmark, from memory on one core: decode + decide packets/s on flow-cache hits and on first
// packets, policy compile time, and heap bytes per tracked flow. Traffic is drawn from the generated
// rules themselves (addresses and ports inside each rule's ranges) plus misses that fall to the
// default rule, so lookups walk the whole rule table rather than stopping at an early catch-all.
// Modbus inspection: the same pipelined polls (4 reads of 10 holding registers per segment, their 4
// responses per segment) on flows whose rule has a `modbus:` block and on flows whose rule has none;
// the ratio is inspection's cost in the same run.
// Observations (events/observations.ts): cache hits, first packets and the same Modbus polls on flows
// without a block with the observations sink set and without, runs alternating so the VM's drift hits
// both alike; and the time of one drain (the walk over the flow table) with 100k flows.
//
//   npm run bench [-- --json] [-- --rules 10000]

import { cpus, loadavg } from 'node:os';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { decodeFrame } from '../appliance/dataplane/decode/decoder';
import { Packet } from '../appliance/dataplane/decode/packet';
import { Engine, SWEEP_FLOWS, SWEEP_INTERVAL_MS } from '../appliance/dataplane/engine';
import { NO_RULE, Side, Verdict } from '../appliance/dataplane/verdict';
import { generatePolicyText, prng } from '../appliance/policy/generate';
import { loadPolicyText } from '../appliance/policy/load';
import type { PolicyModel } from '../appliance/policy/model';
import type { CompiledPolicy } from '../appliance/policy/types';
import { frameSet, PROTO_TCP, PROTO_UDP, setTcpAck, TCP_ACK, TCP_SYN, tcpDataFrame, type FlowSpec } from './frames';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import { Observations } from '../appliance/dataplane/events/observations';


v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const SIZES = [10, 1_000, 10_000, 100_000];
const SEED = 42;
/** Established flows the cache-hit runs cycle through (both directions of each). */
const HIT_FLOWS = 32_768;
/** Distinct new flows cycled through by the first-packet runs: well above max-flows (100k by default),
 * so a flow has always been dropped before its frame comes round again. */
const FIRST_FLOWS = 262_144;
/** First packets per timed run. */
const FIRST_PER_RUN = 65_536;
const HIT_PACKETS_PER_RUN = 2_000_000;
const WARMUP_RUNS = 2;
const RUNS = 9;
/** Share of first packets that match no rule (random 198.18/15 hosts: default deny). */
const MISS_SHARE = 0.1;
const MEMORY_FLOWS = 100_000;
const TARGETS = { cacheHitPps: 2e6, firstPacketPps10k: 0.5e6, compileMs10k: 1000 };

interface SizeResult {
  rules: number;
  compileMs: number;
  loadMs: number;
  tableBytes: number;
  cacheHitPps: number;
  firstPacketPps: number;
  /** Every timed run, for the spread: this VM's speed drifts by tens of percent within a minute. */
  cacheHitRuns: number[];
  firstPacketRuns: number[];
  emptyTablePps: number;
  matchPps: number;
  /** How the first packets were decided: share forwarded, share on the default rule, median rule hit. */
  forwardedShare: number;
  defaultShare: number;
  medianRule: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/**
 * Median packets/s over RUNS timed runs after WARMUP_RUNS untimed ones. `prepare` runs untimed before
 * each run and hands it its state; `run` returns the packets it processed. `runs` receives each rate.
 */
function measure<T>(prepare: () => T, run: (state: T) => number, rates: number[] = []): number {
  for (let i = 0; i < WARMUP_RUNS + RUNS; i++) {
    const state = prepare();
    const started = process.hrtime.bigint();
    const packets = run(state);
    const ns = Number(process.hrtime.bigint() - started);
    if (i >= WARMUP_RUNS) rates.push((packets * 1e9) / ns);
  }
  return median(rates);
}

/**
 * Like measure(), for two variants at once: their runs alternate (a, b, a, b, ...), so a drift of the
 * machine's speed during the measurement affects both the same. Medians of each.
 */
function measurePair<T>(prepareA: () => T, prepareB: () => T, run: (state: T) => number): { a: number; b: number } {
  const rates: [number[], number[]] = [[], []];
  for (let i = 0; i < 2 * (WARMUP_RUNS + RUNS); i++) {
    const which = i & 1;
    const state = which === 0 ? prepareA() : prepareB();
    const started = process.hrtime.bigint();
    const packets = run(state);
    const ns = Number(process.hrtime.bigint() - started);
    if (i >= 2 * WARMUP_RUNS) rates[which].push((packets * 1e9) / ns);
  }
  return { a: median(rates[0]), b: median(rates[1]) };
}

/** An engine collecting observations, as the dataplane has one while a management socket is set. */
function observing(engine: Engine): Engine {
  engine.setObservations(new Observations({ ruleName: (_g, i) => engine.policy.rules[i]?.name ?? '' }));
  return engine;
}

/** Flows that match rule `r` of the model: addresses and a port taken inside the rule's ranges. */
function flowsFromRules(model: PolicyModel, count: number, seed: number): FlowSpec[] {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const inside = (intervals: number[]): number => {
    const i = int(intervals.length >> 1) << 1;
    const lo = intervals[i];
    const hi = intervals[i + 1];
    // 'any' spans the whole space: stay in the plant's 10/8 so addresses look like real hosts.
    if (hi - lo > 0xffffff) return (0x0a000000 + int(0x1000000)) >>> 0;
    return lo + int(hi - lo + 1);
  };
  const candidates = model.rules.filter((r) => r.enabled && r.src.v4.length > 0 && r.dst.v4.length > 0 &&
    (r.services.any || r.services.protos.has(PROTO_TCP) || r.services.protos.has(PROTO_UDP)));
  const flows: FlowSpec[] = [];
  while (flows.length < count) {
    const sport = 1024 + int(64_000);
    if (rnd() < MISS_SHARE) {
      const proto = rnd() < 0.5 ? PROTO_TCP : PROTO_UDP;
      flows.push({ src: 0xc6120000 + int(0x10000), dst: 0xc6130000 + int(0x10000), proto, sport, dport: 1 + int(65535) });
      continue;
    }
    const rule = candidates[int(candidates.length)];
    let proto: number;
    let ports: number[];
    if (rule.services.any) {
      proto = rnd() < 0.5 ? PROTO_TCP : PROTO_UDP;
      ports = [1, 65535];
    } else {
      const offered = [PROTO_TCP, PROTO_UDP].filter((p) => rule.services.protos.has(p));
      proto = offered[int(offered.length)];
      ports = rule.services.protos.get(proto) ?? [];
    }
    flows.push({ src: inside(rule.src.v4), dst: inside(rule.dst.v4), proto, sport, dport: inside(ports) });
  }
  return flows;
}

/** Distinct flows only: a repeated 5-tuple would turn a "first packet" into a cache hit. */
function distinct(flows: FlowSpec[]): FlowSpec[] {
  const seen = new Set<string>();
  return flows.filter((f) => {
    const id = `${f.src}|${f.dst}|${f.proto}|${f.sport}|${f.dport}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function load(rules: number): { policy: CompiledPolicy; model: PolicyModel; loadMs: number } {
  const text = generatePolicyText(rules, SEED);
  const started = performance.now();
  const result = loadPolicyText(text, `generated-${rules}.yaml`);
  const loadMs = performance.now() - started;
  if (!result.ok) throw new Error(`generated policy with ${rules} rules refused: ${result.errors[0]?.message}`);
  return { policy: result.policy, model: result.model, loadMs };
}

function benchSize(rules: number): SizeResult {
  const { policy, model, loadMs } = load(rules);
  const now = Date.now();

  // First packets, steady state: the flow table is full, so every new flow ends the oldest one (and
  // reuses its record), as under a flood of new connections. None is answered, so that is the early
  // drop of the oldest embryonic flow (flow-table.ts), with the embryonic budget full.
  const firstFlows = distinct(flowsFromRules(model, FIRST_FLOWS, SEED + 1));
  const firstFrames = frameSet(firstFlows);
  const steady = new Engine(policy, 1);
  for (const frame of firstFrames) steady.process(frame, frame.length, Side.Outside, now);
  let cursor = 0;
  const firstPacketRuns: number[] = [];
  const firstPacketPps = measure(() => steady, (engine) => {
    for (let n = 0; n < FIRST_PER_RUN; n++) {
      const frame = firstFrames[cursor];
      engine.process(frame, frame.length, Side.Outside, now);
      cursor = cursor + 1 === firstFrames.length ? 0 : cursor + 1;
    }
    return FIRST_PER_RUN;
  }, firstPacketRuns);
  if (steady.flows.counters.evicted + steady.flows.counters.earlyDropped === 0) throw new Error('first-packet runs never filled the flow table');

  // First packets into an empty table: each run starts afresh, so every tracked flow allocates a record.
  const emptyTablePps = measure(() => new Engine(policy, 1), (engine) => {
    for (let i = 0; i < FIRST_PER_RUN; i++) engine.process(firstFrames[i], firstFrames[i].length, Side.Outside, now);
    return FIRST_PER_RUN;
  });

  // The rule lookup alone (policy.match4 on the same first packets): the share of decide that is matching.
  const src = Uint32Array.from(firstFlows, (f) => f.src);
  const dst = Uint32Array.from(firstFlows, (f) => f.dst);
  const proto = Uint8Array.from(firstFlows, (f) => f.proto);
  const dport = Uint16Array.from(firstFlows, (f) => f.dport);
  let sink = 0;
  const matchPps = measure(() => policy, (p) => {
    for (let i = 0; i < FIRST_PER_RUN; i++) sink += p.match4(src[i], dst[i], proto[i], dport[i]);
    return FIRST_PER_RUN;
  });
  if (sink < 0) throw new Error('unreachable: keeps the lookups from being optimised away');

  // Which rules decided them: proof that the traffic exercises the table, not only the default.
  const probe = new Engine(policy, 1);
  const decided: number[] = [];
  let forwarded = 0;
  let onDefault = 0;
  for (const frame of firstFrames) {
    const result = probe.process(frame, frame.length, Side.Outside, now);
    if (result.verdict === Verdict.Forward) forwarded++;
    if (result.rule === policy.rules.length - 1) onDefault++;
    else if (result.rule !== NO_RULE) decided.push(result.rule);
  }

  // Cache hits: the allowed flows are opened once, then their established packets go both ways. Each
  // handshake completes (SYN, the server's SYN-ACK with seq 0, the client's ACK of it: ack 1) before
  // the next flow opens, so the flows are answered (flow-table.ts) like real connections and the
  // embryonic budget never drops one.
  const hitEngine = new Engine(policy, 1);
  const allowed: FlowSpec[] = [];
  for (const flow of distinct(flowsFromRules(model, HIT_FLOWS * 2, SEED + 2))) {
    if (allowed.length === HIT_FLOWS) break;
    const [syn] = frameSet([flow]);
    if (hitEngine.process(syn, syn.length, Side.Outside, now).verdict !== Verdict.Forward) continue;
    allowed.push(flow);
    const [synAck] = frameSet([flow], true, TCP_SYN | TCP_ACK);
    hitEngine.process(synAck, synAck.length, Side.Inside, now);
    const [ack] = frameSet([flow], false, TCP_ACK);
    if (flow.proto === PROTO_TCP) setTcpAck(ack, 1);
    hitEngine.process(ack, ack.length, Side.Outside, now);
  }
  const requests = frameSet(allowed, false, TCP_ACK);
  const replies = frameSet(allowed, true, TCP_ACK);
  const cacheHitRuns: number[] = [];
  const cacheHitPps = measure(() => hitEngine, (engine) => {
    let done = 0;
    while (done < HIT_PACKETS_PER_RUN) {
      for (let i = 0; i < requests.length; i++) {
        engine.process(requests[i], requests[i].length, Side.Outside, now);
        engine.process(replies[i], replies[i].length, Side.Inside, now);
      }
      done += requests.length * 2;
    }
    return done;
  }, cacheHitRuns);
  const created = hitEngine.flows.counters.created;
  if (created !== allowed.length) {
    throw new Error(`cache-hit run created flows (${created} for ${allowed.length}): not all packets were hits`);
  }

  return {
    rules,
    compileMs: policy.stats.compileMs,
    loadMs,
    tableBytes: policy.stats.tableBytes,
    cacheHitPps,
    firstPacketPps,
    cacheHitRuns,
    firstPacketRuns,
    emptyTablePps,
    matchPps,
    forwardedShare: forwarded / firstFrames.length,
    defaultShare: onDefault / firstFrames.length,
    medianRule: decided.length > 0 ? median(decided) : -1,
  };
}

/** Decode only, no decision: the floor the engine's decide step is measured against. */
function decodeOnlyPps(): number {
  const { model } = load(10);
  const frames = frameSet(distinct(flowsFromRules(model, HIT_FLOWS, SEED + 3)), false, TCP_ACK);
  const pkt = new Packet();
  return measure(() => pkt, (packet) => {
    let done = 0;
    while (done < HIT_PACKETS_PER_RUN) {
      for (let i = 0; i < frames.length; i++) decodeFrame(frames[i], frames[i].length, packet);
      done += frames.length;
    }
    return done;
  });
}

/**
 * Heap growth per tracked flow with MEMORY_FLOWS answered flows (including the flow table's own
 * arrays), then the heap at the table's bound: a flood of unanswered flows on top fills the embryonic
 * budget as well (flow-table.ts), and the table holds max-flows + budget records.
 */
function bytesPerFlow(): { bytesPerFlow: number; flows: number; boundBytes: number; boundFlows: number } {
  const text = ['version: 1', 'default: deny', 'flows:', `  max-flows: ${MEMORY_FLOWS}`, 'rules:',
    '  - name: all', '    from: any', '    to: any', '    service: any', '    action: allow', ''].join('\n');
  const result = loadPolicyText(text, 'memory.yaml');
  if (!result.ok) throw new Error(`memory policy refused: ${result.errors[0]?.message}`);
  const flows: FlowSpec[] = [];
  for (let i = 0; i < MEMORY_FLOWS; i++) {
    flows.push({ src: 0x0a000000 + i, dst: 0x0a800000 + (i % 250), proto: PROTO_UDP, sport: 1024 + (i % 60000), dport: 502 });
  }
  const frames = frameSet(flows);
  // Each answered by a reply, so all are held (an unanswered flow counts against the embryonic budget).
  const replies = frameSet(flows, true);
  const flood: FlowSpec[] = [];
  for (let i = 0; i < MEMORY_FLOWS; i++) {
    flood.push({ src: 0x0b000000 + i, dst: 0x0a800000 + (i % 250), proto: PROTO_UDP, sport: 1024 + (i % 60000), dport: 502 });
  }
  const floodFrames = frameSet(flood);
  const now = Date.now();
  gc();
  gc();
  const before = process.memoryUsage();
  const engine = new Engine(result.policy, 1);
  for (let i = 0; i < MEMORY_FLOWS; i++) {
    engine.process(frames[i], frames[i].length, Side.Outside, now);
    engine.process(replies[i], replies[i].length, Side.Inside, now);
  }
  gc();
  gc();
  const after = process.memoryUsage();
  const grown = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
  const tracked = engine.flows.size;
  for (const frame of floodFrames) engine.process(frame, frame.length, Side.Outside, now);
  gc();
  gc();
  const atBound = process.memoryUsage();
  // The frames stay reachable until here: freed before a reading, they would count as negative growth.
  if (frames.length + replies.length + floodFrames.length !== 3 * MEMORY_FLOWS) throw new Error('unreachable');
  return {
    bytesPerFlow: grown / tracked,
    flows: tracked,
    boundBytes: atBound.heapUsed - before.heapUsed + (atBound.arrayBuffers - before.arrayBuffers),
    boundFlows: engine.flows.size,
  };
}

/** Modbus connections and poll rounds (one request segment, one response segment) per timed run. */
const MODBUS_FLOWS = 1024;
const MODBUS_ROUNDS = 48;
const PIPELINED = 4;

/**
 * Packets/s of pipelined Modbus polls through the engine, inspected (the rule has a read-only block)
 * and not (the same rule without one), in the same run.
 */
function modbusPps(): { inspectedPps: number; plainPps: number; observedPair: { a: number; b: number } } {
  const loaded = loadPolicyText(`version: 1
default: deny
rules:
  - name: hmi-reads-plc
    from: 198.18.0.0/16
    to: 198.19.0.1
    service: tcp/502
    action: allow
`, 'bench.yaml');
  if (!loaded.ok) throw new Error('bench policy refused');
  const plain = loaded.policy;
  const block = compileModbusBlock({ functions: ['read'], units: [1], addresses: { 'holding-registers': ['0-999'] } });
  if (block.errors) throw new Error('bench block refused');
  const inspected: CompiledPolicy = { ...plain, rules: plain.rules.map((r, i) => (i === 0 ? { ...r, modbus: block.policy } : r)) };
  const flows: FlowSpec[] = Array.from({ length: MODBUS_FLOWS }, (_, i) => ({
    src: ((198 << 24) | (18 << 16) | (i + 1)) >>> 0, dst: ((198 << 24) | (19 << 16) | 1) >>> 0, proto: PROTO_TCP, sport: 40_000 + (i % 20_000), dport: 502,
  }));
  const request: number[] = [];
  const response: number[] = [];
  for (let k = 0; k < PIPELINED; k++) {
    request.push(0, k, 0, 0, 0, 6, 1, 3, 0, 10 * k, 0, 10);
    response.push(0, k, 0, 0, 0, 23, 1, 3, 20, ...Array(20).fill(0));
  }
  // Sequence numbers grow through the run, so every segment is new data the stream guard checks.
  const frames: Buffer[] = [];
  for (let round = 0; round < MODBUS_ROUNDS; round++) {
    for (const flow of flows) {
      const clientSeq = 1 + round * request.length;
      const serverSeq = 1 + round * response.length;
      frames.push(tcpDataFrame(flow, false, clientSeq, serverSeq, request));
      frames.push(tcpDataFrame(flow, true, serverSeq, clientSeq + request.length, response));
    }
  }
  const now = 1000;
  const open = (policy: CompiledPolicy, observe = false): Engine => {
    const engine = observe ? observing(new Engine(policy, 1)) : new Engine(policy, 1);
    for (const flow of flows) {
      const [syn] = frameSet([flow]);
      engine.process(syn, syn.length, Side.Outside, now);
      const [synAck] = frameSet([flow], true, TCP_SYN | TCP_ACK);
      setTcpAck(synAck, 1);
      engine.process(synAck, synAck.length, Side.Inside, now);
      const [ack] = frameSet([flow], false, TCP_ACK);
      setTcpAck(ack, 1);
      engine.process(ack, ack.length, Side.Outside, now);
    }
    return engine;
  };
  const run = (engine: Engine): number => {
    let refused = 0;
    for (let i = 0; i < frames.length; i++) {
      if (engine.process(frames[i], frames[i].length, (i & 1) === 0 ? Side.Outside : Side.Inside, now).verdict !== Verdict.Forward) refused++;
    }
    if (refused > 0) throw new Error(`${refused} poll frames not forwarded: the bench traffic is wrong`);
    return frames.length;
  };
  const probe = open(inspected);
  run(probe);
  if (probe.inspectCounters[0].snapshot().flows !== MODBUS_FLOWS) throw new Error('the inspected run did not inspect every flow');
  const observedProbe = open(plain, true);
  run(observedProbe);
  const observedCounts = observedProbe.appCountsOf([...observedProbe.flows.flows()][0]);
  if (observedCounts === null || observedCounts.counts[3] !== PIPELINED * MODBUS_ROUNDS) throw new Error('the observed run did not count the polls');
  return {
    inspectedPps: measure(() => open(inspected), run),
    plainPps: measure(() => open(plain), run),
    // Flows without a block, with and without observations (the observer counting functions), alternating.
    observedPair: measurePair(() => open(plain), () => open(plain, true), run),
  };
}

interface ObservationsCost {
  rules: number;
  hitPps: number;
  hitObservedPps: number;
  firstPps: number;
  firstObservedPps: number;
  modbusPlainPps: number;
  modbusObservedPps: number;
  drainMs: number;
  drainFlows: number;
  /** One Engine.sweep slice (SWEEP_FLOWS flows) over the same table: what the dataplane runs instead of the whole walk. */
  sweepSliceMs: number;
}

/** What collecting observations costs the packet path, in the same run, and what one drain costs. */
function observationsCost(rules: number, modbusPlainAndObserved: { a: number; b: number }): ObservationsCost {
  const { policy, model } = load(rules);
  const now = Date.now();
  // Cache hits: the same established flows in two engines, one of them observing.
  const flows = distinct(flowsFromRules(model, HIT_FLOWS * 2, SEED + 2));
  const open = (engine: Engine): FlowSpec[] => {
    const allowed: FlowSpec[] = [];
    for (const flow of flows) {
      if (allowed.length === HIT_FLOWS) break;
      const [syn] = frameSet([flow]);
      if (engine.process(syn, syn.length, Side.Outside, now).verdict !== Verdict.Forward) continue;
      allowed.push(flow);
      const [synAck] = frameSet([flow], true, TCP_SYN | TCP_ACK);
      engine.process(synAck, synAck.length, Side.Inside, now);
      const [ack] = frameSet([flow], false, TCP_ACK);
      if (flow.proto === PROTO_TCP) setTcpAck(ack, 1);
      engine.process(ack, ack.length, Side.Outside, now);
    }
    return allowed;
  };
  const plain = new Engine(policy, 1);
  const observed = observing(new Engine(policy, 1));
  const allowed = open(plain);
  open(observed);
  const requests = frameSet(allowed, false, TCP_ACK);
  const replies = frameSet(allowed, true, TCP_ACK);
  const hits = measurePair(() => plain, () => observed, (engine) => {
    let done = 0;
    while (done < HIT_PACKETS_PER_RUN) {
      for (let i = 0; i < requests.length; i++) {
        engine.process(requests[i], requests[i].length, Side.Outside, now);
        engine.process(replies[i], replies[i].length, Side.Inside, now);
      }
      done += requests.length * 2;
    }
    return done;
  });
  if (observed.flows.counters.created !== allowed.length) throw new Error('observed cache-hit run created flows');

  // First packets, steady state (the table full), as benchSize measures them.
  const firstFrames = frameSet(distinct(flowsFromRules(model, FIRST_FLOWS, SEED + 1)));
  const steadyPlain = new Engine(policy, 1);
  const steadyObserved = observing(new Engine(policy, 1));
  for (const frame of firstFrames) {
    steadyPlain.process(frame, frame.length, Side.Outside, now);
    steadyObserved.process(frame, frame.length, Side.Outside, now);
  }
  const cursors = new Map<Engine, number>([[steadyPlain, 0], [steadyObserved, 0]]);
  const first = measurePair(() => steadyPlain, () => steadyObserved, (engine) => {
    let cursor = cursors.get(engine) ?? 0;
    for (let n = 0; n < FIRST_PER_RUN; n++) {
      const frame = firstFrames[cursor];
      engine.process(frame, frame.length, Side.Outside, now);
      cursor = cursor + 1 === firstFrames.length ? 0 : cursor + 1;
    }
    cursors.set(engine, cursor);
    return FIRST_PER_RUN;
  });

  // One drain with MEMORY_FLOWS answered flows, each with packets to report.
  const text = ['version: 1', 'default: deny', 'flows:', `  max-flows: ${MEMORY_FLOWS}`, 'rules:',
    '  - name: all', '    from: any', '    to: any', '    service: any', '    action: allow', ''].join('\n');
  const loaded = loadPolicyText(text, 'drain.yaml');
  if (!loaded.ok) throw new Error('drain policy refused');
  const engine = new Engine(loaded.policy, 1);
  const sink = new Observations({ ruleName: () => 'all' });
  engine.setObservations(sink);
  const drainFlows: FlowSpec[] = [];
  for (let i = 0; i < MEMORY_FLOWS; i++) {
    drainFlows.push({ src: 0x0a000000 + i, dst: 0x0a800000 + (i % 250), proto: PROTO_UDP, sport: 1024 + (i % 60000), dport: 502 });
  }
  const out = frameSet(drainFlows);
  const back = frameSet(drainFlows, true);
  for (let i = 0; i < MEMORY_FLOWS; i++) {
    engine.process(out[i], out[i].length, Side.Outside, now);
    engine.process(back[i], back[i].length, Side.Inside, now);
  }
  // The first drain reports every flow as begun; the timed ones their packets since (one more each).
  sink.drain(engine.flows.flows(), (f) => engine.appCountsOf(f));
  const drains: number[] = [];
  for (let run = 0; run < 5; run++) {
    for (let i = 0; i < MEMORY_FLOWS; i++) engine.process(out[i], out[i].length, Side.Outside, now);
    const started = performance.now();
    const message = sink.drain(engine.flows.flows(), (f) => engine.appCountsOf(f));
    drains.push(performance.now() - started);
    if (message === null || message.conversations.length === 0) throw new Error('the drain reported nothing');
  }
  const slices: number[] = [];
  for (let run = 0; run < 200; run++) {
    for (let i = run * SWEEP_FLOWS; i < (run + 1) * SWEEP_FLOWS && i < MEMORY_FLOWS; i++) engine.process(out[i], out[i].length, Side.Outside, now);
    const started = performance.now();
    engine.sweep(SWEEP_FLOWS, now);
    slices.push(performance.now() - started);
  }
  return {
    sweepSliceMs: median(slices),
    rules, hitPps: hits.a, hitObservedPps: hits.b, firstPps: first.a, firstObservedPps: first.b,
    modbusPlainPps: modbusPlainAndObserved.a, modbusObservedPps: modbusPlainAndObserved.b, drainMs: median(drains), drainFlows: engine.flows.size,
  };
}

function main(): void {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const only = args.indexOf('--rules');
  const sizes = only >= 0 ? [Number(args[only + 1])] : SIZES;
  const log = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`);
  };

  log(`gatekeeper engine bench: node ${process.version}, one core, ${RUNS} runs after ${WARMUP_RUNS} warm-ups, median; ` +
    `load average ${loadavg()[0].toFixed(2)} on ${cpus().length} cores`);
  const decodePps = decodeOnlyPps();
  log(`decode only (baseline): ${(decodePps / 1e6).toFixed(2)} Mpps`);
  const results: SizeResult[] = [];
  for (const rules of sizes) {
    results.push(benchSize(rules));
    gc();
  }
  const memory = bytesPerFlow();
  const modbus = modbusPps();
  const observations = observationsCost(sizes.includes(1000) ? 1000 : sizes[0], modbus.observedPair);

  const mpps = (x: number) => (x / 1e6).toFixed(2).padStart(8);
  log('');
  log('  rules  compile ms  load ms  tables KiB  hit Mpps  first Mpps  first-empty Mpps  match Mpps  decode/hit  decode/first  fwd %  default %  median rule');
  for (const r of results) {
    log(`${String(r.rules).padStart(7)}  ${r.compileMs.toFixed(1).padStart(10)}  ${r.loadMs.toFixed(0).padStart(7)}  ` +
      `${(r.tableBytes / 1024).toFixed(0).padStart(10)}  ${mpps(r.cacheHitPps)}  ${mpps(r.firstPacketPps)}  ${mpps(r.emptyTablePps).padStart(16)}  ${mpps(r.matchPps).padStart(10)}    ` +
      `${(decodePps / r.cacheHitPps).toFixed(1).padStart(8)}  ${(decodePps / r.firstPacketPps).toFixed(1).padStart(12)}  ` +
      `${(r.forwardedShare * 100).toFixed(0).padStart(5)}  ${(r.defaultShare * 100).toFixed(0).padStart(9)}  ${String(r.medianRule).padStart(11)}`);
  }
  log('');
  const spread = (runs: number[]) => `${(Math.min(...runs) / 1e6).toFixed(2)}–${(Math.max(...runs) / 1e6).toFixed(2)}`;
  for (const r of results) {
    log(`spread of the ${RUNS} timed runs, ${r.rules} rules: hit ${spread(r.cacheHitRuns)} Mpps, first ${spread(r.firstPacketRuns)} Mpps`);
  }
  log(`memory: ${memory.bytesPerFlow.toFixed(0)} bytes per tracked flow (heap growth with ${memory.flows} flows, flow table arrays included)`);
  log(`memory at the bound: ${(memory.boundBytes / 2 ** 20).toFixed(1)} MiB for ${memory.boundFlows} flows (max-flows ${MEMORY_FLOWS} + embryonic budget, flooded)`);
  log(`modbus polls (${MODBUS_FLOWS} connections, ${PIPELINED} requests per segment): inspected ${mpps(modbus.inspectedPps).trim()} Mpps, ` +
    `not inspected ${mpps(modbus.plainPps).trim()} Mpps: ${(modbus.inspectedPps / modbus.plainPps).toFixed(2)}× ` +
    `(${((PIPELINED * modbus.inspectedPps) / 2 / 1e6).toFixed(2)} M requests/s inspected)`);
  const o = observations;
  log(`observations (${o.rules} rules, runs alternating, without → with): hit ${mpps(o.hitPps).trim()} → ${mpps(o.hitObservedPps).trim()} Mpps ` +
    `(${(o.hitObservedPps / o.hitPps).toFixed(2)}×), first ${mpps(o.firstPps).trim()} → ${mpps(o.firstObservedPps).trim()} Mpps ` +
    `(${(o.firstObservedPps / o.firstPps).toFixed(2)}×), modbus polls without a block ${mpps(o.modbusPlainPps).trim()} → ` +
    `${mpps(o.modbusObservedPps).trim()} Mpps (${(o.modbusObservedPps / o.modbusPlainPps).toFixed(2)}×, observed)`);
  log(`observations drain: ${o.drainMs.toFixed(1)} ms for ${o.drainFlows} flows walked at once (the old way); sweep slice: ${o.sweepSliceMs.toFixed(2)} ms for ${SWEEP_FLOWS} flows (every ${SWEEP_INTERVAL_MS} ms)`);

  const at = (rules: number) => results.find((r) => r.rules === rules);
  const reference = at(10_000) ?? results[results.length - 1];
  const byRules = (pick: (r: SizeResult) => number, prefix: string) =>
    Object.fromEntries(results.map((r) => [`${prefix}${r.rules >= 1000 ? `${r.rules / 1000}k` : r.rules}`, Math.round(pick(r))]));
  const report = {
    engine: {
      cacheHitPps: Math.round(reference.cacheHitPps),
      decodeOnlyPps: Math.round(decodePps),
      ...byRules((r) => r.cacheHitPps, 'cacheHitPps'),
      ...byRules((r) => r.firstPacketPps, 'firstPacketPps'),
      ...byRules((r) => r.emptyTablePps, 'firstPacketEmptyTablePps'),
      ...byRules((r) => r.matchPps, 'matchOnlyPps'),
    },
    compile: {
      ...Object.fromEntries(results.map((r) => [`ms${r.rules >= 1000 ? `${r.rules / 1000}k` : r.rules}`, +r.compileMs.toFixed(1)])),
      ...byRules((r) => r.loadMs, 'loadMs'),
    },
    memory: { bytesPerFlow: Math.round(memory.bytesPerFlow), flows: memory.flows, boundBytes: memory.boundBytes, boundFlows: memory.boundFlows },
    modbus: { inspectedPps: Math.round(modbus.inspectedPps), plainPps: Math.round(modbus.plainPps),
      ratioInspectedVsPlain: +(modbus.inspectedPps / modbus.plainPps).toFixed(3), requestsPerSegment: PIPELINED, flows: MODBUS_FLOWS },
    observations: {
      rules: observations.rules, cacheHitPps: Math.round(observations.hitPps), cacheHitObservedPps: Math.round(observations.hitObservedPps),
      firstPacketPps: Math.round(observations.firstPps), firstPacketObservedPps: Math.round(observations.firstObservedPps),
      modbusPlainPps: Math.round(observations.modbusPlainPps), modbusObservedPps: Math.round(observations.modbusObservedPps),
      drainMs: +observations.drainMs.toFixed(2), drainFlows: observations.drainFlows, sweepSliceMs: +observations.sweepSliceMs.toFixed(3),
    },
    traffic: Object.fromEntries(results.map((r) => [r.rules, { forwardedShare: +r.forwardedShare.toFixed(3),
      defaultShare: +r.defaultShare.toFixed(3), medianRule: r.medianRule }])),
    spread: Object.fromEntries(results.map((r) => [r.rules, {
      cacheHitPps: [Math.round(Math.min(...r.cacheHitRuns)), Math.round(Math.max(...r.cacheHitRuns))],
      firstPacketPps: [Math.round(Math.min(...r.firstPacketRuns)), Math.round(Math.max(...r.firstPacketRuns))],
    }])),
    targets: TARGETS,
    loadAverage: +loadavg()[0].toFixed(2),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const check = (ok: boolean) => (ok ? 'met' : 'MISSED');
  log('');
  log(`targets (${reference.rules} rules): cache hits ${mpps(reference.cacheHitPps).trim()} Mpps vs ≥ 2 (${check(reference.cacheHitPps >= TARGETS.cacheHitPps)}), ` +
    `first packets ${mpps(reference.firstPacketPps).trim()} Mpps vs ≥ 0.5 (${check(reference.firstPacketPps >= TARGETS.firstPacketPps10k)}), ` +
    `compile ${reference.compileMs.toFixed(0)} ms vs ≤ 1000 (${check(reference.compileMs <= TARGETS.compileMs10k)})`);
}

main();
