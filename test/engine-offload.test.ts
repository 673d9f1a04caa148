// Which flows the engine hands to the kernel fast path, and when it takes them back, against a fake
// FlowOffload (flow/offload.ts) on crafted frames: an answered UDP flow both ways, a one-way one
// after ONE_WAY_OFFLOAD_PACKETS; TCP only once established, and back at FIN or RST; never an
// inspected (Modbus) flow or monitor mode's would-drop; a policy change re-decides every offloaded
// flow; a flow's end withdraws it; what the kernel forwarded lands in the rule counters. The lab
// proves the kernel side (test/fast-path.test.ts).

import t from 'tap';
import { Engine, ONE_WAY_OFFLOAD_PACKETS } from '../appliance/dataplane/engine';
import type { Flow } from '../appliance/dataplane/flow/flow';
import type { FlowOffload } from '../appliance/dataplane/flow/offload';
import { Side, Verdict } from '../appliance/dataplane/verdict';
import { loadPolicyText } from '../appliance/policy/load';
import type { CompiledPolicy } from '../appliance/policy/types';
import { CLIENT_MAC, frame, SERVER_MAC, type FrameSpec } from './lib/frames';

const C = '198.18.1.10';
const S = '198.18.1.100';

function policy(mode = 'enforce', udpAllowed = true): CompiledPolicy {
  const r = loadPolicyText(`version: 1
mode: ${mode}
default: deny
groups:
  client: [${C}]
  server: [${S}]
rules:
  - name: web
    from: client
    to: server
    service: [tcp/8080, ping${udpAllowed ? ', udp/5353' : ''}]
    action: allow
  - name: plc
    from: client
    to: server
    service: tcp/502
    action: allow
    modbus:
      functions: [read]
`, 'test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('\n'));
  return r.policy;
}

const out = (s: Partial<FrameSpec>): Buffer => frame({ src: C, dst: S, proto: 'tcp', ...s } as FrameSpec);
const back = (s: Partial<FrameSpec>): Buffer => frame({ src: S, dst: C, proto: 'tcp', srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);

/** Records what the engine asks; sync() hands over `pending` kernel packets/bytes once. */
class FakeOffload implements FlowOffload {
  offloads: { flow: Flow; side: Side; fromInitiator: boolean }[] = [];
  withdrawn: Flow[] = [];
  policyChanges = 0;
  pending = { packets: 0, bytes: 0 };

  offload(flow: Flow, _frame: Uint8Array, _length: number, side: Side, fromInitiator: boolean): void {
    flow.offloadedDirs |= fromInitiator ? 1 : 2;
    flow.offloadSlot = 0;
    this.offloads.push({ flow, side, fromInitiator });
  }

  sync(flow: Flow): boolean {
    if (this.pending.packets === 0) return false;
    flow.packetsOut += this.pending.packets;
    flow.bytesOut += this.pending.bytes;
    this.pending = { packets: 0, bytes: 0 };
    return true;
  }

  withdraw(flow: Flow): void {
    this.sync(flow);
    flow.offloadSlot = -1;
    flow.offloadedDirs = 0;
    this.withdrawn.push(flow);
  }

  policyChanged(): void {
    this.policyChanges++;
  }
}

function engineWith(p = policy()): { engine: Engine; fake: FakeOffload } {
  const engine = new Engine(p, 1);
  const fake = new FakeOffload();
  engine.offloads = fake;
  return { engine, fake };
}

function run(engine: Engine, f: Buffer, side: Side, now = 1000): number {
  return engine.process(f, f.length, side, now).verdict;
}

/** SYN, SYN-ACK and the initiator's ACK of a connection from `sport` to `dport`. */
function handshake(engine: Engine, sport: number, dport: number): void {
  run(engine, out({ sport, dport, flags: 'S', seq: 100 }), Side.Outside);
  run(engine, back({ sport: dport, dport: sport, flags: 'SA', seq: 500, ack: 101 }), Side.Inside);
  run(engine, out({ sport, dport, flags: 'A', seq: 101, ack: 501 }), Side.Outside);
}

const udpOut = out({ proto: 'udp', sport: 40000, dport: 5353, payload: [1, 2, 3, 4] });
const udpBack = back({ proto: 'udp', sport: 5353, dport: 40000, payload: [5, 6] });

t.test('an answered UDP flow is offloaded both ways, once each', async (t) => {
  const { engine, fake } = engineWith();
  run(engine, udpOut, Side.Outside);
  t.equal(fake.offloads.length, 0, 'not at its first datagram (unanswered)');
  run(engine, udpBack, Side.Inside);
  t.same(fake.offloads.map((o) => [o.side, o.fromInitiator]), [[Side.Inside, false]], 'the answer\'s direction at the answer');
  run(engine, udpOut, Side.Outside);
  run(engine, udpOut, Side.Outside);
  run(engine, udpBack, Side.Inside);
  t.same(fake.offloads.map((o) => [o.side, o.fromInitiator]), [[Side.Inside, false], [Side.Outside, true]], 'then the request\'s, and no more');
});

t.test(`a one-way UDP flow is offloaded after ${ONE_WAY_OFFLOAD_PACKETS} datagrams`, async (t) => {
  const { engine, fake } = engineWith();
  for (let i = 1; i < ONE_WAY_OFFLOAD_PACKETS; i++) run(engine, udpOut, Side.Outside);
  t.equal(fake.offloads.length, 0, `not after ${ONE_WAY_OFFLOAD_PACKETS - 1}`);
  run(engine, udpOut, Side.Outside);
  t.equal(fake.offloads.length, 1, `after ${ONE_WAY_OFFLOAD_PACKETS}`);
});

t.test('an answered ping (ICMP echo) flow is offloaded both ways', async (t) => {
  const { engine, fake } = engineWith();
  const request = out({ proto: 'icmp', icmpType: 8, icmpId: 7 });
  const reply = back({ proto: 'icmp', icmpType: 0, icmpId: 7 });
  run(engine, request, Side.Outside);
  t.equal(fake.offloads.length, 0, 'not the request (unanswered)');
  run(engine, reply, Side.Inside);
  run(engine, request, Side.Outside);
  t.same(fake.offloads.map((o) => o.fromInitiator), [false, true], 'the reply\'s direction, then the request\'s');
});

t.test('TCP: offloaded once established, taken back at FIN, never offloaded again', async (t) => {
  const { engine, fake } = engineWith();
  run(engine, out({ sport: 40001, dport: 8080, flags: 'S', seq: 100 }), Side.Outside);
  run(engine, back({ sport: 8080, dport: 40001, flags: 'SA', seq: 500, ack: 101 }), Side.Inside);
  t.equal(fake.offloads.length, 0, 'not during the handshake');
  run(engine, out({ sport: 40001, dport: 8080, flags: 'A', seq: 101, ack: 501 }), Side.Outside);
  t.equal(fake.offloads.length, 1, 'the initiator\'s direction at the handshake\'s last ACK (its third segment)');
  run(engine, back({ sport: 8080, dport: 40001, flags: 'A', seq: 501, ack: 101, payload: [1] }), Side.Inside);
  t.equal(fake.offloads.length, 2, 'the responder\'s at its next segment');
  t.equal(run(engine, out({ sport: 40001, dport: 8080, flags: 'FA', seq: 101, ack: 502 }), Side.Outside), Verdict.Forward, 'the FIN passes');
  t.equal(fake.withdrawn.length, 1, 'and brings the connection back');
  run(engine, back({ sport: 8080, dport: 40001, flags: 'A', seq: 502, ack: 102 }), Side.Inside);
  t.equal(fake.offloads.length, 2, 'a closing connection is not offloaded again');
});

t.test('a RST takes an offloaded connection back', async (t) => {
  const { engine, fake } = engineWith();
  handshake(engine, 40002, 8080);
  t.equal(fake.offloads.length, 1, 'offloaded');
  run(engine, back({ sport: 8080, dport: 40002, flags: 'R', seq: 501 }), Side.Inside);
  t.equal(fake.withdrawn.length, 1, 'taken back at the RST');
});

t.test('an inspected (Modbus) connection is never offloaded', async (t) => {
  const { engine, fake } = engineWith();
  handshake(engine, 40003, 502);
  run(engine, back({ sport: 502, dport: 40003, flags: 'A', seq: 501, ack: 101 }), Side.Inside);
  t.equal(fake.offloads.length, 0, 'every segment stays with its inspector');
});

t.test('monitor mode: a flow the policy would drop is never offloaded, an allowed one is', async (t) => {
  const { engine, fake } = engineWith(policy('monitor'));
  const denied = out({ proto: 'udp', sport: 40000, dport: 9999 });
  const deniedBack = back({ proto: 'udp', sport: 9999, dport: 40000 });
  run(engine, denied, Side.Outside);
  run(engine, deniedBack, Side.Inside);
  run(engine, denied, Side.Outside);
  t.equal(fake.offloads.length, 0, 'the would-drop flow stays, so every packet is counted as would-drop');
  run(engine, udpOut, Side.Outside);
  run(engine, udpBack, Side.Inside);
  t.equal(fake.offloads.length, 1, 'the allowed one goes');
});

t.test('a policy change re-decides offloaded flows: kept ones are offloaded again, denied ones end', async (t) => {
  const { engine, fake } = engineWith();
  run(engine, udpOut, Side.Outside);
  run(engine, udpBack, Side.Inside);
  run(engine, udpOut, Side.Outside);
  t.equal(fake.offloads.length, 2, 'offloaded both ways');
  engine.setPolicy(policy(), 2);
  t.equal(fake.policyChanges, 1, 'the fast path is told');
  run(engine, udpOut, Side.Outside);
  t.equal(fake.offloads.length, 3, 'still allowed: offloaded again at its next frame');
  engine.setPolicy(policy('enforce', false), 3);
  t.equal(run(engine, udpOut, Side.Outside), Verdict.Drop, 'no longer allowed: cut at its next frame');
  t.equal(fake.withdrawn.length, 1, 'and withdrawn');
});

t.test('what the kernel forwarded lands in the rule counters and keeps the flow alive; idle, it ends and is withdrawn', async (t) => {
  let now = 1000;
  const engine = new Engine(policy(), 1, { clock: { now: () => now } });
  const fake = new FakeOffload();
  engine.offloads = fake;
  run(engine, udpOut, Side.Outside, now);
  run(engine, udpBack, Side.Inside, now);
  const web = engine.policy.rules.find((r) => r.name === 'web')!.index;
  const udpIdle = engine.policy.flow.udpIdleMs;
  // Just before the idle timeout the kernel reports frames: the sweep makes the flow active again.
  now += udpIdle - 1000;
  fake.pending = { packets: 40, bytes: 40 * udpOut.length };
  engine.sweep(10, now);
  t.equal(engine.sweptRuleCounters().packets(web), 42, 'two the engine saw, 40 the kernel forwarded');
  t.equal(engine.sweptRuleCounters().bytes(web), 41 * udpOut.length + udpBack.length, 'and their bytes');
  now += 2000;
  engine.flows.purgeIdle();
  t.equal(engine.flows.size, 1, 'past the timeout counted from its last engine frame, alive: the kernel forwarded since');
  t.equal(fake.withdrawn.length, 0, 'and still offloaded');
  now += udpIdle + 1;
  engine.flows.purgeIdle();
  t.equal(engine.flows.size, 0, 'idle for the whole timeout: ended');
  t.equal(fake.withdrawn.length, 1, 'and withdrawn');
});
