// address@MAC bindings on the packet path, on crafted frames: a bound address from its MAC passes, from
// another MAC (IPv4, IPv6, an ARP sender) it is dropped as spoofed_source and counted, monitor mode
// forwards and counts it, a policy without bindings is untouched, a reload turns the check on and off,
// and the spoof.summary event carries the claimed address, the real MAC and the bound MAC.

import t from 'tap';
import pino from 'pino';
import { Engine } from '../appliance/dataplane/engine';
import { DropReason, pairTotals, PortCounter } from '../appliance/dataplane/counters';
import { TrafficEvents } from '../appliance/dataplane/events/traffic-events';
import { Side, Verdict, type PacketResult } from '../appliance/dataplane/verdict';
import type { GatekeeperEvent, SpoofSummaryEvent } from '../appliance/ipc/events';
import { isDataplaneEvent } from '../appliance/ipc/validate';
import { loadPolicyText } from '../appliance/policy/load';
import { CLIENT_MAC, frame, SERVER_MAC, type FrameSpec } from './lib/frames';

const C = '198.18.1.10';
const S = '198.18.1.100';
const C6 = '2001:2:0:1::10';
const S6 = '2001:2:0:1::100';
const ATTACKER_MAC = [0x02, 0, 0, 0, 0, 0x66];
const mac = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');

function load(bindings: boolean, mode = 'enforce') {
  const server = bindings ? `["${S}@${mac(SERVER_MAC)}", "${S6}@${mac(SERVER_MAC)}"]` : `[${S}, "${S6}"]`;
  const text = `version: 1
mode: ${mode}
groups:
  client: [${C}, "${C6}"]
  server: ${server}
rules:
  - name: web
    from: client
    to: server
    service: [tcp/8080, ping]
    action: allow
  - name: server-out
    from: server
    to: client
    service: udp/514
    action: allow
`;
  const r = loadPolicyText(text, 'spoof.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('\n'));
  return r;
}

const policy = (bindings: boolean, mode = 'enforce') => load(bindings, mode).policy;

/** From the server (inside port), by default from its own MAC. */
const fromServer = (s: Partial<FrameSpec>): Buffer =>
  frame({ src: S, dst: C, proto: 'udp', sport: 40000, dport: 514, srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);

/** An ARP packet (op 1 request, 2 reply) with the given Ethernet source and sender fields. */
function arp(op: number, ethernetSource: number[], senderMac: number[], senderIp: string, targetIp: string): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  f.set(ethernetSource, 6);
  f.writeUInt16BE(0x0806, 12);
  f.set([0, 1, 8, 0, 6, 4, 0, op], 14);
  f.set(senderMac, 22);
  f.set(senderIp.split('.').map(Number), 28);
  f.set(targetIp.split('.').map(Number), 38);
  return f;
}

let last: PacketResult;
function run(engine: Engine, f: Buffer, side: Side, now = 1000): number {
  last = engine.process(f, f.length, side, now);
  return last.verdict;
}

const spoofedCount = (e: Engine, side: Side) => e.counters[side].dropped[DropReason.SpoofedSource];

t.test('IPv4: the bound address from its MAC passes, from another MAC it is dropped and counted', async (t) => {
  const e = new Engine(policy(true), 1);
  t.equal(run(e, fromServer({}), Side.Inside), Verdict.Forward, 'the server from its own MAC');
  t.equal(last.reason, -1);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC }), Side.Inside), Verdict.Drop, 'the server address from another MAC');
  t.equal(last.reason, DropReason.SpoofedSource);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC, sport: 40001 }), Side.Outside), Verdict.Drop, 'also arriving on the other port');
  t.equal(last.reason, DropReason.SpoofedSource);
  t.same([spoofedCount(e, Side.Inside), spoofedCount(e, Side.Outside)], [1, 1], 'counted per arrival port');
  t.equal(e.counters[Side.Inside].snapshot().dropped.spoofed_source, 1, 'published as spoofed_source');
  t.equal(e.flows.size, 1, 'a spoofed packet starts no flow (only the real one did)');
  t.equal(run(e, frame({ src: C, dst: S, proto: 'tcp', dport: 8080, flags: 'S', srcMac: ATTACKER_MAC }), Side.Outside), Verdict.Forward,
    'an address that is not bound is not checked');
  const frag = fromServer({ srcMac: ATTACKER_MAC, fragOffset: 8, moreFragments: false, ipId: 7 });
  t.equal(run(e, frag, Side.Inside), Verdict.Drop, 'a later fragment is checked too');
  t.equal(last.reason, DropReason.SpoofedSource);
});

t.test('IPv6: the same, also for neighbour discovery that otherwise always passes', async (t) => {
  const e = new Engine(policy(true), 1);
  const six = (s: Partial<FrameSpec>) => frame({ src: S6, dst: C6, proto: 'udp', sport: 40000, dport: 514, srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);
  t.equal(run(e, six({}), Side.Inside), Verdict.Forward, 'from the bound MAC');
  t.equal(run(e, six({ srcMac: ATTACKER_MAC }), Side.Inside), Verdict.Drop, 'from another MAC');
  t.equal(last.reason, DropReason.SpoofedSource);
  // An ICMPv6 neighbour advertisement (136) claiming the server's address.
  const na = (srcMac: number[]) => frame({ src: S6, dst: C6, proto: 'icmp', icmpType: 136, icmpCode: 0, payload: [0, 0, 0, 0], srcMac } as FrameSpec);
  t.equal(run(e, na(SERVER_MAC), Side.Inside), Verdict.Forward, 'the real neighbour advertisement');
  t.equal(run(e, na(ATTACKER_MAC), Side.Outside), Verdict.Drop, 'a spoofed one');
  t.equal(last.reason, DropReason.SpoofedSource);
  t.equal(spoofedCount(e, Side.Inside) + spoofedCount(e, Side.Outside), 2);
});

t.test('ARP: a sender claiming the bound address with another MAC is dropped (ARP spoofing)', async (t) => {
  const e = new Engine(policy(true), 1);
  t.equal(run(e, arp(2, SERVER_MAC, SERVER_MAC, S, C), Side.Inside), Verdict.Forward, 'the server answering for itself');
  t.equal(run(e, arp(1, SERVER_MAC, SERVER_MAC, S, C), Side.Inside), Verdict.Forward, 'and asking');
  t.equal(run(e, arp(2, ATTACKER_MAC, ATTACKER_MAC, S, C), Side.Outside), Verdict.Drop, 'a reply claiming the server address');
  t.equal(last.reason, DropReason.SpoofedSource);
  t.equal(run(e, arp(1, ATTACKER_MAC, ATTACKER_MAC, S, C), Side.Outside), Verdict.Drop, 'a request (gratuitous-style) claiming it');
  t.equal(run(e, arp(2, SERVER_MAC, ATTACKER_MAC, S, C), Side.Inside), Verdict.Drop, 'the sender field decides, not the Ethernet source');
  t.equal(run(e, arp(1, ATTACKER_MAC, ATTACKER_MAC, C, S), Side.Outside), Verdict.Forward, 'ARP for an address that is not bound');
  t.equal(run(e, arp(1, ATTACKER_MAC, ATTACKER_MAC, '0.0.0.0', S), Side.Outside), Verdict.Forward, 'an ARP probe (sender 0.0.0.0)');
  t.same([spoofedCount(e, Side.Inside), spoofedCount(e, Side.Outside)], [1, 2]);
});

t.test('a policy binding only IPv6 addresses: IPv4 and ARP are not checked (and do not hang on an empty table)', async (t) => {
  const r = loadPolicyText(`version: 1
groups:
  server: ["${S6}@${mac(SERVER_MAC)}", ${S}]
rules:
  - name: any
    from: any
    to: server
    service: any
    action: allow
`, 'v6.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const e = new Engine(r.policy, 1);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC }), Side.Inside), Verdict.Drop, 'IPv4: the rules decide (no rule from the server)');
  t.equal(last.reason, DropReason.Policy);
  t.equal(run(e, arp(2, ATTACKER_MAC, ATTACKER_MAC, S, C), Side.Outside), Verdict.Forward, 'ARP passes');
  t.equal(run(e, frame({ src: S6, dst: C6, proto: 'udp', sport: 1, dport: 2, srcMac: ATTACKER_MAC } as FrameSpec), Side.Inside), Verdict.Drop);
  t.equal(last.reason, DropReason.SpoofedSource, 'IPv6 is checked');
});

t.test('monitor mode forwards a spoofed packet and counts it as a would-be drop', async (t) => {
  const e = new Engine(policy(true, 'monitor'), 1);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC }), Side.Inside), Verdict.Forward);
  t.ok(last.monitored, 'forwarded only because of monitor mode');
  t.equal(last.reason, DropReason.SpoofedSource);
  t.equal(run(e, arp(2, ATTACKER_MAC, ATTACKER_MAC, S, C), Side.Outside), Verdict.Forward);
  t.equal(spoofedCount(e, Side.Inside), 1);
  t.equal(e.counters[Side.Inside].port[PortCounter.MonitorWouldDrop], 1);
  t.equal(e.counters[Side.Outside].port[PortCounter.MonitorWouldDrop], 1);
});

t.test('a policy without bindings is unaffected; a reload turns the check on and off', async (t) => {
  const e = new Engine(policy(false), 1);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC }), Side.Inside), Verdict.Forward, 'no binding: the rules decide');
  t.equal(run(e, arp(2, ATTACKER_MAC, ATTACKER_MAC, S, C), Side.Outside), Verdict.Forward, 'ARP passes as always');
  t.equal(spoofedCount(e, Side.Inside) + spoofedCount(e, Side.Outside), 0);
  e.setPolicy(policy(true), 2);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC, sport: 40002 }), Side.Inside), Verdict.Drop, 'after a reload that binds');
  t.equal(last.reason, DropReason.SpoofedSource);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC }), Side.Inside), Verdict.Drop, 'also a packet of the flow it started before');
  e.setPolicy(policy(false), 3);
  t.equal(run(e, fromServer({ srcMac: ATTACKER_MAC, sport: 40003 }), Side.Inside), Verdict.Forward, 'and off again');
});

t.test('spoof.summary: one record per key with the claimed address, the real and the bound MAC', async (t) => {
  const loaded = load(true);
  const e = new Engine(loaded.policy, 1);
  const lines: string[] = [];
  const events = new TrafficEvents({ pair: 'p', first: { policy: loaded.policy, groups: loaded.model.groups, generation: 1 },
    totals: () => ({ ...pairTotals(e.counters), flowsActive: e.flows.size }), links: [], log: pino({}, { write: (l: string) => void lines.push(l) }) }, 0);
  e.observer = events;
  for (let i = 0; i < 50; i++) run(e, fromServer({ srcMac: ATTACKER_MAC, sport: 41000 + i }), Side.Inside, 1000 + i);
  for (let i = 0; i < 3; i++) run(e, arp(2, ATTACKER_MAC, ATTACKER_MAC, S, C), Side.Outside, 2000 + i);
  run(e, frame({ src: S6, dst: C6, proto: 'udp', sport: 1, dport: 514, srcMac: ATTACKER_MAC } as FrameSpec), Side.Inside, 3000);
  run(e, fromServer({}), Side.Inside, 3000);
  const spoofs = events.collect(10_000).events.filter((x: GatekeeperEvent) => x.type === 'spoof.summary') as SpoofSummaryEvent[];
  t.equal(spoofs.length, 3, 'IPv4, ARP and IPv6: three keys, the real packet none');
  const by = (kind: string, address: string) => spoofs.find((s) => s.kind === kind && s.address === address);
  t.match(by('ip', S), { type: 'spoof.summary', pair: 'p', severity: 'warning', address: S, groups: ['server'], mac: '02:00:00:00:00:66',
    boundMac: '02:00:00:00:00:64', side: 'inside', monitor: false, count: 50, firstSeen: new Date(1000).toISOString(), lastSeen: new Date(1049).toISOString() });
  t.match(by('arp', S), { mac: '02:00:00:00:00:66', boundMac: '02:00:00:00:00:64', side: 'outside', count: 3, bytes: 180 });
  t.match(by('ip', S6), { groups: ['server'], mac: '02:00:00:00:00:66', boundMac: '02:00:00:00:00:64', count: 1 });
  t.ok(spoofs.every((s) => isDataplaneEvent(s)), 'management accepts them (ipc/schemas.ts)');
  t.notOk(isDataplaneEvent({ ...spoofs[0], boundMac: undefined }), 'and refuses one without the bound MAC');
  t.equal(events.collect(20_000).events.filter((x) => x.type === 'spoof.summary').length, 0, 'the next interval starts empty');
});
