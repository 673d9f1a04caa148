// The builder of a rule's `modbus:` block: from the parsed YAML value to the compiled ModbusPolicy
// (types.ts) as plain data, bitsets and sorted intervals. Runs when a policy loads, never per packet.
// Locating errors in the policy text is the loader's job: the builder reports paths inside the block.

import { DEVICE_ID_BIT, FUNCTION_WORDS, FunctionCode, Limits, classesGrant, functionClasses, functionNames, tableNames } from './modbus-functions';
import { onViolationActions, type ModbusPolicy, type OnViolation } from './types';

export interface BlockError {
  /** Where in the block, e.g. "functions[2]" or "addresses.coils[0]". */
  path: string;
  message: string;
}

export type CompileResult = { policy: ModbusPolicy; errors?: undefined } | { policy?: undefined; errors: BlockError[] };

function setBit(set: Uint32Array, n: number): void {
  set[n >>> 5] |= 1 << (n & 31);
}

const blockKeys = ['functions', 'units', 'addresses', 'max-length', 'on-violation'];

/** A number or "lo-hi" within [min, max] as an inclusive pair, or an error message. */
function parseRange(item: unknown, min: number, max: number): [number, number] | string {
  let lo: number;
  let hi: number;
  if (typeof item === 'number') {
    lo = hi = item;
  } else if (typeof item === 'string' && /^\s*\d+\s*(-\s*\d+\s*)?$/.test(item)) {
    const [a, b] = item.split('-');
    lo = Number(a);
    hi = b === undefined ? lo : Number(b);
  } else {
    return `expected a number or a range like "${min}-${min + 9}", got ${JSON.stringify(item)}`;
  }
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < min || hi > max) return `must be within ${min}-${max}`;
  if (lo > hi) return `range ${lo}-${hi} is reversed`;
  return [lo, hi];
}

function list(value: unknown, path: string, errors: BlockError[]): unknown[] | null {
  if (Array.isArray(value) && value.length > 0) return value;
  errors.push({ path, message: Array.isArray(value) ? 'must not be empty' : 'expected a list' });
  return null;
}

/** Sorted, merged [lo, hi] pairs of the ranges given. */
function intervals(pairs: [number, number][]): Uint32Array {
  pairs.sort((x, y) => x[0] - y[0]);
  const merged: number[] = [];
  for (const [lo, hi] of pairs) {
    const n = merged.length;
    if (n > 0 && lo <= merged[n - 1] + 1) merged[n - 1] = Math.max(merged[n - 1], hi);
    else merged.push(lo, hi);
  }
  return Uint32Array.from(merged);
}

function compileFunctions(value: unknown, errors: BlockError[]): Uint32Array {
  const set = new Uint32Array(FUNCTION_WORDS);
  const items = list(value, 'functions', errors);
  if (items === null) return set;
  const classes = new Set<string>();
  items.forEach((item, i) => {
    const path = `functions[${i}]`;
    if (typeof item === 'number') {
      if (Number.isInteger(item) && item >= 1 && item <= 127) setBit(set, item);
      else errors.push({ path, message: 'a function code is 1-127' });
      return;
    }
    if (typeof item !== 'string') {
      errors.push({ path, message: `expected a function name, class or code, got ${JSON.stringify(item)}` });
      return;
    }
    const name = item.trim();
    const codes = functionClasses.get(name);
    if (codes) {
      classes.add(name);
      for (const c of codes) setBit(set, c);
      return;
    }
    const code = name === '43/14' ? DEVICE_ID_BIT : functionNames.get(name);
    if (code === undefined) {
      errors.push({ path, message: `unknown function "${name}" (classes: ${[...functionClasses.keys()].join(', ')}; or a name such as write-single-register, or a code)` });
      return;
    }
    setBit(set, code);
    // Naming 43 allows every MEI type, device identification included.
    if (code === FunctionCode.EncapsulatedInterface) setBit(set, DEVICE_ID_BIT);
  });
  for (const c of classesGrant(classes)) setBit(set, c);
  return set;
}

function compileUnits(value: unknown, errors: BlockError[]): Uint32Array | null {
  if (value === undefined) return null;
  const set = new Uint32Array(8);
  const items = list(value, 'units', errors);
  items?.forEach((item, i) => {
    const r = parseRange(item, 0, 255);
    if (typeof r === 'string') errors.push({ path: `units[${i}]`, message: r });
    else for (let u = r[0]; u <= r[1]; u++) setBit(set, u);
  });
  return set;
}

function compileAddresses(value: unknown, errors: BlockError[]): Uint32Array[] | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    errors.push({ path: 'addresses', message: `expected a map of tables (${tableNames.join(', ')})` });
    return null;
  }
  const tables: Uint32Array[] = tableNames.map(() => new Uint32Array(0));
  for (const [key, ranges] of Object.entries(value)) {
    const table = tableNames.indexOf(key);
    const path = `addresses.${key}`;
    if (table < 0) {
      errors.push({ path, message: `unknown table "${key}" (tables: ${tableNames.join(', ')})` });
      continue;
    }
    const pairs: [number, number][] = [];
    list(ranges, path, errors)?.forEach((item, i) => {
      const r = parseRange(item, 0, Limits.addressSpace - 1);
      if (typeof r === 'string') errors.push({ path: `${path}[${i}]`, message: r });
      else pairs.push(r);
    });
    tables[table] = intervals(pairs);
  }
  return tables;
}

/** Compile a rule's `modbus:` block (the parsed YAML value); errors carry paths inside the block. */
export function compileModbusBlock(block: unknown): CompileResult {
  const errors: BlockError[] = [];
  if (typeof block !== 'object' || block === null || Array.isArray(block)) {
    return { errors: [{ path: '', message: 'expected a map with functions (and optionally units, addresses, max-length, on-violation)' }] };
  }
  const b = block as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!blockKeys.includes(key)) errors.push({ path: key, message: `unknown key (keys: ${blockKeys.join(', ')})` });
  }
  if (b.functions === undefined) errors.push({ path: 'functions', message: 'required: which functions the rule allows' });
  const functions = b.functions === undefined ? new Uint32Array(FUNCTION_WORDS) : compileFunctions(b.functions, errors);
  const units = compileUnits(b.units, errors);
  const addresses = compileAddresses(b.addresses, errors);
  let maxLength: number = Limits.aduMax;
  if (b['max-length'] !== undefined) {
    const v = b['max-length'];
    // The smallest ADU is 8 bytes: MBAP header and a function code.
    if (typeof v === 'number' && Number.isInteger(v) && v >= 8 && v <= Limits.aduMax) maxLength = v;
    else errors.push({ path: 'max-length', message: `an ADU length in bytes, 8-${Limits.aduMax}` });
  }
  let onViolation: OnViolation = 'reset';
  if (b['on-violation'] !== undefined) {
    const v = b['on-violation'];
    if (typeof v === 'string' && (onViolationActions as readonly string[]).includes(v)) onViolation = v as OnViolation;
    else errors.push({ path: 'on-violation', message: `one of ${onViolationActions.join(', ')}` });
  }
  if (errors.length > 0) return { errors };
  return { policy: { functions, units, addresses, maxLength, onViolation } };
}
