// The streaming Modbus/TCP parser: every function's fields, every malformed reason reachable (the list
// and the cases kept in step), a stream split at every byte parses as in one chunk, and several
// messages in one chunk.

import t from 'tap';
import { Table } from '../appliance/policy/modbus-functions';
import { ModbusParser, ParseStatus, malformedReasons, type ModbusMessage } from '../appliance/dataplane/inspect/modbus/parser';

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];

/** An ADU: MBAP header (length computed) + unit + PDU. */
function adu(pdu: number[], unit = 1, tid = 7): number[] {
  return [...u16(tid), 0, 0, ...u16(pdu.length + 1), unit, ...pdu];
}

type Seen = Pick<ModbusMessage, 'transactionId' | 'unit' | 'function' | 'exception' | 'exceptionCode' | 'table' | 'start' | 'quantity' | 'writeStart' | 'writeQuantity' | 'byteCount' | 'subFunction' | 'aduLength' | 'malformed'>;

function snapshot(m: ModbusMessage): Seen {
  const { transactionId, unit, exception, exceptionCode, table, start, quantity, writeStart, writeQuantity, byteCount, subFunction, aduLength, malformed } = m;
  return { transactionId, unit, function: m.function, exception, exceptionCode, table, start, quantity, writeStart, writeQuantity, byteCount, subFunction, aduLength, malformed };
}

/** Feed `bytes` in chunks cut at `cuts`; collect every message. */
function parse(bytes: number[], requests = true, cuts: number[] = []): Seen[] {
  const p = new ModbusParser(requests);
  const b = Uint8Array.from(bytes);
  const out: Seen[] = [];
  const bounds = [0, ...cuts, b.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    let off = bounds[i];
    const end = bounds[i + 1];
    while (off < end) {
      const next = p.push(b, off, end);
      if (p.status === ParseStatus.Message) out.push(snapshot(p.msg));
      if (next === off && p.status !== ParseStatus.Message) break;
      off = next;
      if (p.lost) break;
    }
    if (p.lost) break;
  }
  return out;
}

function one(bytes: number[], requests = true): Seen {
  const all = parse(bytes, requests);
  if (all.length !== 1) throw new Error(`expected one message, got ${all.length}`);
  return all[0];
}

t.test('request fields of every function', async (t) => {
  t.match(one(adu([1, ...u16(10), ...u16(16)])), { function: 1, table: Table.Coils, start: 10, quantity: 16, malformed: null, aduLength: 12, unit: 1, transactionId: 7 });
  t.match(one(adu([2, ...u16(0), ...u16(2000)])), { function: 2, table: Table.DiscreteInputs, quantity: 2000, malformed: null });
  t.match(one(adu([3, ...u16(100), ...u16(125)])), { function: 3, table: Table.HoldingRegisters, start: 100, quantity: 125, malformed: null });
  t.match(one(adu([4, ...u16(5), ...u16(1)])), { function: 4, table: Table.InputRegisters, malformed: null });
  t.match(one(adu([5, ...u16(3), 0xff, 0])), { function: 5, table: Table.Coils, start: 3, quantity: 1, malformed: null });
  t.match(one(adu([6, ...u16(9), ...u16(1234)])), { function: 6, table: Table.HoldingRegisters, start: 9, quantity: 1, malformed: null });
  t.match(one(adu([7])), { function: 7, table: Table.None, malformed: null });
  t.match(one(adu([8, 0, 4, 0, 0])), { function: 8, subFunction: 4, malformed: null });
  t.match(one(adu([11])), { function: 11, malformed: null });
  t.match(one(adu([12])), { function: 12, malformed: null });
  t.match(one(adu([15, ...u16(20), ...u16(10), 2, 0xff, 0x03])), { function: 15, table: Table.Coils, start: 20, quantity: 10, byteCount: 2, malformed: null });
  t.match(one(adu([16, ...u16(1), ...u16(2), 4, 0, 1, 0, 2])), { function: 16, table: Table.HoldingRegisters, start: 1, quantity: 2, byteCount: 4, malformed: null });
  t.match(one(adu([17])), { function: 17, malformed: null });
  t.match(one(adu([20, 7, 6, 0, 1, 0, 0, 0, 2])), { function: 20, byteCount: 7, malformed: null });
  t.match(one(adu([21, 9, 6, 0, 1, 0, 0, 0, 1, 0x12, 0x34])), { function: 21, byteCount: 9, malformed: null });
  t.match(one(adu([22, ...u16(4), 0, 0xf2, 0, 0x25])), { function: 22, table: Table.HoldingRegisters, start: 4, quantity: 1, malformed: null });
  t.match(one(adu([23, ...u16(3), ...u16(6), ...u16(14), ...u16(3), 6, 0, 0xff, 0, 0xff, 0, 0xff])), {
    function: 23, table: Table.HoldingRegisters, start: 3, quantity: 6, writeStart: 14, writeQuantity: 3, byteCount: 6, malformed: null,
  });
  t.match(one(adu([24, ...u16(0x4de)])), { function: 24, start: 0x4de, quantity: 1, malformed: null });
  t.match(one(adu([43, 14, 1, 0])), { function: 43, subFunction: 14, malformed: null });
  t.match(one(adu([43, 13, 0, 0, 0, 0])), { function: 43, subFunction: 13, malformed: null });
  t.match(one(adu([90, 0, 1, 2, 3])), { function: 90, table: Table.None, malformed: null });
});

t.test('response fields', async (t) => {
  t.match(one(adu([1, 2, 0xcd, 0x01]), false), { function: 1, byteCount: 2, malformed: null, exception: false });
  t.match(one(adu([3, 4, 0, 1, 0, 2]), false), { function: 3, byteCount: 4, malformed: null });
  t.match(one(adu([0x83, 2]), false), { function: 3, exception: true, exceptionCode: 2, malformed: null });
  t.match(one(adu([6, ...u16(1), ...u16(3)]), false), { function: 6, start: 1, quantity: 3, malformed: null });
  t.match(one(adu([16, ...u16(1), ...u16(2)]), false), { function: 16, quantity: 2, malformed: null });
  t.match(one(adu([22, ...u16(4), 0, 0xf2, 0, 0x25]), false), { function: 22, malformed: null });
  t.match(one(adu([7, 0x6d]), false), { function: 7, malformed: null });
  t.match(one(adu([24, 0, 6, 0, 2, 1, 0xb8, 0x12, 0x84]), false), { function: 24, byteCount: 6, malformed: null });
  t.match(one(adu([43, 14, 1, 1, 0, 0, 0]), false), { function: 43, malformed: null });
  // A response that looks like a write request is still only a response (its shape as a response).
  t.match(one(adu([16, ...u16(1), ...u16(2), 4, 0, 1, 0, 2]), false), { function: 16, malformed: 'trailing_bytes' });
});

// One case per reason: the list and the cases must stay in step.
const malformedCases: Record<(typeof malformedReasons)[number], { bytes: number[]; requests?: boolean }> = {
  bad_protocol_id: { bytes: [0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1] },
  bad_length: { bytes: [0, 1, 0, 0, 1, 0, 1, 3, 0, 0, 0, 1] },
  bad_function: { bytes: adu([0x83, 0, 0, 0, 1]) },
  truncated_pdu: { bytes: adu([3, 0, 0, 0]) },
  trailing_bytes: { bytes: adu([3, 0, 0, 0, 1, 0]) },
  bad_quantity: { bytes: adu([3, 0, 0, 0, 126]) },
  bad_byte_count: { bytes: adu([16, 0, 0, 0, 1, 3, 0, 1, 0]) },
  address_overflow: { bytes: adu([1, 0xff, 0xff, 0, 2]) },
  bad_value: { bytes: adu([5, 0, 1, 0x12, 0x34]) },
  bad_exception: { bytes: adu([0x83, 2, 0]), requests: false },
};

t.test('every malformed reason is reachable', async (t) => {
  t.same(Object.keys(malformedCases).sort(), [...malformedReasons].sort(), 'one case per reason');
  for (const reason of malformedReasons) {
    const { bytes, requests = true } = malformedCases[reason];
    const msgs = parse(bytes, requests);
    t.equal(msgs.length, 1, `${reason}: one message`);
    t.equal(msgs[0]?.malformed, reason, reason);
  }
});

t.test('more malformed shapes', async (t) => {
  t.equal(one(adu([1, 0, 0, 0, 0])).malformed, 'bad_quantity', 'quantity 0');
  t.equal(one(adu([1, 0, 0, ...u16(2001)])).malformed, 'bad_quantity', 'read bits above 2000');
  t.equal(one(adu([15, 0, 0, ...u16(1969), 247, ...Array(247).fill(0)])).malformed, 'bad_quantity', 'write coils above 1968');
  t.equal(one(adu([15, 0, 0, ...u16(9), 1, 0])).malformed, 'bad_byte_count', 'coils byte count ceil(q/8)');
  t.equal(one(adu([15, 0, 0, ...u16(9), 2, 0])).malformed, 'truncated_pdu', 'coils data shorter than byte count');
  t.equal(one(adu([16, 0, 0, ...u16(124), 248, 0, 0])).malformed, 'bad_quantity', 'write registers above 123');
  t.equal(one(adu([23, 0, 0, 0, 126, 0, 0, 0, 1, 2, 0, 0])).malformed, 'bad_quantity', '23 read above 125');
  t.equal(one(adu([23, 0, 0, 0, 1, 0, 0, 0, 122, 244, 0, 0])).malformed, 'bad_quantity', '23 write above 121');
  t.equal(one(adu([23, 0, 0, 0, 1, 0, 0, 0, 0, 0])).malformed, 'bad_quantity', '23 write 0');
  t.equal(one(adu([23, 0, 0, 0, 1, 0xff, 0xff, 0, 2, 4, 0, 0, 0, 0])).malformed, 'address_overflow', '23 write range overflow');
  t.equal(one(adu([23, 0, 0, 0, 1, 0, 0, 0, 2, 2, 0, 0])).malformed, 'bad_byte_count', '23 byte count');
  t.equal(one(adu([43, 14, 5, 0])).malformed, 'bad_value', 'read device id code');
  t.equal(one(adu([43, 14, 1, 0, 0])).malformed, 'trailing_bytes', '43/14 exact length');
  t.equal(one(adu([20, 8, 0, 0, 0, 0, 0, 0, 0, 0])).malformed, 'bad_byte_count', 'read file record sub-requests are 7 bytes');
  t.equal(one(adu([7, 0])).malformed, 'trailing_bytes', 'no-data request with data');
  t.equal(one(adu([3, 3, 0, 1, 0]), false).malformed, 'bad_byte_count', 'register response odd byte count');
  t.equal(one(adu([0x81, 0]), false).malformed, 'bad_exception', 'exception code 0');
  t.equal(one([0, 1, 0, 0, 0, 1, 1]).malformed, 'bad_length', 'length 1');
  t.equal(one([0, 1, 0, 0, 0, 255, 1]).malformed, 'bad_length', 'length 255 (ADU 261)');
});

t.test('framing errors stop the parser until reset', async (t) => {
  const p = new ModbusParser(true);
  const b = Uint8Array.from([0, 1, 0, 9, 0, 6, 1, 3, 0, 0, 0, 1]);
  const off = p.push(b, 0, b.length);
  t.equal(p.status, ParseStatus.Message);
  t.equal(p.msg.malformed, 'bad_protocol_id');
  t.equal(off, 4, 'reported as soon as the protocol id is in');
  t.ok(p.lost);
  t.equal(p.push(b, off, b.length), off, 'consumes nothing more');
  p.reset(true);
  const good = Uint8Array.from(adu([3, 0, 0, 0, 1]));
  p.push(good, 0, good.length);
  t.equal(p.msg.malformed, null, 'parses again after reset');
});

const stream = [
  ...adu([3, 0, 0, 0, 10], 1, 1),
  ...adu([16, 0, 5, 0, 2, 4, 0, 1, 0, 2], 2, 2),
  ...adu([23, 0, 3, 0, 6, 0, 14, 0, 3, 6, 0, 0xff, 0, 0xff, 0, 0xff], 3, 3),
  ...adu([15, 0, 20, 0, 10, 2, 0xff, 0x03], 4, 4),
  ...adu([43, 14, 1, 0], 5, 5),
  ...adu([3, 0, 0, 0, 126], 6, 6),
  ...adu([6, 0, 9, 0x12, 0x34], 7, 7),
];

t.test('several messages in one chunk', async (t) => {
  const all = parse(stream);
  t.same(all.map((m) => m.transactionId), [1, 2, 3, 4, 5, 6, 7]);
  t.same(all.map((m) => m.malformed), [null, null, null, null, null, 'bad_quantity', null]);
});

t.test('split at every byte: the same messages', async (t) => {
  const whole = parse(stream);
  for (let cut = 1; cut < stream.length; cut++) {
    t.same(parse(stream, true, [cut]), whole, `cut at ${cut}`);
  }
  const bytewise = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
  t.same(parse(stream, true, bytewise), whole, 'one byte per chunk');
  for (const reason of malformedReasons) {
    const { bytes, requests = true } = malformedCases[reason];
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    t.same(parse(bytes, requests, cuts).map((m) => m.malformed), [reason], `${reason} byte by byte`);
  }
});
