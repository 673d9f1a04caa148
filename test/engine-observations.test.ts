// Observations through the whole engine on crafted frames: sightings only where the sighting stage
// looks (a flow's first packet from each end, ARP, denied packets, identity frames; never an
// established flow's packets), conversation deltas from the flow table (flows begun, packets and
// bytes since the previous drain, a long-lived flow reporting in every interval, the last delta when
// it ends), Modbus function counts on tcp/502 flows without a block (observed, never judged: no
// hold, no drop), device identification answers, LLDP and DHCP identities, and the bounds.

import t from 'tap';
import { Engine, UNANSWERED_REPORT_MS } from '../appliance/dataplane/engine';
import { IDENTITY_DECODES, IDENTITY_KEYS, Observations } from '../appliance/dataplane/events/observations';
import { Side, Verdict } from '../appliance/dataplane/verdict';
import { loadPolicyText } from '../appliance/policy/load';
import type { CompiledPolicy } from '../appliance/policy/types';
import type { ObservationsMessage } from '../appliance/ipc/messages';
import { messageProblem } from '../appliance/ipc/validate';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import { CLIENT_MAC, frame, SERVER_MAC, type FrameSpec } from './lib/frames';

const C = '198.18.1.10';
const S = '198.18.1.100';
const CMAC = '02:00:00:00:00:10';
const SMAC = '02:00:00:00:00:64';

function policy(mode = 'enforce', extra = ''): CompiledPolicy {
  const r = loadPolicyText(`version: 1
mode: ${mode}
default: deny
groups:
  hmi: [${C}]
  plc: [${S}]
rules:
  - name: modbus
    from: hmi
    to: plc
    service: tcp/502
    action: allow
  - name: dns
    from: hmi
    to: plc
    service: udp/53
    action: allow
  - name: ping
    from: hmi
    to: plc
    service: icmp/8
    action: allow
${extra}`, 'test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.policy;
}

function setup(p = policy()) {
  const engine = new Engine(p, 1);
  const obs = new Observations({ ruleName: (_g, i) => engine.policy.rules[i]?.name ?? `#${i}` });
  engine.setObservations(obs);
  const drain = (): ObservationsMessage | null => {
    const m = obs.drain(engine.flows.flows(), (f) => engine.appCountsOf(f));
    if (m !== null) {
      // What goes over the socket passes management's schema.
      const problem = messageProblem(JSON.parse(JSON.stringify(m)), 'dataplane');
      if (problem !== null) throw new Error(problem);
    }
    return m;
  };
  const run = (fromClient: boolean, s: Partial<FrameSpec>, now = 1000) => {
    const f = fromClient
      ? frame({ src: C, dst: S, proto: 'tcp', ...s } as FrameSpec)
      : frame({ src: S, dst: C, proto: 'tcp', srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);
    return engine.process(f, f.length, fromClient ? Side.Outside : Side.Inside, now).verdict;
  };
  return { engine, obs, drain, run };
}

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const adu = (tid: number, pdu: number[], unit = 1): number[] => [...u16(tid), 0, 0, ...u16(pdu.length + 1), unit, ...pdu];
const read = (tid: number): number[] => adu(tid, [3, 0, 0, 0, 10]);
const readReply = (tid: number): number[] => adu(tid, [3, 20, ...Array(20).fill(0)]);
const write = (tid: number): number[] => adu(tid, [6, 0, 1, 0, 1]);

/** A TCP connection C:sport → S:port with both sequence numbers tracked. */
function tcp(run: ReturnType<typeof setup>['run'], sport = 40000, port = 502) {
  let cs = 1001;
  let ss = 9001;
  const c = { sport, dport: port };
  const sv = { sport: port, dport: sport };
  return {
    open(now = 1000) {
      run(true, { ...c, flags: 'S', seq: 1000 }, now);
      run(false, { ...sv, flags: 'SA', seq: 9000, ack: 1001 }, now);
      return run(true, { ...c, flags: 'A', seq: cs, ack: ss }, now);
    },
    client(payload: number[], now = 1000) {
      const v = run(true, { ...c, flags: 'PA', seq: cs, ack: ss, payload }, now);
      cs += payload.length;
      return v;
    },
    server(payload: number[], now = 1000) {
      const v = run(false, { ...sv, flags: 'PA', seq: ss, ack: cs, payload }, now);
      ss += payload.length;
      return v;
    },
    /** The client's segment `skip` bytes beyond where it should be (a gap); the client goes on after it. */
    ahead(payload: number[], skip: number, now = 1000) {
      const v = run(true, { ...c, flags: 'PA', seq: cs + skip, ack: ss, payload }, now);
      cs += skip + payload.length;
      return v;
    },
    /** A retransmission of the client's last `back` bytes. */
    again(payload: number[], back: number, now = 1000) {
      return run(true, { ...c, flags: 'PA', seq: cs - back, ack: ss, payload }, now);
    },
    reset(now = 1000) {
      return run(true, { ...c, flags: 'RA', seq: cs, ack: ss }, now);
    },
  };
}

t.test('sightings: first packets from each end, never an established flow', async (t) => {
  const { drain, run } = setup();
  const conn = tcp(run);
  conn.open();
  for (let i = 0; i < 50; i++) {
    conn.client(read(i));
    conn.server(readReply(i));
  }
  const m = drain();
  t.ok(m);
  t.same(m?.sightings.map((s) => [s.mac, s.address, s.side, s.frames]).sort(), [
    [CMAC, C, 'outside', 1],
    [SMAC, S, 'inside', 1],
  ], 'one frame each: the SYN and the SYN-ACK');
  // Another interval of the same flow: no sightings, only its conversation delta.
  conn.client(read(99));
  const next = drain();
  t.same(next?.sightings, []);
  t.equal(next?.conversations.length, 1);
});

t.test('sightings: ARP (a probe has no address), denied packets, VLAN', async (t) => {
  const { engine, drain } = setup();
  const arp = (senderIp: number[], mac: number[]): Buffer => Buffer.from([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...mac, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, ...mac, ...senderIp, 0, 0, 0, 0, 0, 0, 198, 18, 1, 1,
    ...Array(18).fill(0)]);
  engine.process(arp([198, 18, 1, 10], CLIENT_MAC), 60, Side.Outside, 1000);
  engine.process(arp([0, 0, 0, 0], SERVER_MAC), 60, Side.Inside, 1001);
  // Denied (no rule from the server to the client on tcp/22), three times; tagged.
  for (let i = 0; i < 3; i++) {
    const f = frame({ src: S, dst: C, proto: 'tcp', sport: 40000 + i, dport: 22, flags: 'S', srcMac: SERVER_MAC, vlan: 7 });
    t.equal(engine.process(f, f.length, Side.Inside, 1002 + i).verdict, Verdict.Drop);
  }
  const m = drain();
  t.same(m?.sightings.map((s) => [s.mac, s.address, s.vlan, s.side, s.frames]).sort(), [
    [CMAC, C, 0, 'outside', 1],
    [SMAC, '', 0, 'inside', 1],
    [SMAC, S, 7, 'inside', 3],
  ]);
  const denied = m?.sightings.find((s) => s.vlan === 7);
  t.match(denied, { firstSeen: 1002, lastSeen: 1004 });
  t.same(m?.conversations, [], 'denied traffic is not a conversation');
});

t.test('conversations: flows begun, deltas per interval, a long-lived flow, the last delta at its end', async (t) => {
  const { drain, run } = setup();
  // Three DNS flows from different client ports: one conversation, three flows.
  for (const sport of [5001, 5002, 5003]) {
    run(true, { proto: 'udp', sport, dport: 53, payload: [1, 2, 3, 4] }, 2000);
    run(false, { proto: 'udp', sport: 53, dport: sport, payload: [5, 6, 7, 8, 9] }, 2001);
  }
  const poll = tcp(run, 41000);
  poll.open(2000);
  const first = drain();
  const dns = first?.conversations.find((c) => c.port === 53);
  t.match(dns, { proto: 'udp', client: C, clientMac: CMAC, server: S, serverMac: SMAC, clientSide: 'outside', rule: 'dns', verdict: 'allow',
    flows: 3, packets: 6, vlan: 0, firstSeen: 2000, lastSeen: 2001 });
  t.equal(dns?.bytes, 3 * 60 * 2, 'padded to 60 bytes each');
  const modbus = first?.conversations.find((c) => c.port === 502);
  t.match(modbus, { proto: 'tcp', flows: 1, packets: 3, rule: 'modbus' });

  // The poll runs on over four more intervals: each reports only its own packets, flows 0.
  for (let interval = 1; interval <= 4; interval++) {
    for (let i = 0; i < interval; i++) {
      poll.client(read(i), 2000 + interval * 5000);
      poll.server(readReply(i), 2000 + interval * 5000);
    }
    const m = drain();
    t.equal(m?.conversations.length, 1, `interval ${interval}: only the poll, the DNS flows were quiet`);
    t.match(m?.conversations[0], { port: 502, flows: 0, packets: 2 * interval, lastSeen: 2000 + interval * 5000 });
  }
  t.equal(drain(), null, 'a quiet interval says nothing');
  // The poll ends (RST from the client): its last packets come with the next drain, though the flow is gone.
  poll.client(read(7), 30000);
  poll.reset(30001);
  const last = drain();
  t.match(last?.conversations, [{ port: 502, flows: 0, packets: 2 }]);
});

t.test('the sweep: the table walked in slices, rule counters and conversations from it, flows leaving mid-pass', async (t) => {
  const { engine, obs, run } = setup();
  const sports = [6001, 6002, 6003, 6004, 6005, 6006, 6007];
  for (const sport of sports) {
    run(true, { proto: 'udp', sport, dport: 53, payload: [1] }, 3000);
    run(false, { proto: 'udp', sport: 53, dport: sport, payload: [2] }, 3001);
  }
  t.equal(engine.sweptRuleCounters().flows(1), 0, 'nothing settled before a sweep');
  engine.sweep(3, 3010);
  t.equal(engine.sweptRuleCounters().flows(1), 3, 'a slice settles its flows only');
  // A flow leaves mid-pass (TCP RST of a Modbus poll): the table's list stays whole.
  const poll = tcp(run, 42000);
  poll.open(3002);
  poll.reset(3003);
  engine.sweep(3, 3010);
  engine.sweep(3, 3010);
  t.equal(engine.sweptRuleCounters().flows(1), 7, 'one pass reaches every flow');
  t.equal(engine.sweptRuleCounters().packets(1), 14);
  const m = obs.drain();
  t.match(m?.conversations.find((c) => c.port === 53), { flows: 7, packets: 14 }, 'the drain sends what the sweep reported, walking nothing');
  t.match(m?.conversations.find((c) => c.port === 502), { flows: 1 }, 'and the flow that ended');
  engine.sweep(100, 3010);
  t.equal(obs.drain(), null, 'a further pass over quiet flows reports nothing');
  t.equal(engine.ruleTotals().packets(1), 14, 'the full walk agrees');

  // Not answered yet: left for later (answered, ended, or old enough for one-way traffic).
  run(true, { proto: 'udp', sport: 6100, dport: 53, payload: [1] }, 4000);
  engine.sweep(100, 4010);
  t.same(obs.drain()?.conversations, [], 'an unanswered flow is not reported at once (its server MAC is not known yet; its client is sighted)');
  engine.sweep(100, 4000 + UNANSWERED_REPORT_MS);
  t.match(obs.drain()?.conversations, [{ port: 53, flows: 1, packets: 1, serverMac: '' }], 'one-way traffic is reported once old enough');
});

t.test('conversations: ICMP echo by request type; monitor verdict', async (t) => {
  const { drain, run } = setup(policy('monitor'));
  run(true, { proto: 'icmp', icmpType: 8, icmpId: 77 }, 1000);
  run(false, { proto: 'icmp', icmpType: 0, icmpId: 77 }, 1001);
  // Not allowed (tcp/80): passes in monitor mode only.
  run(true, { sport: 42000, dport: 80, flags: 'S', seq: 5 }, 1002);
  const m = drain();
  t.match(m?.conversations.find((c) => c.proto === 'icmp'), { port: 8, flows: 1, packets: 2, verdict: 'allow', rule: 'ping', serverMac: SMAC });
  t.match(m?.conversations.find((c) => c.port === 80), { flows: 1, packets: 1, verdict: 'monitor', serverMac: '' });
});

t.test('Modbus functions without a block: observed, never judged', async (t) => {
  // A learning policy: monitor mode, a catch-all rule without a block.
  const { engine, drain, run } = setup(policy('monitor', `  - name: learn-all
    from: any
    to: any
    service: tcp/1-65535
    action: deny
`));
  const conn = tcp(run, 43000);
  t.equal(conn.open(), Verdict.Forward);
  for (let i = 0; i < 5; i++) {
    t.equal(conn.client(read(i)), Verdict.Forward);
    t.equal(conn.server(readReply(i)), Verdict.Forward);
  }
  t.equal(conn.client(write(9)), Verdict.Forward);
  // A gap (bytes the dataplane never saw): the segment beyond it passes and is counted, the parser
  // starts over there; a retransmission passes and is not counted twice.
  t.equal(conn.ahead(read(10), 100), Verdict.Forward);
  t.equal(conn.again(read(10), 12), Verdict.Forward);
  t.equal(conn.client(read(11)), Verdict.Forward);
  const m = drain();
  const c = m?.conversations.find((x) => x.port === 502);
  t.same(c?.app, { protocol: 'modbus', functions: { 'read-holding-registers': 7, 'write-single-register': 1 }, units: [1] });
  t.equal(engine.inspectCounters[0].snapshot().flows, 0, 'no inspection started');
  // Next interval: only what is new.
  conn.client(adu(12, [3, 0, 0, 0, 10], 4));
  t.same(drain()?.conversations[0].app, { protocol: 'modbus', functions: { 'read-holding-registers': 1 }, units: [1, 4] },
    'the units the flow\'s requests named so far');
  t.same(drain(), null);
});

t.test('Modbus functions with a block: the inspector counts, deltas per interval', async (t) => {
  const p = policy();
  const compiled = compileModbusBlock({ functions: ['read'] });
  if (compiled.errors) throw new Error(JSON.stringify(compiled.errors));
  p.rules[0].modbus = compiled.policy;
  const { engine, drain, run } = setup(p);
  const conn = tcp(run, 44000);
  conn.open();
  conn.client(read(1));
  conn.server(readReply(1));
  conn.client(read(2));
  t.equal(engine.inspectCounters[0].snapshot().flows, 1);
  t.same(drain()?.conversations[0].app, { protocol: 'modbus', functions: { 'read-holding-registers': 2 }, units: [1] });
  conn.server(readReply(2));
  conn.client(read(3));
  conn.reset();
  t.same(drain()?.conversations[0].app, { protocol: 'modbus', functions: { 'read-holding-registers': 1 }, units: [1] }, 'the last delta at the end');
});

/** A 43/14 answer: basic identification, vendor, product code, revision. */
const deviceIdAnswer = (tid: number): number[] => {
  const objects = [[0, 'Acme'], [1, 'PLC-5000'], [2, 'V2.11']] as const;
  const body = [43, 14, 1, 0x81, 0, 0, objects.length];
  for (const [id, text] of objects) body.push(id, text.length, ...Buffer.from(text));
  return adu(tid, body, 5);
};

t.test('device identification answers, on observed and on inspected flows', async (t) => {
  for (const inspected of [false, true]) {
    const p = policy();
    if (inspected) {
      const compiled = compileModbusBlock({ functions: ['read-holding-registers', 'read-device-identification'] });
      if (compiled.errors) throw new Error(JSON.stringify(compiled.errors));
      p.rules[0].modbus = compiled.policy;
    }
    const { drain, run } = setup(p);
    const conn = tcp(run, 45000);
    conn.open(1000);
    t.equal(conn.client(adu(1, [43, 14, 1, 0], 5)), Verdict.Forward);
    t.equal(conn.server(deviceIdAnswer(1), 1234), Verdict.Forward);
    const m = drain();
    t.same(m?.identities, [{
      mac: SMAC, address: S, vlan: 0, side: 'inside', source: 'modbus', time: 1234,
      fields: { vendorName: 'Acme', productCode: 'PLC-5000', revision: 'V2.11', unit: '5' },
    }], inspected ? 'inspected' : 'observed');
  }
});

/** An LLDPDU from `mac` naming itself `name`. */
function lldp(mac: number[], name: string): Buffer {
  const tlv = (type: number, value: number[]) => [(type << 1) | (value.length >> 8), value.length & 0xff, ...value];
  return Buffer.from([0x01, 0x80, 0xc2, 0, 0, 0x0e, ...mac, 0x88, 0xcc,
    ...tlv(1, [4, ...mac]), ...tlv(2, [5, ...Buffer.from('eth0')]), ...tlv(3, [0, 120]), ...tlv(5, [...Buffer.from(name)]), 0, 0]);
}

/** A DHCPDISCOVER from `mac` with host name `name`. */
function dhcp(mac: number[], name: string): Buffer {
  const bootp = [1, 1, 6, 0, 1, 2, 3, 4, 0, 0, 0, 0, ...Array(16).fill(0), ...mac, ...Array(10 + 64 + 128).fill(0), 99, 130, 83, 99,
    53, 1, 1, 12, name.length, ...Buffer.from(name), 255];
  return frame({ src: '0.0.0.0', dst: '255.255.255.255', proto: 'udp', sport: 68, dport: 67, payload: bootp, srcMac: mac,
    dstMac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] });
}

t.test('LLDP and DHCP identities; their verdicts are unchanged', async (t) => {
  const { engine, obs, drain } = setup();
  const bare = new Engine(policy(), 1);
  for (const f of [lldp(SERVER_MAC, 'plc-7'), dhcp(CLIENT_MAC, 'rtu-12')]) {
    const with_ = engine.process(f, f.length, Side.Inside, 5000);
    const verdict = with_.verdict;
    const reason = with_.reason;
    const without = bare.process(f, f.length, Side.Inside, 5000);
    t.same([verdict, reason], [without.verdict, without.reason], 'same verdict as without observations');
  }
  const m = drain();
  t.same(m?.identities.map((i) => [i.source, i.mac, i.address, i.fields]), [
    ['lldp', SMAC, '', { chassisId: SMAC, portId: 'eth0', systemName: 'plc-7' }],
    ['dhcp', CMAC, '', { hostName: 'rtu-12' }],
  ]);
  t.same(m?.sightings.map((s) => [s.mac, s.address]).sort(), [[CMAC, ''], [SMAC, '']], 'identity frames are sightings too');
  // A malformed one is counted by name, never thrown.
  const bad = lldp(SERVER_MAC, 'x').subarray(0, 20);
  engine.process(bad, bad.length, Side.Inside, 5001);
  t.same(obs.counters.decodeErrors, { 'lldp-truncated': 1 });
  t.same(obs.takeDecodeErrors(), { 'lldp-truncated': 1 }, 'for the log, once');
  t.equal(obs.takeDecodeErrors(), null);
  t.equal(drain(), null, 'nothing reported of it');
});

t.test('a DHCP flood costs a counter; tables are bounded and count what they drop', async (t) => {
  const { engine, obs, drain } = setup();
  const n = IDENTITY_DECODES + 500;
  for (let i = 0; i < n; i++) {
    const mac = [0x02, 0x10, 0, 0, (i >> 8) & 0xff, i & 0xff];
    const f = dhcp(mac, `h${i}`);
    engine.process(f, f.length, Side.Outside, 1000 + i);
  }
  const m = drain();
  t.equal(m?.identities.length, IDENTITY_KEYS, 'identities kept per interval');
  t.equal(m?.dropped, n - IDENTITY_KEYS, 'every identity not kept is counted: beyond the decode budget and beyond the keys');
  t.equal(obs.counters.dropped, n - IDENTITY_KEYS);
  // Next interval: the budget is back.
  const f = dhcp(CLIENT_MAC, 'again');
  engine.process(f, f.length, Side.Outside, 9000);
  t.equal(drain()?.identities.length, 1);

  // Sightings: a table of 4 keys, 6 hosts.
  const small = new Engine(policy(), 1);
  const smallObs = new Observations({ ruleName: () => 'r', sightingKeys: 4, conversationKeys: 2 });
  small.setObservations(smallObs);
  for (let i = 0; i < 6; i++) {
    const g = frame({ src: `198.18.2.${i + 1}`, dst: S, proto: 'udp', sport: 5000, dport: 53, srcMac: [2, 0, 0, 0, 1, i] });
    small.process(g, g.length, Side.Outside, 1000);
  }
  const sm = smallObs.drain(small.flows.flows(), () => null);
  t.equal(sm?.sightings.length, 4);
  t.equal(sm?.conversations.length, 0, 'denied (no such rule): no conversations');
  t.equal(sm?.dropped, 2);
});

t.test('conversations that do not fit wait in their flow for the next interval', async (t) => {
  const engine = new Engine(policy(), 1);
  const obs = new Observations({ ruleName: (_g, i) => engine.policy.rules[i].name, conversationKeys: 2 });
  engine.setObservations(obs);
  for (const sport of [6001, 6002, 6003]) {
    // Different clients' MACs: three conversations.
    const f = frame({ src: C, dst: S, proto: 'udp', sport, dport: 53, srcMac: [2, 0, 0, 0, 2, sport & 0xff] });
    engine.process(f, f.length, Side.Outside, 1000);
  }
  const first = obs.drain(engine.flows.flows(), () => null);
  t.equal(first?.conversations.length, 2);
  t.equal(first?.dropped, 1);
  const second = obs.drain(engine.flows.flows(), () => null);
  t.match(second?.conversations, [{ flows: 1, packets: 1 }], 'the third flow reported late, not lost');
});

t.test('without observations nothing is observed', async (t) => {
  const engine = new Engine(policy(), 1);
  const f = frame({ src: C, dst: S, proto: 'tcp', sport: 47000, dport: 502, flags: 'S' });
  engine.process(f, f.length, Side.Outside, 1000);
  const [flow] = [...engine.flows.flows()];
  t.equal(flow.observed, false);
  t.equal(flow.clientMac, -1);
});
