// The Modbus/TCP inspector end to end on segments: allowed requests and matched responses pass; a
// refused request gets its rule's action (reset, exception with the right ADU and TCP numbers, drop)
// and nothing behind it passes; streams split at any byte, out of order, retransmitted differently;
// responses checked as responses and matched to outstanding requests.

import t from 'tap';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import type { ModbusPolicy } from '../appliance/policy/types';
import { InspectOutcome, InspectVerdict } from '../appliance/dataplane/inspect/inspector';
import { exceptionCodeFor } from '../appliance/policy/modbus-match';
import {
  EXCEPTION_ADU_LENGTH,
  MAX_OUTSTANDING,
  ModbusInspector,
  modbusReasons,
  writeExceptionAdu,
  type ModbusFlowState,
} from '../appliance/dataplane/inspect/modbus/modbus';
import type { TcpSegment } from '../appliance/dataplane/inspect/tcp-stream';
import { Proto, TcpFlag } from '../appliance/wire/protocols';

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
const adu = (tid: number, pdu: number[], unit = 1): number[] => [...u16(tid), 0, 0, ...u16(pdu.length + 1), unit, ...pdu];

function policy(block: unknown): ModbusPolicy {
  const r = compileModbusBlock(block);
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const CLIENT_ISN = 1000;
const SERVER_ISN = 9000;

class Conn {
  readonly inspector: ModbusInspector;
  readonly state: ModbusFlowState;
  readonly out = new InspectOutcome();
  clientSeq = CLIENT_ISN + 1;
  serverSeq = SERVER_ISN + 1;

  constructor(p: ModbusPolicy, monitor = false) {
    this.inspector = new ModbusInspector();
    this.state = this.inspector.open({ proto: Proto.TCP }, p, false, monitor);
    // The handshake's ACKs tell the stream guard where each direction starts.
    this.send(false, []);
    this.send(true, []);
  }

  seg(fromInitiator: boolean, bytes: number[], seq?: number): TcpSegment {
    const frame = Uint8Array.from([0, 0, 0, ...bytes]);
    const s = seq ?? (fromInitiator ? this.clientSeq : this.serverSeq);
    return { frame, offset: 3, length: bytes.length, seq: s >>> 0, ack: (fromInitiator ? this.serverSeq : this.clientSeq) >>> 0, flags: TcpFlag.ACK, fromInitiator };
  }

  send(fromInitiator: boolean, bytes: number[], seq?: number): number {
    const v = this.inspector.inspect(this.state, this.seg(fromInitiator, bytes, seq), this.out);
    if (seq === undefined && v === InspectVerdict.Forward) {
      if (fromInitiator) this.clientSeq += bytes.length;
      else this.serverSeq += bytes.length;
    }
    return v;
  }
}

const readOnly = { functions: ['read'], units: [1], addresses: { 'holding-registers': ['0-99'] } };
const read = (tid: number, start: number, qty: number): number[] => adu(tid, [3, ...u16(start), ...u16(qty)]);
const readReply = (tid: number, qty: number): number[] => adu(tid, [3, 2 * qty, ...Array(2 * qty).fill(0)]);
const write = (tid: number, addr: number): number[] => adu(tid, [6, ...u16(addr), 0, 1]);

t.test('takes the rule\'s modbus block, and only TCP flows', async (t) => {
  const inspector = new ModbusInspector();
  const block = policy(readOnly);
  const rule = { index: 0, name: 'r', action: 0, log: false, line: 1, isDefault: false, modbus: null };
  t.equal(inspector.blockOf(rule), null);
  t.equal(inspector.blockOf({ ...rule, modbus: block }), block);
  t.ok(inspector.claims({ proto: Proto.TCP }));
  t.notOk(inspector.claims({ proto: Proto.UDP }));
  t.equal(inspector.functionName(6), 'write-single-register');
  t.equal(inspector.functionName(99), '99', 'an unnamed code by number');
});

t.test('allowed requests and matched responses pass; counts per function', async (t) => {
  const c = new Conn(policy(readOnly));
  t.equal(c.send(true, read(1, 0, 10)), InspectVerdict.Forward);
  t.equal(c.send(false, readReply(1, 10)), InspectVerdict.Forward);
  t.equal(c.send(true, [...read(2, 10, 1), ...read(3, 20, 2)]), InspectVerdict.Forward, 'pipelined');
  t.equal(c.send(false, [...readReply(3, 2), ...readReply(2, 1)]), InspectVerdict.Forward, 'answered out of order');
  t.equal(c.state.functionCounts[3], 3);
  t.equal(c.state.outstanding, 0);
});

t.test('read-only means read-only: a write is reset, nothing behind it passes', async (t) => {
  const c = new Conn(policy(readOnly));
  t.equal(c.send(true, write(1, 5)), InspectVerdict.Reset);
  t.equal(c.out.reason, 'function_not_allowed');
  t.equal(modbusReasons[c.out.reasonIndex], 'function_not_allowed');
  t.equal(c.send(true, write(1, 5)), InspectVerdict.Reset, 'the retransmission is refused too');
  t.equal(c.out.reason, 'after_violation');
  t.equal(c.send(false, readReply(1, 1)), InspectVerdict.Reset, 'both directions');
});

t.test('the RST to the server goes where it expects the refused bytes; after a violation, where forwarding stopped', async (t) => {
  const c = new Conn(policy(readOnly));
  c.send(true, read(1, 0, 1));
  c.send(false, readReply(1, 1));
  const at = c.clientSeq;
  t.equal(c.send(true, [...read(2, 0, 1), ...write(3, 5)]), InspectVerdict.Reset, 'a read and a write in one segment');
  t.equal(c.out.onwardSeq, at, 'the whole segment is refused: the server expects its first byte');
  t.equal(c.send(true, read(4, 0, 1), at + 24), InspectVerdict.Reset);
  t.same([c.out.reason, c.out.onwardSeq], ['after_violation', at]);
});

t.test('monitor mode: violations are reported and the flow goes on being parsed', async (t) => {
  const c = new Conn(policy(readOnly), true);
  t.equal(c.send(true, [...write(1, 5), ...write(2, 7), ...read(3, 0, 1)]), InspectVerdict.Reset, 'the verdict enforcing would give');
  t.same([c.out.reason, c.out.function, c.out.start], ['function_not_allowed', 6, 5], 'the first violation of the segment');
  t.equal(c.state.violation, null, 'not final');
  t.equal(c.state.functionCounts[6], 2, 'every message of the segment was parsed');
  t.equal(c.state.functionCounts[3], 1);
  c.clientSeq += 36;
  t.equal(c.send(true, read(4, 0, 1)), InspectVerdict.Forward, 'the next request is judged on its own');
});

t.test('picked up mid-stream: a direction starts at its first data, nothing before it passes', async (t) => {
  const inspector = new ModbusInspector();
  const state = inspector.open({ proto: Proto.TCP }, policy(readOnly), true, false);
  const out = new InspectOutcome();
  const seg = (seq: number, bytes: number[], ack = 7000): TcpSegment => ({
    frame: Uint8Array.from(bytes), offset: 0, length: bytes.length, seq, ack, flags: TcpFlag.ACK, fromInitiator: true,
  });
  t.equal(inspector.inspect(state, seg(5000, read(1, 0, 1)), out), InspectVerdict.Forward, 'data before any ACK from the server is checked and passes');
  t.equal(inspector.inspect(state, seg(4988, write(2, 1)), out), InspectVerdict.Hold, 'bytes before the start are held, not passed as old');
  t.equal(out.reason, 'before_start');
  t.equal(inspector.inspect(state, seg(5012, write(3, 1)), out), InspectVerdict.Reset, 'what follows is judged');
});

t.test('unit, address and malformed violations', async (t) => {
  const cases: Array<[number[], string]> = [
    [adu(1, [3, 0, 0, 0, 1], 2), 'unit_not_allowed'],
    [read(1, 95, 10), 'address_not_allowed'],
    [read(1, 0, 126), 'bad_quantity'],
    [[0, 1, 0, 7, 0, 6, 1, 3, 0, 0, 0, 1], 'bad_protocol_id'],
  ];
  for (const [bytes, reason] of cases) {
    const c = new Conn(policy(readOnly));
    t.equal(c.send(true, bytes), InspectVerdict.Reset, reason);
    t.equal(c.out.reason, reason);
  }
});

t.test('on-violation: exception answers with the Modbus exception and the right TCP numbers', async (t) => {
  const c = new Conn(policy({ ...readOnly, 'on-violation': 'exception' }));
  c.send(true, read(1, 0, 1));
  c.send(false, readReply(1, 1));
  const bytes = write(0x1234, 5);
  const seq = c.clientSeq;
  t.equal(c.send(true, bytes), InspectVerdict.Answer);
  t.match(c.out, { unit: 1, function: 6, start: 5, quantity: 1, replySeq: c.serverSeq, replyAck: seq + bytes.length, onwardSeq: seq });
  t.same(Array.from(c.out.reply.subarray(0, c.out.replyLength)), [0x12, 0x34, 0, 0, 0, 3, 1, 0x86, 0x01], 'the exception ADU');
  const buf = new Uint8Array(EXCEPTION_ADU_LENGTH);
  t.equal(writeExceptionAdu(buf, 0, 0x1234, 1, 6, 1), 9);
  t.same(Array.from(buf), [0x12, 0x34, 0, 0, 0, 3, 1, 0x86, 0x01]);

  const a = new Conn(policy({ ...readOnly, 'on-violation': 'exception' }));
  t.equal(a.send(true, read(1, 200, 1)), InspectVerdict.Answer);
  t.equal(a.out.reply[8], 0x02, 'illegal data address');
  const u = new Conn(policy({ ...readOnly, 'on-violation': 'exception' }));
  t.equal(u.send(true, adu(1, [3, 0, 0, 0, 1], 9)), InspectVerdict.Answer);
  t.equal(u.out.reply[8], 0x0b, 'unit not allowed: gateway target failed to respond');
  const f = new Conn(policy({ ...readOnly, 'on-violation': 'exception' }));
  t.equal(f.send(true, [0, 1, 0, 0, 1, 0, 1, 3]), InspectVerdict.Reset, 'no trusted header: reset instead');
});

t.test('on-violation: drop drops silently, and keeps dropping', async (t) => {
  const c = new Conn(policy({ ...readOnly, 'on-violation': 'drop' }));
  t.equal(c.send(true, write(1, 5)), InspectVerdict.Drop);
  t.equal(c.send(true, write(1, 5)), InspectVerdict.Drop, 'its retransmission is not "already checked"');
  t.equal(c.send(true, []), InspectVerdict.Forward, 'a bare ACK carries nothing');
});

t.test('a request split at every byte: a refused function is found as soon as its code arrives', async (t) => {
  const bytes = [...read(1, 0, 1), ...write(2, 5)];
  // The write's function code is byte 12 + 7: the segment carrying it is refused, whatever follows.
  const functionAt = 12 + 7;
  for (let cut = 1; cut < bytes.length; cut++) {
    const c = new Conn(policy(readOnly));
    const first = c.send(true, bytes.slice(0, cut));
    if (cut > functionAt) {
      t.equal(first, InspectVerdict.Reset, `cut ${cut}: the first part carries the write's function code: refused`);
      t.equal(c.out.reason, 'function_not_allowed');
      continue;
    }
    const second = c.send(true, bytes.slice(cut));
    t.equal(first, InspectVerdict.Forward, `cut ${cut}: the first part names no refused function yet`);
    t.equal(second, InspectVerdict.Reset, `cut ${cut}: the part carrying the write's function code is refused`);
  }
  // Refused addresses need the whole request: the early decision is only on function and unit.
  const far = read(3, 500, 1);
  const c = new Conn(policy(readOnly));
  t.equal(c.send(true, far.slice(0, 10)), InspectVerdict.Forward, 'a read whose address is not complete yet passes');
  t.equal(c.send(true, far.slice(10)), InspectVerdict.Reset, 'and is refused when it is');
  t.equal(c.out.reason, 'address_not_allowed');
  const unit = new Conn(policy(readOnly));
  t.equal(unit.send(true, adu(4, [3, 0, 0, 0, 1], 9).slice(0, 8)), InspectVerdict.Reset, 'a unit not allowed: refused with the function code');
  t.equal(unit.out.reason, 'unit_not_allowed');
  const exception = new Conn(policy({ ...readOnly, 'on-violation': 'exception' }));
  t.equal(exception.send(true, write(0x77, 5).slice(0, 8)), InspectVerdict.Answer, 'early, the exception still answers the right transaction');
  t.same(Array.from(exception.out.reply.subarray(0, exception.out.replyLength)), [0, 0x77, 0, 0, 0, 3, 1, 0x86, 0x01]);
  const device = new Conn(policy({ functions: ['read-device-identification'] }));
  t.equal(device.send(true, adu(5, [43, 14, 1, 0]).slice(0, 8)), InspectVerdict.Forward, '43 waits for its MEI type');
  t.equal(device.send(true, adu(5, [43, 14, 1, 0]).slice(8)), InspectVerdict.Forward, '43/14 allowed');
});

t.test('a refusal after the violation is a follow-up: counted by reason, not as another violation', async (t) => {
  const c = new Conn(policy({ ...readOnly, 'on-violation': 'drop' }));
  t.equal(c.send(true, write(1, 5)), InspectVerdict.Drop);
  t.equal(c.out.followUp, false, 'the violation');
  t.equal(c.send(true, write(1, 5)), InspectVerdict.Drop, 'its retransmission');
  t.same([c.out.reason, c.out.followUp], ['after_violation', true]);
});

t.test('stream: out of order is held, a different retransmission is a violation', async (t) => {
  const c = new Conn(policy(readOnly));
  const bytes = read(1, 0, 1);
  t.equal(c.send(true, bytes.slice(6), c.clientSeq + 6), InspectVerdict.Hold);
  t.equal(c.out.reason, 'segment_ahead');
  t.equal(c.out.reasonIndex, 0);
  t.equal(c.send(true, bytes), InspectVerdict.Forward);
  t.equal(c.send(true, bytes, c.clientSeq - bytes.length), InspectVerdict.Forward, 'identical retransmission');
  // The same bytes but a write where the read was: the server would see a request never checked.
  t.equal(c.send(true, write(1, 0), c.clientSeq - bytes.length), InspectVerdict.Reset);
  t.equal(c.out.reason, 'retransmission_differs');
});

t.test('responses: checked as responses, matched to outstanding requests', async (t) => {
  const unexpected = new Conn(policy(readOnly));
  t.equal(unexpected.send(false, readReply(5, 1)), InspectVerdict.Reset);
  t.equal(unexpected.out.reason, 'unexpected_response');

  const mismatch = new Conn(policy(readOnly));
  mismatch.send(true, read(1, 0, 2));
  t.equal(mismatch.send(false, readReply(1, 1)), InspectVerdict.Reset, 'byte count for another quantity');
  t.equal(mismatch.out.reason, 'response_mismatch');

  const fn = new Conn(policy(readOnly));
  fn.send(true, read(1, 0, 2));
  t.equal(fn.send(false, adu(1, [4, 4, 0, 0, 0, 0])), InspectVerdict.Reset);
  t.equal(fn.out.reason, 'response_mismatch');

  const exc = new Conn(policy(readOnly));
  exc.send(true, read(1, 0, 2));
  t.equal(exc.send(false, adu(1, [0x83, 2])), InspectVerdict.Forward, 'an exception answers the request');

  // A write request shape from the server side is parsed as a response, and refused as one.
  const smuggle = new Conn(policy(readOnly));
  smuggle.send(true, read(1, 0, 2));
  t.equal(smuggle.send(false, adu(1, [16, 0, 1, 0, 2, 4, 0, 1, 0, 2])), InspectVerdict.Reset);
  t.equal(smuggle.out.reason, 'trailing_bytes');
});

t.test('outstanding requests are bounded', async (t) => {
  const c = new Conn(policy(readOnly));
  for (let i = 0; i < MAX_OUTSTANDING; i++) t.equal(c.send(true, read(i, 0, 1)), InspectVerdict.Forward);
  t.equal(c.send(true, read(99, 0, 1)), InspectVerdict.Reset);
  t.equal(c.out.reason, 'too_many_outstanding');
});

t.test('pooled state is cleared for the next flow', async (t) => {
  const c = new Conn(policy(readOnly));
  c.send(true, write(1, 5));
  c.inspector.close(c.state);
  const again = c.inspector.open({ proto: Proto.TCP }, policy(readOnly), false, false);
  t.equal(again, c.state, 'reused');
  t.equal(again.violation, null);
  t.equal(again.functionCounts[6], 0);
  t.equal(again.outstanding, 0);
});

t.test('reason list: unique names; every reason has an exception decision', async (t) => {
  t.equal(new Set(modbusReasons).size, modbusReasons.length);
  for (const r of modbusReasons) t.ok(exceptionCodeFor(r) >= 0 && exceptionCodeFor(r) < 0x0c, r);
});
