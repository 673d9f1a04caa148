// The verdict pipeline on crafted frames: flow state, replies, reloads, monitor mode, fragments,
// ICMP errors and rejects. The lab tests prove the same against real hosts.

import t from 'tap';
import { Engine } from '../appliance/dataplane/engine';
import { Side, Verdict, type PacketResult } from '../appliance/dataplane/verdict';
import { DropReason, PortCounter } from '../appliance/dataplane/counters';
import { InspectVerdict, type AppInspector } from '../appliance/dataplane/inspect/inspector';
import { createInspectors, inspectionsFor } from '../appliance/dataplane/inspect/registry';
import { dropReasonNames, portCounterNames } from '../appliance/ipc/stats';
import { loadPolicyText } from '../appliance/policy/load';
import type { CompiledPolicy } from '../appliance/policy/types';
import { checksumOk, CLIENT_MAC, frame, ipv4TcpChecksumsOk, SERVER_MAC, type FrameSpec } from './lib/frames';

const C = '198.18.1.10';
const S = '198.18.1.100';
const C6 = '2001:2:0:1::10';
const S6 = '2001:2:0:1::100';

function policy(extra = '', mode = 'enforce', flows = ''): CompiledPolicy {
  const text = `version: 1
mode: ${mode}
default: deny
groups:
  client: [${C}, "${C6}"]
  server: [${S}, "${S6}"]
rules:
  - name: web
    from: client
    to: server
    service: [tcp/8080, udp/5353, ping]
    action: allow
  - name: refused
    from: client
    to: server
    service: [tcp/8081, udp/9000]
    action: reject
${extra}${flows}`;
  const r = loadPolicyText(text, 'test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('\n'));
  return r.policy;
}

/** From the client (outside port) to the server (inside port), and replies the other way. */
const out = (s: Partial<FrameSpec>): Buffer => frame({ src: C, dst: S, proto: 'tcp', ...s } as FrameSpec);
const back = (s: Partial<FrameSpec>): Buffer =>
  frame({ src: S, dst: C, proto: 'tcp', srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);

/** The result of the frame run last (the engine's reused instance). */
let last: PacketResult;

function run(engine: Engine, f: Buffer, side: Side, now = 1000): number {
  last = engine.process(f, f.length, side, now);
  return last.verdict;
}

t.test('counter indices and their published names are in step (counters.ts, ipc/stats.ts)', async (t) => {
  const snake = (key: string) => key.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  for (const [what, indices, names] of [['DropReason', DropReason, dropReasonNames], ['PortCounter', PortCounter, portCounterNames]] as const) {
    const entries = Object.entries(indices);
    t.equal(names.length, entries.length, `${what}: one name per index`);
    for (const [key, value] of entries) t.equal(names[value], snake(key), `${what}.${key} = ${value}`);
  }
  t.equal(dropReasonNames[DropReason.SpoofedSource], 'spoofed_source');
});

t.test('warm(): a pass over the last frame between batches changes nothing', async (t) => {
  // The same traffic through two engines, one warmed with each frame after it was decided (what
  // busy polling does while the ports are idle): verdicts, counters, flows and their ageing agree.
  const flows = 'flows:\n  udp-idle: 50ms\n  max-flows: 3\n';
  let clock = 1000;
  const engines = [new Engine(policy('', 'enforce', flows), 1, { clock: { now: () => clock } }),
    new Engine(policy('', 'enforce', flows), 1, { clock: { now: () => clock } })];
  const traffic: [Buffer, Side][] = [
    [out({ dport: 8080, flags: 'S' }), Side.Outside],
    [back({ sport: 8080, dport: 40000, flags: 'SA' }), Side.Inside],
    [out({ dport: 8080, flags: 'A' }), Side.Outside],
    [out({ proto: 'udp', sport: 5000, dport: 5353 }), Side.Outside],
    [back({ proto: 'udp', sport: 5353, dport: 5000 }), Side.Inside],
    [out({ proto: 'icmp', icmpType: 8, icmpId: 7 }), Side.Outside],
    [out({ dport: 22, flags: 'S' }), Side.Outside], // denied
    [Buffer.alloc(10), Side.Outside], // undecodable
  ];
  const verdicts: number[][] = [[], []];
  for (const [f, side] of traffic) {
    clock += 5;
    for (const [i, e] of engines.entries()) {
      verdicts[i].push(e.process(f, f.length, side, clock).verdict);
      if (i === 1) for (let k = 0; k < 3; k++) e.warm(f, f.length);
    }
  }
  t.same(verdicts[1], verdicts[0], 'the same verdicts');
  const state = (e: Engine) => ({ outside: e.counters[Side.Outside].snapshot(), inside: e.counters[Side.Inside].snapshot(),
    flows: { ...e.flows.counters }, size: e.flows.size, rule: [e.ruleTotals().packets(0), e.ruleTotals().bytes(0)] });
  t.same(state(engines[1]), state(engines[0]), 'the same counters and flow table');
  // Warming the UDP flow must not refresh it: it still ages out at its idle timeout.
  const udp = traffic[3][0];
  for (let k = 0; k < 10; k++) {
    clock += 10;
    engines[1].warm(udp, udp.length);
  }
  engines[1].flows.purgeIdle();
  t.equal(engines[1].flows.counters.expired, 1, 'the UDP flow expired although it was warmed all along');
  // Nor move it in the LRU order: a new flow in the full table evicts the same flow in both.
  const fresh = out({ proto: 'udp', sport: 6000, dport: 5353 });
  for (const e of engines) {
    e.flows.purgeIdle();
    e.process(fresh, fresh.length, Side.Outside, clock);
  }
  t.same(state(engines[1]).flows, state(engines[0]).flows, 'the same flows ended and evicted');
  t.doesNotThrow(() => engines[1].warm(Buffer.alloc(0), 0), 'no frame yet (a port that never received)');
});

t.test('TCP: SYN from the allowed side opens a flow, replies pass, RST ends it', async (t) => {
  const e = new Engine(policy('', 'enforce', 'flows:\n  tcp-closing-idle: 50ms\n'), 1);
  t.equal(run(e, out({ dport: 8080, flags: 'S' }), Side.Outside), Verdict.Forward, 'SYN allowed');
  t.equal(e.flows.size, 1, 'flow tracked');
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'SA' }), Side.Inside), Verdict.Forward, 'SYN-ACK passes');
  t.equal(run(e, out({ dport: 8080, flags: 'A' }), Side.Outside), Verdict.Forward, 'ACK passes');
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'PA', payload: [1, 2, 3] }), Side.Inside), Verdict.Forward);
  t.equal(e.ruleTotals().packets(0), 4, 'all counted on rule web');
  t.equal(run(e, out({ dport: 8080, flags: 'R' }), Side.Outside), Verdict.Forward, 'RST forwarded');
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'A' }), Side.Inside), Verdict.Forward, 'a segment in flight still passes');
  await new Promise((r) => setTimeout(r, 80));
  e.flows.purgeIdle();
  t.equal(e.flows.size, 0, 'the closing timeout ended the flow');
  t.equal(e.flows.counters.closed, 1, 'counted as closed, not idle');
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'A' }), Side.Inside), Verdict.Drop, 'nothing after that');
  t.equal(last.reason, DropReason.TcpNoFlow);
});

t.test('TCP: FIN both ways closes; a new SYN on the same ports is judged as a new connection', async (t) => {
  const e = new Engine(policy(), 1);
  run(e, out({ dport: 8080, flags: 'S' }), Side.Outside);
  run(e, back({ sport: 8080, dport: 40000, flags: 'SA' }), Side.Inside);
  run(e, out({ dport: 8080, flags: 'FA' }), Side.Outside);
  run(e, back({ sport: 8080, dport: 40000, flags: 'FA' }), Side.Inside);
  t.equal(run(e, out({ dport: 8080, flags: 'A' }), Side.Outside), Verdict.Forward, 'last ACK passes');
  t.equal(run(e, out({ dport: 8080, flags: 'S' }), Side.Outside), Verdict.Forward, 'new SYN starts again');
  t.equal(e.flows.counters.closed, 1, 'the old connection counted closed');
  t.equal(e.flows.counters.created, 2);
});

t.test('TCP: unsolicited SYN from the protected side and mid-stream segments are dropped', async (t) => {
  const e = new Engine(policy(), 1);
  t.equal(run(e, back({ sport: 40000, dport: 8080, flags: 'S' }), Side.Inside), Verdict.Drop, 'server may not open');
  t.equal(last.reason, DropReason.Policy);
  t.equal(last.rule, e.policy.rules.length - 1, 'decided by the default rule');
  t.equal(run(e, out({ dport: 8080, flags: 'A' }), Side.Outside), Verdict.Drop, 'ACK without flow');
  t.equal(last.reason, DropReason.TcpNoFlow);
  t.equal(run(e, out({ dport: 22, flags: 'S' }), Side.Outside), Verdict.Drop, 'port not allowed');
  t.equal(e.counters[Side.Outside].dropped[DropReason.Policy], 1);
  t.equal(e.flows.size, 0, 'denied traffic creates no flow');
});

t.test('TCP: pickup-established accepts mid-stream flows the policy allows (after a restart)', async (t) => {
  const e = new Engine(policy('', 'enforce', 'flows:\n  pickup-established: true\n'), 1);
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'PA' }), Side.Inside), Verdict.Forward, 'reply direction picked up');
  t.equal(run(e, out({ dport: 8080, flags: 'A' }), Side.Outside), Verdict.Forward, 'then both ways');
  t.equal(run(e, back({ sport: 40000, dport: 22, flags: 'A' }), Side.Inside), Verdict.Drop, 'not allowed either way');
});

t.test('a flow is pinned to its ports: the same tuple arriving on the wrong port is dropped', async (t) => {
  const e = new Engine(policy(), 1);
  run(e, out({ dport: 8080, flags: 'S' }), Side.Outside);
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'SA' }), Side.Outside), Verdict.Drop);
  t.equal(last.reason, DropReason.WrongPort);
});

t.test('UDP and ICMP echo: replies pass within the flow; unsolicited replies do not', async (t) => {
  const e = new Engine(policy(), 1);
  t.equal(run(e, out({ proto: 'udp', sport: 5000, dport: 5353 }), Side.Outside), Verdict.Forward);
  t.equal(run(e, back({ proto: 'udp', sport: 5353, dport: 5000 }), Side.Inside), Verdict.Forward, 'UDP reply');
  t.equal(run(e, back({ proto: 'udp', sport: 5353, dport: 5001 }), Side.Inside), Verdict.Drop, 'other port: no flow');
  t.equal(run(e, out({ proto: 'icmp', icmpType: 8, icmpId: 9 }), Side.Outside), Verdict.Forward, 'echo request');
  t.equal(run(e, back({ proto: 'icmp', icmpType: 0, icmpId: 9 }), Side.Inside), Verdict.Forward, 'echo reply');
  t.equal(run(e, back({ proto: 'icmp', icmpType: 0, icmpId: 10 }), Side.Inside), Verdict.Drop, 'reply to nothing');
  t.equal(run(e, back({ proto: 'icmp', icmpType: 8, icmpId: 11 }), Side.Inside), Verdict.Drop, 'server may not ping');
});

t.test('IPv6: TCP flow both ways, ICMPv6 echo, neighbour discovery always passes', async (t) => {
  const e = new Engine(policy(), 1);
  t.equal(run(e, frame({ src: C6, dst: S6, proto: 'tcp', dport: 8080, flags: 'S' }), Side.Outside), Verdict.Forward);
  t.equal(run(e, frame({ src: S6, dst: C6, proto: 'tcp', sport: 8080, dport: 40000, flags: 'SA' }), Side.Inside), Verdict.Forward);
  t.equal(run(e, frame({ src: C6, dst: S6, proto: 'icmp', icmpType: 128 }), Side.Outside), Verdict.Forward);
  t.equal(run(e, frame({ src: S6, dst: C6, proto: 'icmp', icmpType: 129 }), Side.Inside), Verdict.Forward);
  t.equal(run(e, frame({ src: S6, dst: 'ff02::1:ff00:10', proto: 'icmp', icmpType: 135 }), Side.Inside), Verdict.Forward, 'NS');
  t.equal(run(e, frame({ src: S6, dst: C6, proto: 'icmp', icmpType: 136 }), Side.Inside), Verdict.Forward, 'NA');
});

t.test('802.1Q: the VLAN is part of the flow key', async (t) => {
  const e = new Engine(policy(), 1);
  t.equal(run(e, out({ dport: 8080, flags: 'S', vlan: 100 }), Side.Outside), Verdict.Forward);
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'SA', vlan: 100 }), Side.Inside), Verdict.Forward);
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'A', vlan: 200 }), Side.Inside), Verdict.Drop, 'other VLAN');
});

t.test('reject: TCP gets a valid RST back, UDP an ICMP administratively prohibited', async (t) => {
  const e = new Engine(policy(), 1);
  const syn = out({ dport: 8081, flags: 'S', seq: 5000 });
  t.equal(run(e, syn, Side.Outside), Verdict.Reject);
  const rst = last.answer.subarray(0, last.answerLength);
  t.same([...rst.subarray(0, 6)], CLIENT_MAC, 'back to the sender');
  t.same([...rst.subarray(6, 12)], SERVER_MAC, 'from the address it tried to reach');
  t.equal(rst[14 + 9], 6, 'TCP');
  t.same([...rst.subarray(14 + 12, 14 + 16)], [198, 18, 1, 100], 'IP source is the server');
  const tcp = 34;
  t.equal(rst.readUInt16BE(tcp), 8081, 'source port');
  t.equal(rst[tcp + 13], 0x14, 'RST|ACK');
  t.equal(rst.readUInt32BE(tcp + 8), 5001, 'acks the SYN');
  t.ok(checksumOk(rst, 14, 34), 'IPv4 header checksum');
  const pseudo = [...rst.subarray(26, 34)].reduce((s, b, i) => s + (i % 2 === 0 ? b << 8 : b), 6 + 20);
  t.ok(checksumOk(rst, tcp, tcp + 20, pseudo), 'TCP checksum');
  t.equal(run(e, out({ proto: 'udp', dport: 9000 }), Side.Outside), Verdict.Reject);
  const icmp = last.answer.subarray(0, last.answerLength);
  t.equal(icmp[14 + 9], 1, 'ICMP');
  t.same([icmp[34], icmp[35]], [3, 13], 'destination unreachable, administratively prohibited');
  t.ok(checksumOk(icmp, 34, last.answerLength), 'ICMP checksum');
  t.equal(run(e, out({ dport: 8081, flags: 'R' }), Side.Outside), Verdict.Drop, 'never answer a RST');
});

t.test('reload: flows still allowed keep going, flows now denied are cut at their next packet', async (t) => {
  const e = new Engine(policy(), 1);
  run(e, out({ dport: 8080, flags: 'S' }), Side.Outside);
  run(e, out({ proto: 'udp', sport: 5000, dport: 5353 }), Side.Outside);
  const narrowed = loadPolicyText(`version: 1
default: deny
rules:
  - name: web
    from: ${C}
    to: ${S}
    service: tcp/8080
    action: allow
`, 'narrow.yaml');
  if (!narrowed.ok) throw new Error('narrow policy refused');
  e.setPolicy(narrowed.policy, 2);
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'SA' }), Side.Inside), Verdict.Forward, 'TCP flow survives');
  t.equal(run(e, back({ proto: 'udp', sport: 5353, dport: 5000 }), Side.Inside), Verdict.Drop, 'UDP flow cut');
  t.equal(last.reason, DropReason.FlowCut);
  t.equal(e.flows.counters.cut, 1);
  t.equal(e.ruleTotals().packets(0) >= 2, true, 'counters of rule web carried over by name');
});

t.test('rule totals: live flows, ended flows and lone packets are each counted once, across a reload', async (t) => {
  const e = new Engine(policy(), 1);
  const syn = out({ dport: 8080, flags: 'S' });
  const synAck = back({ sport: 8080, dport: 40000, flags: 'SA' });
  const udp = out({ proto: 'udp', sport: 5000, dport: 5353 });
  run(e, syn, Side.Outside);
  run(e, synAck, Side.Inside);
  run(e, udp, Side.Outside);
  run(e, out({ dport: 22, flags: 'S' }), Side.Outside); // default deny, no flow
  run(e, out({ proto: 'udp', sport: 5001, dport: 9000 }), Side.Outside); // rule refused: rejected, no flow
  let totals = e.ruleTotals();
  t.same([totals.packets(0), totals.flows(0), totals.bytes(0)], [3, 2, syn.length + synAck.length + udp.length],
    'web: 3 packets in 2 flows');
  t.same([totals.packets(1), totals.flows(1)], [1, 0], 'refused: the lone packet, no flow');
  t.same([totals.packets(2), totals.flows(2)], [1, 0], 'default: the lone packet');
  t.equal(e.ruleTotals().packets(0), 3, 'reading again adds nothing');

  run(e, out({ dport: 8080, flags: 'R' }), Side.Outside);
  run(e, synAck, Side.Inside);
  t.equal(e.ruleTotals().packets(0), 5, 'packets after a read are added once');

  // The new policy puts a rule in front: "web" moves from index 0 to 1 and keeps its counts.
  e.setPolicy(reordered(), 2);
  totals = e.ruleTotals();
  t.same([totals.packets(1), totals.flows(1)], [5, 2], 'web keeps its counts under its new index');
  t.same([totals.packets(0), totals.flows(0)], [0, 0], 'the new first rule starts at zero');
  run(e, back({ proto: 'udp', sport: 5353, dport: 5000 }), Side.Inside);
  t.equal(e.ruleTotals().packets(1), 6, 'a flow redecided after the reload counts on the new index');
  t.equal(e.ruleTotals().flows(1), 2, 'and is not counted as a new flow');
});

function reordered(): CompiledPolicy {
  const r = loadPolicyText(`version: 1
default: deny
rules:
  - name: first
    from: ${S}
    to: ${C}
    service: tcp/1
    action: allow
  - name: web
    from: ${C}
    to: ${S}
    service: [tcp/8080, udp/5353]
    action: allow
`, 'reordered.yaml');
  if (!r.ok) throw new Error('reordered policy refused');
  return r.policy;
}

t.test('monitor mode forwards everything and counts what it would drop', async (t) => {
  const e = new Engine(policy('', 'monitor'), 1);
  t.equal(run(e, out({ dport: 22, flags: 'S' }), Side.Outside), Verdict.Forward);
  t.equal(run(e, back({ sport: 22, dport: 40000, flags: 'SA' }), Side.Inside), Verdict.Forward);
  t.equal(run(e, out({ dport: 8081, flags: 'S' }), Side.Outside), Verdict.Forward, 'reject rule: no RST in monitor');
  t.equal(e.counters[Side.Outside].port[PortCounter.MonitorWouldDrop], 2);
  t.equal(e.counters[Side.Inside].port[PortCounter.MonitorWouldDrop], 1, 'reply of a would-drop flow');
  t.equal(e.counters[Side.Outside].port[PortCounter.RejectsSent], 0);
});

t.test('fragments follow the verdict of their first fragment', async (t) => {
  const e = new Engine(policy(), 1);
  const first = out({ proto: 'udp', sport: 5000, dport: 5353, moreFragments: true, ipId: 77, payload: Array(40).fill(1) });
  t.equal(run(e, first, Side.Outside), Verdict.Forward, 'first fragment allowed');
  const later = out({ proto: 'udp', fragOffset: 48, ipId: 77, payload: Array(16).fill(2) });
  t.equal(run(e, later, Side.Outside), Verdict.Forward, 'later fragment follows');
  const orphan = out({ proto: 'udp', fragOffset: 48, ipId: 78 });
  t.equal(run(e, orphan, Side.Outside), Verdict.Drop, 'no first fragment seen');
  t.equal(last.reason, DropReason.FragmentNoFirst);
  const deniedFirst = out({ proto: 'udp', sport: 5000, dport: 22, moreFragments: true, ipId: 79, payload: Array(40).fill(1) });
  t.equal(run(e, deniedFirst, Side.Outside), Verdict.Drop);
  t.equal(run(e, out({ proto: 'udp', fragOffset: 48, ipId: 79 }), Side.Outside), Verdict.Drop, 'follows a drop too');
});

t.test('ICMP errors pass when they quote an allowed flow, not otherwise', async (t) => {
  const e = new Engine(policy(), 1);
  const request = out({ proto: 'udp', sport: 5000, dport: 5353 });
  run(e, request, Side.Outside);
  // Port unreachable from the server, quoting the client's datagram (IP header + 8 bytes).
  const error = (quoted: Buffer) => back({ proto: 'icmp', icmpType: 3, icmpCode: 3, icmpId: 0, payload: [...quoted.subarray(14, 42)] });
  t.equal(run(e, error(request), Side.Inside), Verdict.Forward, 'error about the allowed flow');
  const unrelated = out({ proto: 'udp', sport: 6000, dport: 22 });
  t.equal(run(e, error(unrelated), Side.Inside), Verdict.Drop, 'error about nothing we forwarded');
  t.equal(run(e, back({ proto: 'icmp', icmpType: 3, icmpCode: 3, icmpId: 0, payload: [...request.subarray(14, 42)], srcMac: CLIENT_MAC }), Side.Outside),
    Verdict.Drop, 'error arriving on the port the quoted packet came from');
});

t.test('ARP passes; other EtherTypes only when l2.allow names them', async (t) => {
  const e = new Engine(policy('l2:\n  allow: [lldp]\n'), 1);
  const l2 = (type: number) => {
    const f = Buffer.alloc(60);
    f.set(SERVER_MAC, 0);
    f.set(CLIENT_MAC, 6);
    f.writeUInt16BE(type, 12);
    return f;
  };
  const arp = l2(0x0806);
  arp.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
  t.equal(run(e, arp, Side.Outside), Verdict.Forward, 'ARP');
  t.equal(run(e, l2(0x88cc), Side.Outside), Verdict.Forward, 'LLDP allowed by the policy');
  t.equal(run(e, l2(0x88b5), Side.Outside), Verdict.Drop, 'unknown EtherType');
  t.equal(last.reason, DropReason.L2);
});

t.test('malformed frames end as a named decode error and a drop, never a throw', async (t) => {
  const e = new Engine(policy(), 1);
  const good = out({ dport: 8080, flags: 'S' });
  for (let len = 0; len < good.length; len++) {
    const verdict = e.process(good, len, Side.Outside, 1000).verdict;
    t.ok(verdict === Verdict.Drop || verdict === Verdict.Forward, `length ${len}`);
  }
  const total = e.counters[Side.Outside].decodeErrors.reduce((a, b) => a + b, 0);
  t.ok(total > 0, 'decode errors counted');
});

t.test('application-layer slot: a rule without an app-layer block has no inspector', async (t) => {
  t.same(createInspectors().map((i) => i.protocol), ['modbus'], 'the registered inspectors');
  t.same(inspectionsFor(policy(), createInspectors()), [null, null, null], 'no rule has a block');
});

t.test('application-layer slot: a claimed flow\'s payload reaches its inspector, which may drop or reset', async (t) => {
  const seen: Array<{ offset: number; length: number; fromInitiator: boolean; seq: number; first: number }> = [];
  let opened = 0;
  let closed = 0;
  const inspector: AppInspector<{ messages: number }, string> = {
    protocol: 'test',
    reasons: ['function not allowed', 'write refused'],
    holdReasons: ['later'],
    blockOf: (rule) => (rule.name === 'web' ? 'block' : null),
    claims: (flow) => (flow.initiatorIsA ? flow.portB : flow.portA) === 8080,
    open: () => {
      opened++;
      return { messages: 0 };
    },
    rebind: () => undefined,
    inspect(state, segment, out) {
      if (segment.length === 0) return InspectVerdict.Forward;
      state.messages++;
      seen.push({ offset: segment.offset, length: segment.length, fromInitiator: segment.fromInitiator, seq: segment.seq,
        first: segment.frame[segment.offset] });
      const first = segment.frame[segment.offset];
      if (first === 0xff || first === 0xfe) {
        out.clear();
        out.reasonIndex = first === 0xff ? 0 : 1;
        out.reason = inspector.reasons[out.reasonIndex];
        out.onwardSeq = segment.seq;
        return first === 0xff ? InspectVerdict.Drop : InspectVerdict.Reset;
      }
      if (first === 0xfd) {
        out.clear();
        out.reasonIndex = 0;
        out.reason = 'later';
        return InspectVerdict.Hold;
      }
      return InspectVerdict.Forward;
    },
    functionName: (code) => String(code),
    functionCounts: () => new Uint32Array(256),
    unitsSeen: () => new Uint8Array(256),
    close: () => void closed++,
  };
  const p = policy('', 'enforce', 'flows:\n  tcp-closing-idle: 20ms\n');
  const e = new Engine(p, 1, { inspectors: [inspector as AppInspector] });
  t.equal(run(e, out({ dport: 8080, flags: 'S' }), Side.Outside), Verdict.Forward, 'SYN: no payload, nothing to inspect');
  t.equal(opened, 1, 'the flow was claimed when it started');
  t.equal(run(e, out({ dport: 8080, flags: 'PA', seq: 1001, payload: [1, 2, 3] }), Side.Outside), Verdict.Forward);
  t.equal(run(e, back({ sport: 8080, dport: 40000, flags: 'PA', seq: 7000, payload: [4, 5] }), Side.Inside), Verdict.Forward);
  t.same(seen, [
    { offset: 14 + 20 + 20, length: 3, fromInitiator: true, seq: 1001, first: 1 },
    { offset: 14 + 20 + 20, length: 2, fromInitiator: false, seq: 7000, first: 4 },
  ], 'payload offset and length in the frame, direction, sequence number');
  t.equal(run(e, out({ dport: 8080, flags: 'PA', seq: 1004, payload: [0xfd] }), Side.Outside), Verdict.Drop, 'inspector holds');
  t.same([last.reason, last.inspectorReason], [DropReason.InspectHeld, 'later'], 'held, not a violation');
  t.equal(run(e, out({ dport: 8080, flags: 'PA', seq: 1004, payload: [0xff] }), Side.Outside), Verdict.Drop, 'inspector drops');
  t.same([last.reason, last.rule, last.inspectorReason], [DropReason.Inspect, 0, 'function not allowed'], 'under the flow\'s rule, with its reason');
  t.equal(run(e, out({ dport: 8080, flags: 'PA', seq: 1005, ack: 7002, payload: [0xfe] }), Side.Outside), Verdict.Reject, 'inspector resets');
  t.equal(last.answer[14 + 20 + 13] & 0x04, 0x04, 'the answer is a RST');
  t.equal(last.answer.readUInt32BE(14 + 20 + 4), 7002, 'to the sender, at the sequence number it acknowledged');
  t.equal(last.onwardLength, 14 + 20 + 20, 'and a RST onward to the receiver');
  t.same([last.onward[14 + 20 + 13], last.onward.readUInt32BE(14 + 20 + 4)], [0x14, 1005], 'RST+ACK at the byte the receiver expects');
  t.ok(ipv4TcpChecksumsOk(last.onward), 'with good checksums');
  const snap = e.inspectCounters[0].snapshot();
  t.same(snap, { flows: 1, active: 1, violations: { 'function not allowed': 1, 'write refused': 1 }, held: { later: 1 } }, 'counted by reason');
  t.equal(e.ruleTotals().violations(0), 2, 'and per rule');
  t.equal(run(e, out({ dport: 8080, flags: 'PA', seq: 1006, payload: [9] }), Side.Outside), Verdict.Forward, 'the next message is judged again');
  t.equal(run(e, out({ proto: 'udp', sport: 5000, dport: 5353 }), Side.Outside), Verdict.Forward);
  t.equal(opened, 1, 'a flow the inspector does not claim is never inspected');
  run(e, out({ dport: 8080, flags: 'R' }), Side.Outside);
  await new Promise((r) => setTimeout(r, 50));
  e.flows.purgeIdle();
  t.equal(closed, 1, 'its state is closed when the flow ends');
});

t.test('flow table: new flows beyond the embryonic budget early-drop the oldest unanswered one, never an answered one', async (t) => {
  const e = new Engine(policy('', 'enforce', 'flows:\n  max-flows: 1000\n'), 1);
  const budget = e.flows.embryonicBudget;
  t.equal(budget, 8192, 'the floor: a quarter of 1000 would leave too little room for handshakes');
  run(e, out({ proto: 'udp', sport: 5000, dport: 5353 }), Side.Outside);
  run(e, back({ proto: 'udp', sport: 5353, dport: 5000 }), Side.Inside);
  t.equal(e.flows.counters.embryonic, 0, 'the answered UDP flow is not embryonic');
  for (let i = 0; i < budget + 10; i++) run(e, out({ sport: 10_000 + i, dport: 8080, flags: 'S' }), Side.Outside);
  t.equal(e.flows.counters.earlyDropped, 10, 'the SYNs beyond the budget each dropped one');
  t.equal(e.flows.counters.embryonic, budget);
  t.equal(e.flows.counters.evicted, 0, 'no least-recently-used eviction');
  t.equal(run(e, back({ sport: 8080, dport: 10_000, flags: 'SA' }), Side.Inside), Verdict.Drop, 'the oldest SYN was dropped');
  t.equal(last.reason, DropReason.TcpNoFlow);
  t.equal(run(e, back({ sport: 8080, dport: 10_010, flags: 'SA' }), Side.Inside), Verdict.Forward, 'the next one is kept');
  t.equal(run(e, back({ proto: 'udp', sport: 5353, dport: 5000 }), Side.Inside), Verdict.Forward, 'the answered flow is kept');
});

t.test('flow table: a picked-up flow is answered once both directions were seen', async (t) => {
  const e = new Engine(policy('', 'enforce', 'flows:\n  pickup-established: true\n'), 1);
  run(e, back({ sport: 8080, dport: 40000, flags: 'PA' }), Side.Inside);
  run(e, back({ sport: 8080, dport: 40000, flags: 'PA' }), Side.Inside);
  t.equal(e.flows.counters.embryonic, 1, 'one direction only: still embryonic');
  t.equal(run(e, out({ dport: 8080, flags: 'A' }), Side.Outside), Verdict.Forward);
  t.equal(e.flows.counters.embryonic, 0, 'both directions: answered');
});

t.test('a super-frame counts the bytes its segments carried on the wire', async (t) => {
  const e = new Engine(policy(), 1);
  run(e, out({ dport: 8080, flags: 'S', seq: 1000 }), Side.Outside);
  run(e, back({ sport: 8080, dport: 40000, flags: 'SA', seq: 7000, ack: 1001 }), Side.Inside);
  run(e, out({ dport: 8080, flags: 'A', seq: 1001, ack: 7001 }), Side.Outside);
  const before = [...e.flows.flows()][0].bytesOut;
  const rxBefore = e.counters[Side.Outside].port[PortCounter.RxBytes];
  // Three 1000-byte segments as one frame: 14 + 20 + 20 header bytes and 3000 of payload.
  const superFrame = out({ dport: 8080, flags: 'PA', seq: 1001, ack: 7001, payload: Array(3000).fill(7) });
  last = e.process(superFrame, superFrame.length, Side.Outside, 1000, 3);
  t.equal(last.verdict, Verdict.Forward);
  t.equal([...e.flows.flows()][0].bytesOut - before, superFrame.length + 2 * 54, 'the frame and the headers of the two segments it stands for');
  t.equal(e.counters[Side.Outside].port[PortCounter.RxBytes] - rxBefore, superFrame.length, 'the port counts the frame it received');
});
