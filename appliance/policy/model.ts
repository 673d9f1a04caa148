// The resolved policy: groups and services expanded to intervals, rules pointing at them (and at
// their compiled `modbus:` blocks, built by modbus-block.ts), the address@MAC bindings, flow settings
// in milliseconds. Semantic checks (names, cycles, literals, bindings, where a modbus block may
// stand) happen here; positions are reported as document paths and turned into line:col by load.ts.

import { AddressSet, anyAddressSet, emptyAddressSet, intervalsContain, isAddressLiteral, mergeIntervals, parseAddressEntry, unionAddressSets } from './addresses';
import { compileModbusBlock } from './modbus-block';
import { DEVICE_ID_BIT, FUNCTION_BITS, functionClasses, functionNames, requestTable, Table, tableNames } from './modbus-functions';
import { FLOW_KEYS, MODBUS_KEYS, NamedSetDef, PolicyDocument, Refs, RuleDoc } from './schema';
import {
  anyServiceSet, BUILTIN_SERVICES, formatServiceSet, isServiceLiteral, parseServiceEntry, ServiceSet, serviceMatches, serviceSetOf, unionServiceSets,
} from './services';
import { ActionName, FlowSettings, KEY_MAX, Mode, ModbusPolicy } from './types';
import { ETHERTYPE_NAMES, Proto, PROTOCOL_NAMES } from '../wire/protocols';
import { wordsToV6 } from '../wire/address-text';

export type Path = (string | number)[];

export interface Reporter {
  error(path: Path, message: string, onKey?: boolean): void;
  warning(path: Path, message: string, onKey?: boolean): void;
  /** 1-based line of the node at path, or of its key (0 when unknown). */
  line(path: Path, onKey?: boolean): number;
}

export interface ModelRule {
  name: string;
  description?: string;
  action: ActionName;
  log: boolean;
  enabled: boolean;
  /** Index in the compiled rule table, -1 when disabled. */
  index: number;
  path: Path;
  line: number;
  from: string[];
  to: string[];
  service: string[];
  src: AddressSet;
  dst: AddressSet;
  services: ServiceSet;
  /** The compiled `modbus:` block, null without one. */
  modbus: ModbusPolicy | null;
}

export interface ModelGroup {
  name: string;
  description?: string;
  addresses: AddressSet;
}

export interface ModelService {
  name: string;
  description?: string;
  set: ServiceSet;
  builtin: boolean;
}

/** An `address@MAC` entry: packets claiming the address from another MAC are spoofed. */
export interface Binding {
  family: 4 | 6;
  /** The address: an unsigned 32-bit number (IPv4) or a 128-bit bigint (IPv6). */
  address: number | bigint;
  /** Lower case, colon separated. */
  mac: string;
  /** Where it is first written (1-based). */
  line: number;
}

export const DEFAULT_FLOW_SETTINGS: Readonly<FlowSettings> = {
  maxFlows: 100_000,
  tcpEstablishedIdleMs: 3_600_000,
  tcpOpeningIdleMs: 30_000,
  tcpClosingIdleMs: 15_000,
  udpIdleMs: 60_000,
  icmpIdleMs: 10_000,
  otherIdleMs: 60_000,
  pickupEstablished: false,
  fragmentTimeoutMs: 5_000,
};

const FLOW_FIELDS: Record<keyof typeof FLOW_KEYS, keyof FlowSettings> = {
  'max-flows': 'maxFlows',
  'tcp-established-idle': 'tcpEstablishedIdleMs',
  'tcp-opening-idle': 'tcpOpeningIdleMs',
  'tcp-closing-idle': 'tcpClosingIdleMs',
  'udp-idle': 'udpIdleMs',
  'icmp-idle': 'icmpIdleMs',
  'other-idle': 'otherIdleMs',
  'fragment-timeout': 'fragmentTimeoutMs',
  'pickup-established': 'pickupEstablished',
};

const ALWAYS_PASSED_ETHERTYPES = new Set([0x0800, 0x0806, 0x86dd]);

export class PolicyModel {
  constructor(
    readonly mode: Mode,
    readonly defaultAction: 'allow' | 'deny',
    /** Log the packets the implicit default rule decides. */
    readonly defaultLog: boolean,
    readonly groups: Map<string, ModelGroup>,
    readonly services: Map<string, ModelService>,
    /** All rules in file order, disabled ones included (index -1). */
    readonly rules: ModelRule[],
    readonly flow: FlowSettings,
    readonly l2Allow: number[],
    /** The address@MAC bindings, one per address, in file order. */
    readonly bindings: Binding[],
  ) {}
}

/**
 * Declared groups containing an IPv4 address (for logs and explain; not for the packet path). Takes
 * the groups, not the model: a dataplane keeps only the groups of each policy generation.
 */
export function groupNamesFor4(groups: ReadonlyMap<string, ModelGroup>, addr: number): string[] {
  const v = addr >>> 0;
  return [...groups.values()].filter((g) => intervalsContain(g.addresses.v4, v)).map((g) => g.name);
}

export function groupNamesFor6(groups: ReadonlyMap<string, ModelGroup>, words: ArrayLike<number>): string[] {
  const v = wordsToV6(words);
  return [...groups.values()].filter((g) => intervalsContain(g.addresses.v6, v)).map((g) => g.name);
}

interface Entry {
  text: string;
  path: Path;
}

function entriesOf(refs: Refs, path: Path): Entry[] {
  return typeof refs === 'string' ? [{ text: refs, path }] : refs.map((text, i) => ({ text, path: [...path, i] }));
}

function splitDef(def: Refs | NamedSetDef, path: Path): { description?: string; entries: Entry[] } {
  if (typeof def === 'string' || Array.isArray(def)) return { entries: entriesOf(def, path) };
  return { description: def.description, entries: entriesOf(def.members, [...path, 'members']) };
}

/**
 * Named sets that contain literals and other names (groups, services). Resolves lazily with
 * memoization; a reference cycle is reported once with its path.
 */
class NamedSets<T> {
  private readonly done = new Map<string, T | null>();
  readonly used = new Set<string>();

  constructor(
    private readonly kind: 'group' | 'service',
    private readonly defs: Map<string, { path: Path; entries: Entry[] }>,
    private readonly builtins: Map<string, T>,
    private readonly isLiteral: (text: string) => boolean,
    private readonly parseLiteral: (text: string, path: Path) => T | null,
    private readonly union: (sets: T[]) => T,
    private readonly report: Reporter,
  ) {}

  /** Resolves a list of entries; null when any entry failed (already reported). */
  resolveEntries(entries: Entry[], stack: string[] = []): T | null {
    const sets: T[] = [];
    let ok = true;
    for (const e of entries) {
      const text = e.text.trim();
      const set = this.isLiteral(text) ? this.parseLiteral(text, e.path) : this.resolveName(text, e.path, stack);
      if (set === null) ok = false;
      else sets.push(set);
    }
    return ok ? this.union(sets) : null;
  }

  private resolveName(name: string, at: Path, stack: string[]): T | null {
    this.used.add(name);
    if (stack.includes(name)) {
      this.report.error(at, `${this.kind} cycle: ${[...stack.slice(stack.indexOf(name)), name].join(' -> ')}`);
      return null;
    }
    if (this.done.has(name)) return this.done.get(name) ?? null;
    const def = this.defs.get(name);
    if (!def) {
      const builtin = this.builtins.get(name);
      if (builtin !== undefined) return builtin;
      const known = [...this.defs.keys(), ...this.builtins.keys()];
      this.report.error(at, `unknown ${this.kind} '${name}'${didYouMean(name, known)}`);
      return null;
    }
    const set = this.resolveEntries(def.entries, [...stack, name]);
    this.done.set(name, set);
    return set;
  }

  /** Resolves every definition, so that errors in unused ones are reported too. */
  resolveAll(): Map<string, T> {
    const out = new Map<string, T>();
    for (const name of this.defs.keys()) {
      const wasUsed = this.used.has(name);
      const set = this.resolveName(name, this.defs.get(name)!.path, []);
      if (!wasUsed) this.used.delete(name);
      if (set !== null) out.set(name, set);
    }
    return out;
  }
}

export function didYouMean(word: string, candidates: Iterable<string>): string {
  let best = '';
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best ? ` (did you mean '${best}'?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  let ms = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]];
  return ms;
}

function defsOf(section: Record<string, Refs | NamedSetDef> | undefined, key: string) {
  const defs = new Map<string, { path: Path; entries: Entry[]; description?: string }>();
  for (const [name, def] of Object.entries(section ?? {})) defs.set(name, { path: [key, name], ...splitDef(def, [key, name]) });
  return defs;
}

type Defs = ReturnType<typeof defsOf>;

/**
 * Resolves a schema-valid document. Reports every semantic error and returns null if there was
 * any; warnings do not prevent a model. The steps run in this order, which is the order of their
 * diagnostics at one position.
 */
export function resolvePolicy(doc: PolicyDocument, report: Reporter): PolicyModel | null {
  let errors = 0;
  const counted: Reporter = {
    error: (path, message, onKey) => {
      errors++;
      report.error(path, message, onKey);
    },
    warning: (path, message, onKey) => report.warning(path, message, onKey),
    line: (path, onKey) => report.line(path, onKey),
  };

  const groupDefs = defsOf(doc.groups, 'groups');
  const serviceDefs = defsOf(doc.services, 'services');
  checkDefinedNames(groupDefs, serviceDefs, counted);
  const bindings = new Map<string, Binding>();
  const groups = groupSets(groupDefs, bindings, counted);
  const builtinServices = builtinServiceSets();
  const services = serviceSets(serviceDefs, builtinServices, counted);
  const rules = resolveRules(doc.rules ?? [], groups, services, counted);
  const resolvedGroups = groups.resolveAll();
  const resolvedServices = services.resolveAll();
  warnUnused('group', groupDefs, groups, counted);
  warnUnused('service', serviceDefs, services, counted);
  const { mode, defaultAction } = resolveDefaults(doc, counted);
  const flow = resolveFlowSettings(doc.flows, counted);
  const l2Allow = resolveL2Allow(doc.l2?.allow ?? [], counted);

  if (errors > 0) return null;
  const groupMap = new Map<string, ModelGroup>();
  for (const [name, addresses] of resolvedGroups) groupMap.set(name, { name, description: groupDefs.get(name)?.description, addresses });
  const serviceMap = new Map<string, ModelService>();
  for (const [name, set] of builtinServices) serviceMap.set(name, { name, set, builtin: true });
  for (const [name, set] of resolvedServices) {
    serviceMap.set(name, { name, description: serviceDefs.get(name)?.description, set, builtin: false });
  }
  return new PolicyModel(mode, defaultAction, doc['default-log'] ?? true, groupMap, serviceMap, rules, flow, l2Allow, [...bindings.values()]);
}

/** Names that are built in ('any', protocol names) or replace a built-in service. */
function checkDefinedNames(groupDefs: Defs, serviceDefs: Defs, report: Reporter): void {
  if (groupDefs.has('any')) report.error(['groups', 'any'], `'any' is built in and cannot be redefined`, true);
  if (serviceDefs.has('any')) report.error(['services', 'any'], `'any' is built in and cannot be redefined`, true);
  for (const name of serviceDefs.keys()) {
    if (Object.hasOwn(PROTOCOL_NAMES, name.toLowerCase())) {
      report.error(['services', name], `'${name}' is a protocol name and cannot be a service name`, true);
    } else if (Object.hasOwn(BUILTIN_SERVICES, name)) {
      report.warning(['services', name], `service '${name}' replaces the built-in service of the same name`, true);
    }
  }
}

/**
 * Records an address@MAC entry in `bindings` (keyed by family and address). One address has one
 * MAC: a second, different MAC is an error, since the bridge could not tell which one is the asset.
 * The same binding written twice, or one MAC bound to several addresses (a host with IPv4 and IPv6,
 * or several addresses on one NIC), is fine.
 */
function bind(bindings: Map<string, Binding>, family: 4 | 6, address: number | bigint, mac: string, text: string, path: Path, report: Reporter): boolean {
  const key = `${family}/${address}`;
  const earlier = bindings.get(key);
  if (earlier === undefined) {
    bindings.set(key, { family, address, mac, line: report.line(path) });
    return true;
  }
  if (earlier.mac === mac) return true;
  const addressText = text.slice(0, text.indexOf('@')).trim();
  report.error(path, `${addressText} is already bound to ${earlier.mac} (line ${earlier.line}); an address can be bound to one MAC only`);
  return false;
}

function groupSets(defs: Defs, bindings: Map<string, Binding>, report: Reporter): NamedSets<AddressSet> {
  return new NamedSets<AddressSet>(
    'group',
    defs,
    new Map([['any', anyAddressSet()]]),
    isAddressLiteral,
    (text, path) => {
      const e = parseAddressEntry(text);
      switch (e.kind) {
        case 'error':
          report.error(path, e.message);
          return null;
        case 'mac':
          report.warning(path, `MAC address ${e.mac} is not matched by rules (rules match IP addresses); it only names the asset. To have the bridge enforce it, bind it to the asset's address: ADDRESS@${e.mac}`);
          return { ...emptyAddressSet(), macs: [e.mac] };
        case 'bound':
          if (!bind(bindings, e.family, e.lo, e.mac, text, path, report)) return null;
          return e.family === 4 ? { v4: [e.lo, e.hi], v6: [], macs: [] } : { v4: [], v6: [e.lo, e.hi], macs: [] };
        case 'v4':
          return { v4: [e.lo, e.hi], v6: [], macs: [] };
        case 'v6':
          return { v4: [], v6: [e.lo, e.hi], macs: [] };
      }
    },
    unionAddressSets,
    report,
  );
}

/** 'any' and the built-in services, parsed (a bad built-in is a bug: it throws). */
function builtinServiceSets(): Map<string, ServiceSet> {
  const builtins = new Map<string, ServiceSet>([['any', anyServiceSet()]]);
  for (const [name, specs] of Object.entries(BUILTIN_SERVICES)) {
    const set = unionServiceSets(
      specs.map((s) => {
        const e = parseServiceEntry(s);
        if (e.kind === 'error') throw new Error(`built-in service ${name}: ${e.message}`);
        return serviceSetOf(e);
      }),
      mergeIntervals,
    );
    builtins.set(name, set);
  }
  return builtins;
}

function serviceSets(defs: Defs, builtins: Map<string, ServiceSet>, report: Reporter): NamedSets<ServiceSet> {
  return new NamedSets<ServiceSet>(
    'service',
    defs,
    builtins,
    isServiceLiteral,
    (text, path) => {
      const e = parseServiceEntry(text);
      if (e.kind === 'ok') return serviceSetOf(e);
      report.error(path, e.message);
      return null;
    },
    (sets) => unionServiceSets(sets, mergeIntervals),
    report,
  );
}

/** The rules in file order; one that cannot be resolved is reported and left out. */
function resolveRules(docs: PolicyDocument['rules'], groups: NamedSets<AddressSet>, services: NamedSets<ServiceSet>, report: Reporter): ModelRule[] {
  const rules: ModelRule[] = [];
  const ruleNames = new Map<string, number>();
  let index = 0;
  docs.forEach((r, i) => {
    const path: Path = ['rules', i];
    const previous = ruleNames.get(r.name);
    if (previous !== undefined) {
      report.error([...path, 'name'], `duplicate rule name '${r.name}' (first used on line ${report.line(['rules', previous])})`);
    }
    ruleNames.set(r.name, i);
    const fromEntries = entriesOf(r.from, [...path, 'from']);
    const toEntries = entriesOf(r.to, [...path, 'to']);
    const serviceEntries = entriesOf(r.service, [...path, 'service']);
    const src = groups.resolveEntries(fromEntries);
    const dst = groups.resolveEntries(toEntries);
    const svc = services.resolveEntries(serviceEntries);
    // Checked even when the rest of the rule failed, so that every error is reported at once.
    const modbus = r.modbus === undefined ? null : resolveModbus(r, path, serviceEntries, svc, services, report);
    if (!src || !dst || !svc || modbus === undefined) return;
    for (const [set, key] of [
      [src, 'from'],
      [dst, 'to'],
    ] as const) {
      if (set.v4.length === 0 && set.v6.length === 0) {
        report.error([...path, key], `'${key}' has no IP addresses (MAC entries are not matched), so the rule can never match`);
        return;
      }
    }
    if ((src.v4.length === 0 || dst.v4.length === 0) && (src.v6.length === 0 || dst.v6.length === 0)) {
      report.error(path, `rule '${r.name}' can never match: 'from' and 'to' have no address family (IPv4/IPv6) in common`);
      return;
    }
    const enabled = r.enabled ?? true;
    rules.push({
      name: r.name,
      description: r.description,
      action: r.action,
      log: r.log ?? false,
      enabled,
      index: enabled ? index++ : -1,
      path,
      line: report.line(path),
      from: fromEntries.map((e) => e.text),
      to: toEntries.map((e) => e.text),
      service: serviceEntries.map((e) => e.text),
      src,
      dst,
      services: svc,
      modbus,
    });
  });
  return rules;
}

/** The document path of a BlockError's path inside the block ("functions[2]", "addresses.coils[0]"). */
function blockPath(path: string): Path {
  const item = /^(functions|units)\[(\d+)\]$/.exec(path);
  if (item) return [item[1], Number(item[2])];
  const table = /^addresses\.(.+?)(?:\[(\d+)\])?$/.exec(path);
  if (table) return table[2] === undefined ? ['addresses', table[1]] : ['addresses', table[1], Number(table[2])];
  return path === '' ? [] : [path];
}

/** Code -> function name, for messages ("write-single-register (6)"). */
const functionNameOf = new Map([...functionNames].map(([name, code]) => [code, name]));

export function describeFunction(code: number): string {
  if (code === DEVICE_ID_BIT) return 'read-device-identification (43/14)';
  const name = functionNameOf.get(code);
  return name === undefined ? `function ${code}` : `${name} (${code})`;
}

/**
 * A rule's `modbus:` block, compiled; every error reported at its node. Undefined when there was an
 * error. The block inspects allowed TCP connections only: a deny or reject rule forwards nothing to
 * inspect, and a UDP or ICMP flow carries no Modbus/TCP stream. `svc` is the rule's services, null
 * when they failed (reported already: the entries are not looked at again).
 */
function resolveModbus(
  r: RuleDoc,
  path: Path,
  serviceEntries: Entry[],
  svc: ServiceSet | null,
  services: NamedSets<ServiceSet>,
  report: Reporter,
): ModbusPolicy | undefined {
  const at: Path = [...path, 'modbus'];
  const blockLine = report.line(at, true);
  let ok = true;
  if (r.action !== 'allow') {
    report.error(at, `a modbus block needs action allow: a ${r.action} rule forwards no connection to inspect`, true);
    ok = false;
  }
  for (const e of svc === null ? [] : serviceEntries) {
    // Each entry again, to name the one that is not TCP (resolved names are memoized).
    const set = services.resolveEntries([e]);
    if (set === null) continue;
    if (set.any) {
      report.error(e.path, `'${e.text}' matches every protocol, but the rule's modbus block (line ${blockLine}) inspects TCP only: name the Modbus service (modbus, tcp/502)`);
      ok = false;
      continue;
    }
    const other = [...set.protos].filter(([proto]) => proto !== Proto.TCP);
    if (other.length > 0) {
      const what = formatServiceSet({ any: false, protos: new Map(other) });
      report.error(e.path, `'${e.text}' includes ${what}, but the rule's modbus block (line ${blockLine}) inspects TCP only`);
      ok = false;
    }
  }
  const block = r.modbus as Record<string, unknown>;
  const compiled = compileModbusBlock(block);
  if (compiled.errors) {
    for (const e of compiled.errors) {
      const inner = blockPath(e.path);
      const last = inner[inner.length - 1];
      // An unknown key or table is the key's fault, anything else its value's.
      const onKey = inner.length === 1 ? !(MODBUS_KEYS as readonly string[]).includes(String(last))
        : inner.length === 2 && inner[0] === 'addresses' && !tableNames.includes(String(last));
      let hint = '';
      const value = inner.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], block);
      if (inner[0] === 'functions' && inner.length === 2 && typeof value === 'string') {
        hint = didYouMean(value.trim(), [...functionClasses.keys(), ...functionNames.keys()]);
      } else if (onKey && inner[0] === 'addresses') {
        hint = didYouMean(String(last), tableNames);
      }
      report.error([...at, ...inner], `modbus${e.path === '' ? '' : ` ${e.path}`}: ${e.message}${hint}`, onKey);
    }
    return undefined;
  }
  if (!ok || svc === null) return undefined;
  warnModbus(compiled.policy, svc.protos.get(Proto.TCP) ?? [], at, report);
  return compiled.policy;
}

/** The registered Modbus/TCP port. */
const MODBUS_PORT = 502;

const allowed = (set: Uint32Array, n: number): boolean => (set[n >>> 5] & (1 << (n & 31))) !== 0;

/** Legal blocks that likely do not do what their author meant. */
function warnModbus(policy: ModbusPolicy, ports: number[], at: Path, report: Reporter): void {
  // `ports`: the rule's merged TCP port intervals (its services are TCP only).
  const tcp: ServiceSet = { any: false, protos: new Map([[Proto.TCP, ports]]) };
  if (ports.length === 2 && ports[0] === 0 && ports[1] === KEY_MAX) {
    report.warning(at, 'the rule allows every TCP port: each connection it allows is inspected as Modbus/TCP, and one that is not Modbus is refused', true);
  } else if (!serviceMatches(tcp, Proto.TCP, MODBUS_PORT)) {
    report.warning(at, `the rule's service (${formatServiceSet(tcp)}) does not include tcp/${MODBUS_PORT}: its connections are inspected as Modbus/TCP all the same`, true);
  }
  if (policy.addresses === null) return;
  const touched = new Map<number, number[]>();
  for (let code = 0; code < FUNCTION_BITS; code++) {
    const table = code < requestTable.length ? requestTable[code] : Table.None;
    if (table === Table.None || !allowed(policy.functions, code)) continue;
    touched.get(table)?.push(code) ?? touched.set(table, [code]);
  }
  const unlisted = [...touched].filter(([table]) => policy.addresses![table].length === 0);
  if (unlisted.length > 0) {
    const codes = unlisted.flatMap(([, list]) => list).map(describeFunction).join(', ');
    report.warning(
      [...at, 'addresses'],
      `addresses lists no ${unlisted.map(([table]) => tableNames[table]).join(', ')}: ${codes} pass the functions but are always refused there (a table not listed allows no address)`,
      true,
    );
  }
  tableNames.forEach((name, table) => {
    if (policy.addresses![table].length > 0 && !touched.has(table)) {
      report.warning([...at, 'addresses', name], `no function the rule allows reads or writes ${name}: these addresses never apply`, true);
    }
  });
}

function warnUnused<T>(kind: 'group' | 'service', defs: Defs, sets: NamedSets<T>, report: Reporter): void {
  const section = kind === 'group' ? 'groups' : 'services';
  for (const name of defs.keys()) {
    if (!sets.used.has(name)) report.warning([section, name], `${kind} '${name}' is not used`, true);
  }
}

function resolveDefaults(doc: PolicyDocument, report: Reporter): { mode: Mode; defaultAction: 'allow' | 'deny' } {
  const mode = doc.mode ?? 'enforce';
  const defaultAction = doc.default ?? 'deny';
  if (mode === 'monitor') {
    report.warning(['mode'], 'mode is monitor: nothing is blocked, would-be drops are only recorded');
  }
  if (defaultAction === 'allow') {
    report.warning(['default'], 'default is allow: traffic that no rule matches is forwarded');
  }
  return { mode, defaultAction };
}

function resolveFlowSettings(flows: PolicyDocument['flows'], report: Reporter): FlowSettings {
  const flow: FlowSettings = { ...DEFAULT_FLOW_SETTINGS };
  for (const [key, value] of Object.entries(flows ?? {})) {
    const field = FLOW_FIELDS[key as keyof typeof FLOW_KEYS];
    const kind = FLOW_KEYS[key as keyof typeof FLOW_KEYS];
    if (kind === 'duration') {
      const ms = parseDuration(String(value));
      if (ms <= 0) report.error(['flows', key], `${key} must be longer than 0`);
      (flow as unknown as Record<string, number>)[field] = ms;
    } else {
      (flow as unknown as Record<string, unknown>)[field] = value;
    }
  }
  return flow;
}

/** `l2.allow`: EtherType names or numbers, beyond the always-passed IPv4, IPv6 and ARP. */
function resolveL2Allow(items: (string | number)[], report: Reporter): number[] {
  const l2Allow: number[] = [];
  items.forEach((item, i) => {
    const path: Path = ['l2', 'allow', i];
    const text = String(item).toLowerCase();
    const value =
      typeof item === 'number'
        ? item
        : Object.hasOwn(ETHERTYPE_NAMES, text)
          ? ETHERTYPE_NAMES[text]
          : /^0x[0-9a-f]{1,4}$/.test(text)
            ? parseInt(text, 16)
            : NaN;
    if (Number.isNaN(value)) {
      report.error(path, `unknown EtherType '${item}'${didYouMean(text, Object.keys(ETHERTYPE_NAMES))} (use a name or a number like 0x88cc)`);
    } else if (value < 0x0600 || value > 0xffff) {
      report.error(path, `EtherType ${item} out of range (0x0600..0xffff)`);
    } else if (ALWAYS_PASSED_ETHERTYPES.has(value)) {
      report.warning(path, `EtherType ${item} always passes (IPv4 and IPv6 go through the rules, ARP always passes)`);
    } else {
      l2Allow.push(value);
    }
  });
  return l2Allow;
}
