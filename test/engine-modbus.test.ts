// Modbus inspection through the whole engine on crafted frames: a rule's `modbus:` block decides every
// request of its flows; a refused one is answered as on-violation says (RST both ways with the right
// sequence numbers, or the Modbus exception to the client and a RST to the server, checksums right),
// counted per rule and reason, and reported; monitor mode forwards and counts; reloads re-decide
// running flows by the new block; picked-up flows are inspected from their first segment; flows of
// rules without a block never reach an inspector. The lab tests prove the same with real hosts.

import t from 'tap';
import { Engine } from '../appliance/dataplane/engine';
import { DropReason } from '../appliance/dataplane/counters';
import type { TrafficObserver, Violation } from '../appliance/dataplane/events/traffic-events';
import type { Flow } from '../appliance/dataplane/flow/flow';
import { Side, Verdict, type PacketResult } from '../appliance/dataplane/verdict';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import { loadPolicyText } from '../appliance/policy/load';
import type { CompiledPolicy } from '../appliance/policy/types';
import { CLIENT_MAC, frame, ipv4TcpChecksumsOk, SERVER_MAC, type FrameSpec } from './lib/frames';

const C = '198.18.1.10';
const S = '198.18.1.100';
const CLIENT_ISN = 1000;
const SERVER_ISN = 9000;

/** Rule 0 allows tcp/502 with `block` as its modbus block (set on the compiled rule); rule 1 tcp/503 without one. */
function policy(block: unknown, mode = 'enforce', flows = ''): CompiledPolicy {
  const r = loadPolicyText(`version: 1
mode: ${mode}
default: deny
groups:
  hmi: [${C}]
  plc: [${S}]
rules:
  - name: hmi-reads-plc
    from: hmi
    to: plc
    service: tcp/502
    action: allow
  - name: plain
    from: hmi
    to: plc
    service: tcp/503
    action: allow
${flows}`, 'test.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  const compiled = compileModbusBlock(block);
  if (compiled.errors) throw new Error(JSON.stringify(compiled.errors));
  r.policy.rules[0].modbus = compiled.policy;
  return r.policy;
}

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const adu = (tid: number, pdu: number[], unit = 1): number[] => [...u16(tid), 0, 0, ...u16(pdu.length + 1), unit, ...pdu];
const read = (tid: number, start: number, qty: number, unit = 1): number[] => adu(tid, [3, ...u16(start), ...u16(qty)], unit);
const readReply = (tid: number, qty: number): number[] => adu(tid, [3, 2 * qty, ...Array(2 * qty).fill(0)]);
const write = (tid: number, addr: number): number[] => adu(tid, [6, ...u16(addr), 0, 1]);

const readOnly = { functions: ['read'], units: [1], addresses: { 'holding-registers': ['0-99'] } };

/** A TCP connection client:40000 → server:port through the engine, tracking both sequence numbers. */
class Conn {
  clientSeq = CLIENT_ISN + 1;
  serverSeq = SERVER_ISN + 1;
  last!: PacketResult;

  constructor(readonly engine: Engine, readonly port = 502, handshake = true, readonly sport = 40000) {
    if (!handshake) return;
    this.run(true, { flags: 'S', seq: CLIENT_ISN });
    this.run(false, { flags: 'SA', seq: SERVER_ISN, ack: CLIENT_ISN + 1 });
    this.run(true, { flags: 'A', seq: this.clientSeq, ack: this.serverSeq });
  }

  run(fromClient: boolean, s: Partial<FrameSpec>, now = 1000): number {
    const f = fromClient
      ? frame({ src: C, dst: S, proto: 'tcp', sport: this.sport, dport: this.port, ...s } as FrameSpec)
      : frame({ src: S, dst: C, proto: 'tcp', sport: this.port, dport: this.sport, srcMac: SERVER_MAC, dstMac: CLIENT_MAC, ...s } as FrameSpec);
    this.last = this.engine.process(f, f.length, fromClient ? Side.Outside : Side.Inside, now);
    return this.last.verdict;
  }

  /** Data from the client at its next sequence number (advanced when forwarded). */
  request(bytes: number[], seq = this.clientSeq): number {
    const v = this.run(true, { flags: 'PA', seq, ack: this.serverSeq, payload: bytes });
    if (v === Verdict.Forward && seq === this.clientSeq) this.clientSeq += bytes.length;
    return v;
  }

  reply(bytes: number[]): number {
    const v = this.run(false, { flags: 'PA', seq: this.serverSeq, ack: this.clientSeq, payload: bytes });
    if (v === Verdict.Forward) this.serverSeq += bytes.length;
    return v;
  }
}

const tcpAt = 14 + 20;
const flagsOf = (f: Buffer) => f[tcpAt + 13];
const seqOf = (f: Buffer) => f.readUInt32BE(tcpAt + 4);
const ackOf = (f: Buffer) => f.readUInt32BE(tcpAt + 8);

class Recorder implements TrafficObserver {
  readonly violations: Violation[] = [];
  readonly ended: Array<Record<number, number>> = [];
  denied(): void {}
  spoofed(): void {}
  deniedInFlow(): void {}
  flowStarted(): void {}
  flowEnded(_flow: Flow, _reason: unknown, counts: Uint32Array | null): void {
    if (counts === null) return;
    const nonzero: Record<number, number> = {};
    counts.forEach((n, code) => {
      if (n > 0) nonzero[code] = n;
    });
    this.ended.push(nonzero);
  }
  violation(_flow: Flow, v: Violation): void {
    this.violations.push({ ...v });
  }
}

t.test('reads pass; a write is reset both ways at the right sequence numbers, nothing behind it passes', async (t) => {
  const e = new Engine(policy(readOnly), 1);
  const rec = new Recorder();
  e.observer = rec;
  const c = new Conn(e);
  t.equal(c.request(read(1, 0, 10)), Verdict.Forward, 'read');
  t.equal(c.reply(readReply(1, 10)), Verdict.Forward, 'its response');
  const at = c.clientSeq;
  t.equal(c.request(write(2, 5)), Verdict.Reject, 'write refused');
  const r = c.last;
  t.same([r.reason, r.rule, r.inspectorReason], [DropReason.Inspect, 0, 'function_not_allowed']);
  const toClient = r.answer.subarray(0, r.answerLength);
  const toServer = r.onward.subarray(0, r.onwardLength);
  t.same([...toClient.subarray(0, 6)], CLIENT_MAC, 'RST to the client');
  t.same([flagsOf(toClient), seqOf(toClient)], [0x04, c.serverSeq], 'at the server\'s next byte, as the client acknowledged');
  t.same([...toServer.subarray(0, 6)], SERVER_MAC, 'RST to the server');
  t.same([...toServer.subarray(14 + 12, 14 + 16)], [198, 18, 1, 10], 'in the client\'s name');
  t.same([flagsOf(toServer), seqOf(toServer), ackOf(toServer)], [0x14, at, c.serverSeq], 'at the byte the server expects');
  t.ok(ipv4TcpChecksumsOk(toClient) && ipv4TcpChecksumsOk(toServer), 'checksums');
  t.equal(c.request(read(3, 0, 1), at + 12), Verdict.Reject, 'nothing behind the write passes');
  t.equal(c.last.inspectorReason, 'after_violation');
  t.equal(e.ruleTotals().violations(0), 1, 'one violation of the rule: the refused write');
  t.match(e.inspectCounters[0].snapshot().violations, { function_not_allowed: 1, after_violation: 1 }, 'by reason, the follow-up too');
  t.equal(rec.violations.length, 1, 'reported once');
  t.same(rec.violations[0], { protocol: 'modbus', reason: 'function_not_allowed', function: 6, functionName: 'write-single-register',
    unit: 1, start: 5, quantity: 1, action: 'reset' }, 'reported with function, unit and address');
});

t.test('on-violation exception: the client gets the Modbus exception with correct TCP numbers, the server a RST', async (t) => {
  const e = new Engine(policy({ ...readOnly, 'on-violation': 'exception' }), 1);
  const c = new Conn(e);
  const at = c.clientSeq;
  const bytes = write(0x1234, 5);
  t.equal(c.request(bytes), Verdict.Reject);
  const answer = c.last.answer.subarray(0, c.last.answerLength);
  t.same([flagsOf(answer), seqOf(answer), ackOf(answer)], [0x18, c.serverSeq, at + bytes.length], 'PSH+ACK from the server\'s next byte, acking the request');
  t.same([...answer.subarray(tcpAt + 20)], [0x12, 0x34, 0, 0, 0, 3, 1, 0x86, 0x01], 'illegal function for transaction 0x1234');
  t.ok(ipv4TcpChecksumsOk(answer), 'checksums');
  const toServer = c.last.onward.subarray(0, c.last.onwardLength);
  t.same([flagsOf(toServer), seqOf(toServer)], [0x14, at], 'the server is reset');

  const a = new Conn(new Engine(policy({ ...readOnly, 'on-violation': 'exception' }), 1));
  t.equal(a.request(read(1, 200, 1)), Verdict.Reject);
  t.equal(a.last.answer[a.last.answerLength - 1], 0x02, 'illegal data address');
});

t.test('on-violation drop: dropped silently, nothing sent', async (t) => {
  const c = new Conn(new Engine(policy({ ...readOnly, 'on-violation': 'drop' }), 1));
  t.equal(c.request(write(1, 5)), Verdict.Drop);
  t.same([c.last.reason, c.last.onwardLength], [DropReason.Inspect, 0]);
});

t.test('split, pipelined and out-of-order requests through the engine', async (t) => {
  const c = new Conn(new Engine(policy(readOnly), 1));
  const w = write(1, 5);
  t.equal(c.request(w.slice(0, 7)), Verdict.Forward, 'the MBAP header alone passes');
  t.equal(c.request(w.slice(7)), Verdict.Reject, 'the PDU completing the write is refused');

  const p = new Conn(new Engine(policy(readOnly), 1));
  t.equal(p.request([...read(1, 0, 1), ...write(2, 5)]), Verdict.Reject, 'a read and a write in one segment: the segment is refused');

  const o = new Conn(new Engine(policy(readOnly), 1));
  const r = read(1, 0, 1);
  t.equal(o.request(r.slice(6), o.clientSeq + 6), Verdict.Drop, 'the second half first: held');
  t.same([o.last.reason, o.last.inspectorReason], [DropReason.InspectHeld, 'segment_ahead']);
  t.equal(o.request(r), Verdict.Forward, 'in order it passes');
  t.equal(o.request(write(2, 0), o.clientSeq - r.length), Verdict.Reject, 'a retransmission with other bytes is refused');
  t.equal(o.last.inspectorReason, 'retransmission_differs');
});

t.test('monitor mode: would-be violations are counted, reported and forwarded', async (t) => {
  const e = new Engine(policy(readOnly, 'monitor'), 1);
  const rec = new Recorder();
  e.observer = rec;
  const c = new Conn(e);
  t.equal(c.request(write(1, 5)), Verdict.Forward, 'forwarded');
  t.same([c.last.monitored, c.last.reason, c.last.inspectorReason], [true, DropReason.Inspect, 'function_not_allowed']);
  t.equal(c.reply(adu(1, [6, 0, 5, 0, 1])), Verdict.Forward, 'the server answers');
  t.equal(c.request(read(2, 0, 1)), Verdict.Forward, 'the flow goes on');
  t.equal(c.last.monitored, false, 'a read is no violation');
  t.equal(rec.violations[0].action, 'monitor');
  t.equal(e.ruleTotals().violations(0), 1);
});

t.test('a reload re-decides running flows by the new block; a rule without a block is not inspected', async (t) => {
  const e = new Engine(policy({ functions: ['read', 'write'] }), 1);
  const c = new Conn(e);
  t.equal(c.request(write(1, 5)), Verdict.Forward, 'writes allowed');
  t.equal(c.reply(adu(1, [6, 0, 5, 0, 1])), Verdict.Forward);
  e.setPolicy(policy(readOnly), 2);
  t.equal(c.request(write(2, 5)), Verdict.Reject, 'the tightened block applies to the running flow at once');

  const plain = new Conn(e, 503);
  t.equal(plain.request(write(1, 5)), Verdict.Forward, 'no block: not inspected');
  t.equal(e.inspectCounters[0].snapshot().flows, 1, 'only the modbus flow was inspected');
  e.setPolicy(policy(readOnly), 3);
  t.equal(c.request(read(3, 0, 1), c.clientSeq + 12), Verdict.Reject, 'the refused flow stays refused');
});

t.test('a picked-up flow is inspected from its first segment', async (t) => {
  const e = new Engine(policy(readOnly, 'enforce', 'flows:\n  pickup-established: true\n'), 1);
  const c = new Conn(e, 502, false);
  t.equal(c.request(read(1, 0, 1)), Verdict.Forward, 'a read mid-stream passes (checked from its first byte)');
  t.equal(c.request(write(2, 5)), Verdict.Reject, 'a write mid-stream is refused');
  const d = new Conn(e, 502, false, 40001);
  d.clientSeq = 50_000;
  t.equal(d.request(write(1, 5)), Verdict.Reject, 'also as the very first segment seen');
  t.equal(d.last.inspectorReason, 'function_not_allowed');
  t.equal(e.inspectCounters[0].snapshot().flows, 2, 'two picked-up flows inspected');
});

t.test('flow.end carries the requests per function', async (t) => {
  const e = new Engine(policy(readOnly, 'enforce', 'flows:\n  tcp-closing-idle: 10ms\n'), 1);
  const rec = new Recorder();
  e.observer = rec;
  const c = new Conn(e);
  c.request(read(1, 0, 1));
  c.reply(readReply(1, 1));
  c.request(read(2, 0, 2));
  c.run(true, { flags: 'R', seq: c.clientSeq });
  await new Promise((r) => setTimeout(r, 30));
  e.flows.purgeIdle();
  t.same(rec.ended, [{ 3: 2 }]);
  t.equal(e.inspectCounters[0].snapshot().active, 0, 'the inspection ended with the flow');
});
