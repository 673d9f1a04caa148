// The compiled Modbus policy and the decision per request: classes, names and numbers, units, address
// ranges per table, both ranges of 23, max-length, and builder errors with paths inside the block.

import t from 'tap';
import { DEVICE_ID_BIT, functionClasses, functionNames } from '../appliance/policy/modbus-functions';
import { ModbusParser, ParseStatus, malformedReasons } from '../appliance/dataplane/inspect/modbus/parser';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import type { ModbusPolicy } from '../appliance/policy/types';
import { decide, policyReasons } from '../appliance/policy/modbus-match';

const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];

function adu(pdu: number[], unit = 1): Uint8Array {
  return Uint8Array.from([0, 1, 0, 0, ...u16(pdu.length + 1), unit, ...pdu]);
}

const parser = new ModbusParser(true);

function verdict(policy: ModbusPolicy, pdu: number[], unit = 1): string | null {
  const b = adu(pdu, unit);
  parser.reset(true);
  parser.push(b, 0, b.length);
  if (parser.status !== ParseStatus.Message) throw new Error('no message');
  return decide(policy, parser.msg);
}

function compile(block: unknown): ModbusPolicy {
  const r = compileModbusBlock(block);
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const read = (start: number, qty: number, fn = 3): number[] => [fn, ...u16(start), ...u16(qty)];
const writeRegister = (addr: number): number[] => [6, ...u16(addr), 0, 1];
const rw = (rs: number, rq: number, ws: number, wq: number): number[] => [23, ...u16(rs), ...u16(rq), ...u16(ws), ...u16(wq), 2 * wq, ...Array(2 * wq).fill(0)];

t.test('classes: read means read', async (t) => {
  const p = compile({ functions: ['read'] });
  for (const fn of [1, 2, 3, 4]) t.equal(verdict(p, read(0, 1, fn)), null, `function ${fn}`);
  t.equal(verdict(p, [43, 14, 1, 0]), null, '43/14 read device identification');
  t.equal(verdict(p, [43, 13, 0, 0]), 'function_not_allowed', 'other MEI types are not reads');
  t.equal(verdict(p, writeRegister(0)), 'function_not_allowed');
  t.equal(verdict(p, [5, 0, 0, 0xff, 0]), 'function_not_allowed');
  t.equal(verdict(p, [16, 0, 0, 0, 1, 2, 0, 0]), 'function_not_allowed');
  t.equal(verdict(p, rw(0, 1, 0, 1)), 'function_not_allowed', '23 writes');
  t.equal(verdict(p, [8, 0, 0, 0, 0]), 'function_not_allowed', 'diagnostics');
  t.equal(verdict(p, [90, 0]), 'function_not_allowed', 'program');
});

t.test('23 needs both read and write', async (t) => {
  t.equal(verdict(compile({ functions: ['write'] }), rw(0, 1, 0, 1)), 'function_not_allowed', 'write alone');
  t.equal(verdict(compile({ functions: ['write'] }), writeRegister(3)), null);
  t.equal(verdict(compile({ functions: ['read', 'write'] }), rw(0, 1, 0, 1)), null, 'read and write');
  t.equal(verdict(compile({ functions: ['read-write-multiple-registers'] }), rw(0, 1, 0, 1)), null, 'named');
  t.equal(verdict(compile({ functions: [23] }), rw(0, 1, 0, 1)), null, 'by number');
});

t.test('classes, names and numbers', async (t) => {
  const diag = compile({ functions: ['diagnostics'] });
  for (const fn of [7, 11, 12, 17]) t.equal(verdict(diag, [fn]), null, `diagnostics ${fn}`);
  t.equal(verdict(diag, [8, 0, 0, 0, 0]), null);
  const program = compile({ functions: ['program'] });
  for (const fn of [40, 42, 65, 72, 90, 100, 110, 125, 126]) t.equal(verdict(program, [fn, 1, 2]), null, `program ${fn}`);
  t.equal(verdict(program, [3, 0, 0, 0, 1]), 'function_not_allowed');
  const named = compile({ functions: ['write-single-register', 3] });
  t.equal(verdict(named, writeRegister(1)), null);
  t.equal(verdict(named, read(0, 2)), null);
  t.equal(verdict(named, read(0, 2, 4)), 'function_not_allowed');
  const mei = compile({ functions: ['read-device-identification'] });
  t.equal(verdict(mei, [43, 14, 1, 0]), null);
  t.equal(verdict(mei, [43, 13, 0, 0]), 'function_not_allowed');
  t.equal(verdict(compile({ functions: ['encapsulated-interface'] }), [43, 14, 1, 0]), null, '43 includes 43/14');
  t.equal(verdict(compile({ functions: ['43/14'] }), [43, 14, 2, 0]), null);
  for (const [name, code] of functionNames) {
    const p = compile({ functions: [name] });
    t.ok((p.functions[code >>> 5] & (1 << (code & 31))) !== 0, `${name} sets bit ${code}`);
  }
  for (const [name, codes] of functionClasses) {
    const p = compile({ functions: [name] });
    t.ok(codes.every((c) => (p.functions[c >>> 5] & (1 << (c & 31))) !== 0), `${name} sets its codes`);
  }
  t.ok(functionClasses.get('read')?.includes(DEVICE_ID_BIT));
});

t.test('units', async (t) => {
  const p = compile({ functions: ['read'], units: [1, '2-5', 255] });
  for (const u of [1, 2, 5, 255]) t.equal(verdict(p, read(0, 1), u), null, `unit ${u}`);
  for (const u of [0, 6, 254]) t.equal(verdict(p, read(0, 1), u), 'unit_not_allowed', `unit ${u}`);
  t.equal(verdict(compile({ functions: ['read'] }), read(0, 1), 77), null, 'absent: any unit');
});

t.test('address ranges per table: every address the request touches', async (t) => {
  const p = compile({ functions: ['read', 'write'], addresses: { 'holding-registers': ['0-99', 200], coils: ['0-15'] } });
  t.equal(verdict(p, read(0, 100)), null, '0-99 exactly');
  t.equal(verdict(p, read(90, 11)), 'address_not_allowed', 'runs past 99');
  t.equal(verdict(p, read(99, 2)), 'address_not_allowed', '99-100');
  t.equal(verdict(p, read(200, 1)), null, 'single 200');
  t.equal(verdict(p, read(199, 2)), 'address_not_allowed');
  t.equal(verdict(p, read(100, 100)), 'address_not_allowed', 'gap between the ranges');
  t.equal(verdict(p, writeRegister(200)), null);
  t.equal(verdict(p, writeRegister(201)), 'address_not_allowed');
  t.equal(verdict(p, read(0, 16, 1)), null, 'coils 0-15');
  t.equal(verdict(p, read(0, 17, 1)), 'address_not_allowed', 'coil 16');
  t.equal(verdict(p, [15, 0, 8, 0, 8, 1, 0xff]), null, 'write coils 8-15');
  t.equal(verdict(p, [15, 0, 9, 0, 8, 1, 0xff]), 'address_not_allowed', 'write coils 9-16');
  t.equal(verdict(p, read(0, 1, 4)), 'address_not_allowed', 'a table the block does not list allows none');
  t.equal(verdict(p, read(0, 1, 2)), 'address_not_allowed', 'discrete inputs unlisted');
  t.equal(verdict(p, [22, 0, 50, 0, 0xf2, 0, 0x25]), null, 'mask write 50');
  t.equal(verdict(p, [22, 0, 150, 0, 0xf2, 0, 0x25]), 'address_not_allowed');
  // Adjacent and overlapping ranges merge: 0-9 and 10-19 cover a read of 5-14.
  const merged = compile({ functions: ['read'], addresses: { 'input-registers': ['10-19', '0-9', '5-7'] } });
  t.same(Array.from(merged.addresses?.[3] ?? []), [0, 19]);
  t.equal(verdict(merged, read(5, 10, 4)), null);
  t.equal(verdict(compile({ functions: ['read'] }), read(65000, 125)), null, 'absent: any address');
});

t.test('23: both ranges must be allowed', async (t) => {
  const p = compile({ functions: ['read', 'write'], addresses: { 'holding-registers': ['0-99', '200-209'] } });
  t.equal(verdict(p, rw(0, 10, 200, 10)), null);
  t.equal(verdict(p, rw(0, 10, 205, 10)), 'address_not_allowed', 'write range runs out');
  t.equal(verdict(p, rw(95, 10, 200, 1)), 'address_not_allowed', 'read range runs out');
});

t.test('max-length and malformed requests', async (t) => {
  const p = compile({ functions: ['read', 'write'], 'max-length': 20 });
  t.equal(verdict(p, read(0, 1)), null, '12-byte ADU');
  t.equal(verdict(p, [16, 0, 0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0]), 'too_long', '21-byte ADU');
  t.equal(verdict(p, read(0, 126)), 'bad_quantity', 'malformed is a violation whatever the policy');
  t.equal(compile({ functions: ['read'] }).maxLength, 260, 'default: the largest ADU');
  t.equal(compile({ functions: ['read'] }).onViolation, 'reset', 'default action');
  t.equal(compile({ functions: ['read'], 'on-violation': 'exception' }).onViolation, 'exception');
  t.same([...policyReasons].sort(), ['address_not_allowed', 'function_not_allowed', 'too_long', 'unit_not_allowed']);
  t.notOk(policyReasons.some((r) => (malformedReasons as readonly string[]).includes(r)), 'reason names are distinct');
});

t.test('builder errors carry paths inside the block', async (t) => {
  const r = compileModbusBlock({
    functions: ['read', 'frobnicate', 0, 128, { x: 1 }],
    units: [1, '9-3', 256, 'a'],
    addresses: { coils: ['0-70000'], 'holding-registers': [], lights: [1] },
    'max-length': 300,
    'on-violation': 'explode',
    extra: true,
  });
  t.notOk(r.policy);
  const paths = (r.errors ?? []).map((e) => e.path);
  t.same(paths.sort(), [
    'addresses.coils[0]',
    'addresses.holding-registers',
    'addresses.lights',
    'extra',
    'functions[1]',
    'functions[2]',
    'functions[3]',
    'functions[4]',
    'max-length',
    'on-violation',
    'units[1]',
    'units[2]',
    'units[3]',
  ]);
  for (const e of r.errors ?? []) t.ok(e.message.length > 0, `${e.path}: ${e.message}`);
  t.same(compileModbusBlock({}).errors?.map((e) => e.path), ['functions'], 'functions is required');
  t.same(compileModbusBlock({ functions: [] }).errors?.map((e) => e.path), ['functions']);
  t.same(compileModbusBlock('read').errors?.map((e) => e.path), ['']);
  t.same(compileModbusBlock({ functions: ['read'], addresses: [1] }).errors?.map((e) => e.path), ['addresses']);
  t.same(compileModbusBlock({ functions: ['read'], units: 5 }).errors?.map((e) => e.path), ['units']);
});
