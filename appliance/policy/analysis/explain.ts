// Explains a decision: which rule decides a connection, which rules matched each field, and which
// earlier rules came close but failed on a field; and, asked about a Modbus request, whether the
// deciding rule's `modbus:` block lets it through (modbus-match.ts's decide, as the inspector asks it).
// Uses the compiled tables for the decision (what the dataplane does) and a linear walk over the
// resolved rules for the reasons. An offline tool for people (CLI, management): reads a policy,
// changes nothing, never on the packet path.

import { AddressSet, intervalsContain } from '../addresses';
import { ruleKeyOf } from '../match';
import { describeFunction, didYouMean, groupNamesFor4, groupNamesFor6, ModelRule, PolicyModel } from '../model';
import { DEVICE_ID_BIT, FUNCTION_BITS, FunctionCode, functionClasses, functionNames, Limits, MEI_READ_DEVICE_ID, requestTable, Table, tableNames } from '../modbus-functions';
import { decide, exceptionCodeFor, type ModbusRequest } from '../modbus-match';
import { formatServiceSet, isServiceLiteral, KEYED_PROTOCOLS, parseServiceEntry, serviceMatches, ServiceSet } from '../services';
import { actionNames, CompiledPolicy, KEY_MAX, type ModbusPolicy, type OnViolation } from '../types';
import { Proto, protocolName } from '../../wire/protocols';
import { parseIPv4, parseIPv6, v6ToWords } from '../../wire/address-text';

type Address = { family: 4; value: number } | { family: 6; value: bigint };

export interface RuleCheck {
  name: string;
  line: number;
  action: string;
  from: boolean;
  to: boolean;
  service: boolean;
}

export interface ProbeExplanation {
  /** The packet examined, e.g. "tcp/502" or "icmp type 8 code 0". */
  packet: string;
  proto: number;
  key: number;
  decidedBy: { index: number; name: string; line: number; action: string; log: boolean; isDefault: boolean };
  /** Enabled rules before the deciding one that match two of the three fields. */
  nearMisses: RuleCheck[];
  /** Names of the enabled rules whose from / to / service match, in rule order. */
  matching: { from: string[]; to: string[]; service: string[] };
  /** Null when the deciding rule has no modbus block and no Modbus request was asked about. */
  modbus: ModbusCheck | null;
}

/** A Modbus request to ask about, as the CLI's flags give it (text, checked here). */
export interface ModbusQuestion {
  /** A function name, code (1-127) or 43/N, e.g. read-holding-registers, 3, 43/14. */
  function: string;
  /** A unit identifier 0-255; omitted: some unit the rule allows. */
  unit?: string;
  /** A (PDU) address or range A-B in the function's table; omitted: some address the rule allows. */
  address?: string;
}

export interface ModbusCheck {
  /** The deciding rule has a modbus block. */
  inspected: boolean;
  /** Asked about a request: null when it would pass, else why it would be refused. Undefined when not asked. */
  refused?: string | null;
}

export interface Explanation {
  ok: boolean;
  error?: string;
  fromGroups: string[];
  toGroups: string[];
  /** One per packet the service stands for (a named service may span several protocols). */
  probes: ProbeExplanation[];
  text: string;
}

function parseAddress(text: string): Address | null {
  const v4 = parseIPv4(text.trim());
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseIPv6(text.trim());
  return v6 === null ? null : { family: 6, value: v6 };
}

function addressIn(set: AddressSet, a: Address): boolean {
  return a.family === 4 ? intervalsContain(set.v4, a.value) : intervalsContain(set.v6, a.value);
}

/** Concrete (protocol, key) packets standing for a service: the first key of each term. */
function probesFor(model: PolicyModel, service: string): { proto: number; key: number }[] | string {
  const text = service.trim();
  let set: ServiceSet;
  if (isServiceLiteral(text)) {
    const e = parseServiceEntry(text);
    if (e.kind === 'error') return e.message;
    set = { any: false, protos: new Map([[e.proto, [e.lo, e.hi]]]) };
  } else {
    const named = model.services.get(text);
    if (!named) return `unknown service '${text}'`;
    set = named.set;
  }
  if (set.any) return [{ proto: Proto.UNKNOWN, key: 0 }];
  return [...set.protos].map(([proto, keys]) => ({ proto, key: ruleKeyOf(proto, keys[0], keys[0] >> 8, keys[0] & 0xff) }));
}

function describePacket(proto: number, key: number): string {
  if (proto === Proto.UNKNOWN) return 'a protocol no rule names (service any)';
  const name = protocolName(proto);
  if (proto === Proto.ICMP || proto === Proto.ICMPV6) return `${name} type ${key >> 8} code ${key & 255}`;
  return KEYED_PROTOCOLS.includes(proto) ? `${name}/${key}` : name;
}

const MAX_LISTED = 10;
const list = (names: string[]) =>
  names.length === 0
    ? 'none'
    : names.slice(0, MAX_LISTED).join(', ') + (names.length > MAX_LISTED ? `, ... (${names.length} in all)` : '');

/** A Modbus question, checked. */
interface Asked {
  function: number;
  /** MEI type of 43, -1 when not given. */
  subFunction: number;
  unit: number | null;
  range: [number, number] | null;
}

/** Functions whose request addresses one item (the parser sets quantity 1). */
const SINGLE_ADDRESS: readonly number[] = [FunctionCode.WriteSingleCoil, FunctionCode.WriteSingleRegister, FunctionCode.MaskWriteRegister, FunctionCode.ReadFifoQueue];

/** The most items one request may carry (the parser's bad_quantity beyond). 23's range is used for its read and its write. */
const QUANTITY_LIMITS: ReadonlyMap<number, number> = new Map([
  [FunctionCode.ReadCoils, Limits.readBits],
  [FunctionCode.ReadDiscreteInputs, Limits.readBits],
  [FunctionCode.ReadHoldingRegisters, Limits.readRegisters],
  [FunctionCode.ReadInputRegisters, Limits.readRegisters],
  [FunctionCode.WriteMultipleCoils, Limits.writeCoils],
  [FunctionCode.WriteMultipleRegisters, Limits.writeRegisters],
  [FunctionCode.ReadWriteMultipleRegisters, Math.min(Limits.readWriteRead, Limits.readWriteWrite)],
]);

const EXCEPTION_NAMES: Readonly<Record<number, string>> = { 1: 'illegal function', 2: 'illegal data address', 3: 'illegal data value', 11: 'gateway target device failed to respond' };

/** Length of the smallest ADU of such a request: MBAP header (7 bytes, the unit id included) and PDU. */
function aduLengthOf(fn: number, sub: number, quantity: number): number {
  switch (fn) {
    case FunctionCode.ReadCoils:
    case FunctionCode.ReadDiscreteInputs:
    case FunctionCode.ReadHoldingRegisters:
    case FunctionCode.ReadInputRegisters:
    case FunctionCode.WriteSingleCoil:
    case FunctionCode.WriteSingleRegister:
    case FunctionCode.Diagnostics:
      return 7 + 5;
    case FunctionCode.WriteMultipleCoils:
      return 7 + 6 + ((quantity + 7) >> 3);
    case FunctionCode.WriteMultipleRegisters:
      return 7 + 6 + 2 * quantity;
    case FunctionCode.MaskWriteRegister:
      return 7 + 7;
    case FunctionCode.ReadWriteMultipleRegisters:
      return 7 + 10 + 2 * quantity;
    case FunctionCode.ReadFifoQueue:
      return 7 + 3;
    case FunctionCode.ReadFileRecord:
      return 7 + 2 + 7;
    case FunctionCode.WriteFileRecord:
      return 7 + 2 + 9;
    case FunctionCode.EncapsulatedInterface:
      return 7 + (sub === MEI_READ_DEVICE_ID ? 4 : 2);
    default:
      return 7 + 1;
  }
}

function parseFunction(text: string): { function: number; subFunction: number } | string {
  const t = text.trim().toLowerCase();
  const bad = `--modbus-function '${text}'`;
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return n >= 1 && n <= 127 ? { function: n, subFunction: -1 } : `${bad}: a function code is 1-127`;
  }
  const mei = /^(\d+)\/(\d+)$/.exec(t);
  if (mei) {
    if (Number(mei[1]) !== FunctionCode.EncapsulatedInterface || Number(mei[2]) > 255) {
      return `${bad}: only function 43 takes a type after '/', 0-255 (43/14 reads device identification)`;
    }
    return { function: FunctionCode.EncapsulatedInterface, subFunction: Number(mei[2]) };
  }
  // A request has one function: "diagnostics" is function 8 here, not the class of that name.
  const code = functionNames.get(t);
  const members = functionClasses.get(t);
  if (code === undefined && members) return `${bad}: '${t}' is a class (${members.map(describeFunction).join(', ')}): name one function`;
  if (code === undefined) {
    return `${bad}: unknown function${didYouMean(t, functionNames.keys())} (a name such as read-holding-registers, a code 1-127, or 43/14)`;
  }
  return code === DEVICE_ID_BIT ? { function: FunctionCode.EncapsulatedInterface, subFunction: MEI_READ_DEVICE_ID } : { function: code, subFunction: -1 };
}

function parseQuestion(q: ModbusQuestion): Asked | string {
  const fn = parseFunction(q.function);
  if (typeof fn === 'string') return fn;
  let unit: number | null = null;
  if (q.unit !== undefined) {
    const t = q.unit.trim();
    if (!/^\d+$/.test(t) || Number(t) > 255) return `--unit '${q.unit}': a unit identifier is 0-255`;
    unit = Number(t);
  }
  let range: [number, number] | null = null;
  if (q.address !== undefined) {
    const what = describeRequestFunction(fn.function, fn.subFunction);
    const table = requestTable[fn.function];
    if (table === Table.None) return `--address '${q.address}': ${what} touches no data table, so it has no address`;
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(q.address);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? (m[2] === undefined ? lo : Number(m[2])) : NaN;
    if (!(hi < Limits.addressSpace)) return `--address '${q.address}': an address or a range A-B, 0-${Limits.addressSpace - 1}`;
    if (lo > hi) return `--address '${q.address}': the range starts after it ends`;
    if (lo !== hi && SINGLE_ADDRESS.includes(fn.function)) return `--address '${q.address}': ${what} addresses one item of ${tableNames[table]}: give one address`;
    range = [lo, hi];
  }
  return { ...fn, unit, range };
}

function describeRequestFunction(fn: number, sub: number): string {
  if (fn !== FunctionCode.EncapsulatedInterface) return describeFunction(fn);
  return sub === MEI_READ_DEVICE_ID ? describeFunction(DEVICE_ID_BIT) : `encapsulated-interface (43${sub < 0 ? '' : `/${sub}`})`;
}

const hasBit = (set: Uint32Array, n: number): boolean => (set[n >>> 5] & (1 << (n & 31))) !== 0;

/** "1-4, 16, 65-72" of the numbers < `bits` present in a bitset. */
function bitRanges(set: Uint32Array, bits: number): string {
  const parts: string[] = [];
  for (let n = 0; n < bits; n++) {
    if (!hasBit(set, n)) continue;
    let end = n;
    while (end + 1 < bits && hasBit(set, end + 1)) end++;
    parts.push(end === n ? String(n) : `${n}-${end}`);
    n = end;
  }
  return parts.join(', ');
}

function intervalText(iv: Uint32Array): string {
  const parts: string[] = [];
  for (let i = 0; i < iv.length; i += 2) parts.push(iv[i] === iv[i + 1] ? String(iv[i]) : `${iv[i]}-${iv[i + 1]}`);
  return parts.join(', ');
}

function functionsText(p: ModbusPolicy): string {
  const codes = bitRanges(p.functions, FUNCTION_BITS - 1);
  // Naming 43 sets 43/14 too: show 43/14 only when it is allowed alone.
  const device = hasBit(p.functions, DEVICE_ID_BIT) && !hasBit(p.functions, FunctionCode.EncapsulatedInterface) ? '43/14' : '';
  return [codes, device].filter((x) => x !== '').join(', ') || 'none';
}

function addressesText(p: ModbusPolicy): string {
  if (p.addresses === null) return 'any';
  const listed = tableNames.map((name, t) => (p.addresses![t].length > 0 ? `${name} ${intervalText(p.addresses![t])}` : '')).filter((x) => x !== '');
  return `${listed.join('; ')} (no address in any other table)`;
}

/** What on-violation does about a request refused for `reason`. */
function violationEffect(onViolation: OnViolation, reason: string): string {
  switch (onViolation) {
    case 'reset':
      return 'the connection is reset both ways';
    case 'drop':
      return 'the request is dropped silently (the client waits for its timeout) and the connection passes nothing more';
    case 'exception': {
      const code = exceptionCodeFor(reason);
      return `the client gets exception ${code.toString(16).padStart(2, '0').toUpperCase()} (${EXCEPTION_NAMES[code]}) and the server side is reset`;
    }
  }
}

/** A compiled modbus block in words: functions, units, addresses, max-length, on-violation. */
export function modbusBlockText(policy: ModbusPolicy): string {
  return `functions ${functionsText(policy)}; units ${policy.units === null ? 'any' : bitRanges(policy.units, 256)}; ` +
    `addresses ${addressesText(policy)}; max-length ${policy.maxLength}; on-violation ${policy.onViolation}`;
}

/** The lines saying what the deciding rule's modbus block makes of the request asked about. */
function explainModbus(
  policy: ModbusPolicy | null,
  rule: { name: string; action: string },
  asked: Asked | null,
  monitor: boolean,
  lines: string[],
): ModbusCheck | null {
  if (policy === null) {
    if (asked === null) return null;
    lines.push(
      rule.action === 'allow'
        ? `    rule '${rule.name}' does not inspect Modbus: any function passes`
        : `    the connection is not allowed (${rule.action}): no Modbus request reaches the server`,
    );
    return { inspected: false, refused: rule.action === 'allow' ? null : rule.action };
  }
  lines.push(`    inspected by its modbus block: ${modbusBlockText(policy)}`);
  if (asked === null) return { inspected: true };

  const fn = asked.function;
  const table = requestTable[fn];
  // Not given: the lowest unit / the first address the block allows, so that only what was given is judged.
  let unit = asked.unit;
  let unitNote = '';
  if (unit === null) {
    unit = 0;
    while (policy.units !== null && unit < 255 && !hasBit(policy.units, unit)) unit++;
    unitNote = policy.units === null ? ' (not given: any unit passes)' : ' (not given: one the block allows)';
  }
  let range = asked.range;
  let addressNote = '';
  if (range === null && table !== Table.None) {
    const allowed = policy.addresses?.[table];
    const some = allowed !== undefined && allowed.length > 0;
    range = some ? [allowed[0], allowed[0]] : [0, 0];
    addressNote = policy.addresses === null ? ' (not given: any address passes)' : some ? ' (not given: one the block allows)' : ' (not given)';
  }
  const quantity = range === null ? 0 : range[1] - range[0] + 1;
  const limit = QUANTITY_LIMITS.get(fn);
  const request: ModbusRequest = {
    malformed: limit !== undefined && quantity > limit ? 'bad_quantity' : null,
    aduLength: aduLengthOf(fn, asked.subFunction, quantity),
    function: fn,
    subFunction: asked.subFunction,
    unit,
    table,
    start: range?.[0] ?? 0,
    quantity,
    writeStart: fn === FunctionCode.ReadWriteMultipleRegisters ? (range?.[0] ?? 0) : 0,
    writeQuantity: fn === FunctionCode.ReadWriteMultipleRegisters ? quantity : 0,
  };
  const what = describeRequestFunction(fn, asked.subFunction);
  const span = range === null ? '' : range[0] === range[1] ? String(range[0]) : `${range[0]}-${range[1]}`;
  const where = range === null ? '' : `, ${tableNames[table]} ${span}${addressNote}`;
  const head = `    modbus request ${what}, unit ${unit}${unitNote}${where}`;
  const reason = decide(policy, request);
  if (reason === null) {
    lines.push(`${head}: allowed`);
    return { inspected: true, refused: null };
  }
  const why = (): string => {
    switch (reason) {
      case 'bad_quantity':
        return `${quantity} items are more than one ${what} request may carry (${limit}); the inspector refuses it as malformed`;
      case 'too_long':
        return `the request is at least ${request.aduLength} bytes, more than max-length ${policy.maxLength}`;
      case 'function_not_allowed':
        return `${what} is not among the block's functions`;
      case 'unit_not_allowed':
        return `unit ${unit} is not among the block's units`;
      case 'address_not_allowed':
        return policy.addresses![table].length === 0
          ? `the block allows no ${tableNames[table]} address`
          : `${tableNames[table]} ${span} is not inside one range the block allows`;
      default:
        return reason;
    }
  };
  lines.push(`${head}: refused (${reason}): ${why()}`);
  lines.push(monitor
    ? `      mode is monitor: the violation is counted and logged, and the request forwarded`
    : `      on-violation ${policy.onViolation}: ${violationEffect(policy.onViolation, reason)}`);
  return { inspected: true, refused: reason };
}

export function explainDecision(
  model: PolicyModel,
  policy: CompiledPolicy,
  from: string,
  to: string,
  service: string,
  modbus?: ModbusQuestion,
): Explanation {
  const fail = (error: string): Explanation => ({ ok: false, error, fromGroups: [], toGroups: [], probes: [], text: error });
  const asked = modbus === undefined ? null : parseQuestion(modbus);
  if (typeof asked === 'string') return fail(asked);
  const src = parseAddress(from);
  if (!src) return fail(`'${from}' is not an IPv4 or IPv6 address`);
  const dst = parseAddress(to);
  if (!dst) return fail(`'${to}' is not an IPv4 or IPv6 address`);
  if (src.family !== dst.family) return fail('from and to must both be IPv4 or both be IPv6');
  const probes = probesFor(model, service);
  if (typeof probes === 'string') return fail(probes);

  const groupsOf = (a: Address) =>
    a.family === 4 ? groupNamesFor4(model.groups, a.value) : groupNamesFor6(model.groups, v6ToWords(a.value));
  const fromGroups = groupsOf(src);
  const toGroups = groupsOf(dst);
  const rules = model.rules.filter((r) => r.enabled);
  const lines = [
    `${from} -> ${to} ${service}`,
    `  ${from} is in: ${list(fromGroups)}`,
    `  ${to} is in: ${list(toGroups)}`,
  ];
  const binding = model.bindings.find((b) => b.family === src.family && b.address === src.value);
  if (binding !== undefined) {
    lines.push(`  ${from} is bound to ${binding.mac} (line ${binding.line}): from any other MAC it is dropped as spoofed_source, whatever the rules say`);
  }

  const results = probes.map(({ proto, key }): ProbeExplanation => {
    const index =
      src.family === 4 && dst.family === 4
        ? policy.match4(src.value, dst.value, proto, key)
        : policy.match6(v6ToWords(src.value as bigint), v6ToWords(dst.value as bigint), proto, key);
    const decided = policy.rules[index];
    const check = (r: ModelRule): RuleCheck => ({
      name: r.name,
      line: r.line,
      action: r.action,
      from: addressIn(r.src, src),
      to: addressIn(r.dst, dst),
      service: serviceMatches(r.services, proto, key & KEY_MAX),
    });
    const checks = rules.map(check);
    const score = (c: RuleCheck) => Number(c.from) + Number(c.to) + Number(c.service);
    return {
      packet: describePacket(proto, key),
      proto,
      key,
      decidedBy: {
        index,
        name: decided.name,
        line: decided.line,
        action: actionNames[decided.action],
        log: decided.log,
        isDefault: decided.isDefault,
      },
      nearMisses: checks.slice(0, index).filter((c) => score(c) === 2),
      matching: {
        from: checks.filter((c) => c.from).map((c) => c.name),
        to: checks.filter((c) => c.to).map((c) => c.name),
        service: checks.filter((c) => c.service).map((c) => c.name),
      },
      modbus: null,
    };
  });

  for (const p of results) {
    const d = p.decidedBy;
    lines.push(`  ${p.packet}:`);
    if (d.isDefault) {
      lines.push(`    no rule matches: the default applies: ${d.action}${d.log ? ', logged' : ''}`);
    } else {
      const rule = rules[d.index];
      lines.push(`    decided by rule '${d.name}' (line ${d.line}): ${d.action}${d.log ? ', logged' : ''}`);
      lines.push(`      from ${rule.from.join(', ')} / to ${rule.to.join(', ')} / service ${formatServiceSet(rule.services)}`);
    }
    if (p.nearMisses.length > 0) {
      lines.push('    earlier rules that came close:');
      for (const c of p.nearMisses.slice(0, MAX_LISTED)) {
        const failed = !c.from ? `from does not contain ${from}` : !c.to ? `to does not contain ${to}` : `service does not include ${p.packet}`;
        lines.push(`      '${c.name}' (line ${c.line}, ${c.action}): ${failed}`);
      }
    }
    lines.push(`    rules matching from: ${list(p.matching.from)}`);
    lines.push(`    rules matching to: ${list(p.matching.to)}`);
    lines.push(`    rules matching the service: ${list(p.matching.service)}`);
    p.modbus = explainModbus(policy.rules[d.index].modbus, d, asked, model.mode === 'monitor', lines);
  }
  if (model.mode === 'monitor') lines.push('  mode is monitor: the packet is forwarded whatever the decision, and drops are only recorded');
  return { ok: true, fromGroups, toGroups, probes: results, text: lines.join('\n') };
}
