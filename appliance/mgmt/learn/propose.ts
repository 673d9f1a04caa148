// Propose: a policy built from what the inventory saw on a pair, and how much of the recent traffic
// it allows. A pure function (conversations, assets, active policy text, now, hours → Proposal): it
// reads no state and changes nothing; nothing it builds is applied without review (review.ts) and the
// policy service's apply. Compiling and matching 100k conversations takes long on the event loop:
// callers run it through propose-worker.ts.
//
// Decisions (docs/ot.md "Learn mode"):
// - One group per asset, named from identity (LLDP system name, DHCP host name, Modbus product,
//   vendor, else address). Assets with identical behaviour (same peers, services and Modbus
//   functions and units, as client and as server) share one group, so the rules still allow exactly the pairs
//   seen. Members are the addresses the asset used in the conversations, bound to its MAC
//   (address@MAC) unless it is a router, the address is also used by another asset, or the active
//   policy binds it to another MAC.
// - One rule per (client group, server group, service). A Modbus rule gets `functions: [read]` when
//   only read functions were seen, else the exact functions (names, codes for unnamed ones), and
//   `units:` the unit identifiers the requests named (none seen: any unit, as before).
// - Left out, with a named reason (LEFT_OUT_REASONS): conversations dropped while enforcing (the
//   plant worked without them: a person opens them by hand if they are needed), conversations an
//   explicit deny/reject rule of the active policy decides (a learned rule after it would never
//   match), multicast/broadcast, ends that are no asset of the pair, services the policy language
//   cannot name. Conversations an explicit allow rule of the active policy already allows get no
//   learned rule and count as allowed.
// - Coverage: the merged text (active + everything proposed) is compiled and every conversation
//   last seen in the window is decided with the real matcher; share = allowed / all.

import { loadPolicyText } from '../../policy/load';
import { functionClasses, functionNames } from '../../policy/modbus-functions';
import type { PolicyModel } from '../../policy/model';
import { BUILTIN_SERVICES, parseServiceEntry } from '../../policy/services';
import { Action, type CompiledPolicy } from '../../policy/types';
import { parseIPv4, parseIPv6, v6ToWords } from '../../wire/address-text';
import { Proto, protocolNumber } from '../../wire/protocols';
import type { Asset, Conversation } from '../inventory/types';
import { MergeError, mergeLearned, type LearnedGroupText, type LearnedRuleText } from './merge';
import type { Proposal, ProposedGroup, ProposedRule } from './types';

export interface ProposeInput {
  id: string;
  pair: string;
  conversations: Conversation[];
  assets: Asset[];
  /** The active policy's text, null before the first apply. */
  activeText: string | null;
  now: number;
  /** Coverage window. */
  hours: number;
}

/** Why a conversation is not allowed by the proposal: the code, and the sentence the UI shows. */
export const LEFT_OUT_REASONS = {
  dropped: 'dropped while the pair enforced: the plant worked without it (allow it by hand if it is needed)',
  'denied-by-active': 'denied by a rule of the active policy, which comes before the learned rules',
  broadcast: 'multicast or broadcast destination (write a rule by hand if it is needed)',
  'no-asset': 'an end is no asset of this pair (no MAC seen for it)',
  'unknown-service': 'a service the policy language cannot name',
  'not-matched': 'not allowed by the proposed policy',
} as const;
export type LeftOutCode = keyof typeof LEFT_OUT_REASONS;
export const leftOutCodes = Object.keys(LEFT_OUT_REASONS) as LeftOutCode[];

const HOUR_MS = 3_600_000;
/** Left-out entries listed (most flows first): enough to review, bounded for the API and the UI. */
export const LEFT_OUT_MAX = 1000;
/** Longest group or rule name written (names stay readable in logs and the UI). */
const NAME_MAX = 48;
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;

export function isPolicyName(name: string): boolean {
  return NAME_PATTERN.test(name) && name !== 'any';
}

/** A valid policy name from free text: lower case, runs of other characters become '-'. */
export function sanitizeName(raw: string, fallbackPrefix = 'asset'): string {
  let s = raw.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-').replace(/-{2,}/g, '-').replace(/^[-_.]+|[-_.]+$/g, '');
  if (!/^[a-z]/.test(s)) s = s === '' ? fallbackPrefix : `${fallbackPrefix}-${s}`;
  if (s === 'any') s = `${fallbackPrefix}-any`;
  return s.slice(0, NAME_MAX).replace(/[-_.]+$/, '');
}

/** Names in use; unique() appends -2, -3, ... to a taken one. */
class Names {
  private readonly taken: Set<string>;
  constructor(taken: Iterable<string>) {
    this.taken = new Set(['any', ...taken]);
  }
  unique(base: string): string {
    let name = base;
    for (let n = 2; this.taken.has(name); n++) name = `${base.slice(0, NAME_MAX - String(n).length - 1)}-${n}`;
    this.taken.add(name);
    return name;
  }
}

/** The identity an asset's group is named from, and where it came from. */
export function identityName(a: Asset): { name: string; from: string } {
  const id = a.identity;
  if (id.lldp?.systemName) return { name: sanitizeName(id.lldp.systemName), from: 'lldp' };
  if (id.dhcp?.hostName) return { name: sanitizeName(id.dhcp.hostName), from: 'dhcp' };
  const product = id.modbus?.productName ?? id.modbus?.modelName ??
    (id.modbus?.vendorName && id.modbus.productCode ? `${id.modbus.vendorName} ${id.modbus.productCode}` : undefined);
  if (product) return { name: sanitizeName(product), from: 'modbus' };
  const address = a.addresses[0] ?? a.mac;
  const tail = address.includes(':') ? address.split(':').filter(Boolean).slice(-1)[0] ?? '' : address.split('.').slice(-1)[0];
  if (a.vendor) return { name: sanitizeName(`${a.vendor.split(/[ ,]/)[0]}-${tail}`), from: 'vendor' };
  return { name: sanitizeName(`host-${address}`), from: 'address' };
}

/** Where a conversation's addresses and service meet the matcher. */
interface Decidable {
  v6: boolean;
  src: number | Uint32Array;
  dst: number | Uint32Array;
  proto: number;
  key: number;
}

function decidable(c: Conversation): Decidable | null {
  const proto = protocolNumber(c.proto);
  if (proto === null) return null;
  const key = proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP ? c.port
    : proto === Proto.ICMP || proto === Proto.ICMPV6 ? (c.port & 0xff) << 8 : 0;
  const s4 = parseIPv4(c.client);
  const d4 = parseIPv4(c.server);
  if (s4 !== null && d4 !== null) return { v6: false, src: s4, dst: d4, proto, key };
  const s6 = parseIPv6(c.client);
  const d6 = parseIPv6(c.server);
  if (s6 !== null && d6 !== null) return { v6: true, src: v6ToWords(s6), dst: v6ToWords(d6), proto, key };
  return null;
}

function decide(policy: CompiledPolicy, d: Decidable): number {
  return d.v6 ? policy.match6(d.src as Uint32Array, d.dst as Uint32Array, d.proto, d.key) : policy.match4(d.src as number, d.dst as number, d.proto, d.key);
}

function isMulticastOrBroadcast(address: string): boolean {
  const v4 = parseIPv4(address);
  if (v4 !== null) return v4 >>> 28 === 0xe || v4 >>> 0 === 0xffffffff;
  return /^ff/i.test(address);
}

/** True when the rule matches every address of both families and every service. */
function isCatchAll(model: PolicyModel, index: number): boolean {
  const r = model.rules[index];
  const all = (s: { v4: number[]; v6: bigint[] }) => s.v4.length === 2 && s.v4[0] === 0 && s.v4[1] === 0xffffffff &&
    s.v6.length === 2 && s.v6[0] === 0n && s.v6[1] === (1n << 128n) - 1n;
  return r !== undefined && r.enabled && r.services.any && all(r.src) && all(r.dst);
}

/** The last rule of the active policy when it matches everything (the learned rules go before it). */
export function catchAllLast(model: PolicyModel | null): boolean {
  return model !== null && model.rules.length > 0 && isCatchAll(model, model.rules.length - 1);
}

const READ_CODES: ReadonlySet<number> = new Set(functionClasses.get('read'));

/** A function as the inventory names it ("read-coils", "65") → a policy `functions` item, or null. */
function functionItem(name: string): string | number | null {
  if (functionNames.has(name)) return name;
  if (/^\d{1,3}$/.test(name)) {
    const code = Number(name);
    return code >= 1 && code <= 127 ? code : null;
  }
  return null;
}

/** The `functions:` list for what was seen: [read] when only reads, else the exact items; null: no block. */
export function functionsBlock(seen: Iterable<string>): (string | number)[] | null {
  const items: (string | number)[] = [];
  for (const name of seen) {
    const item = functionItem(name);
    // A function the policy cannot name: a block would refuse it, so the rule gets none.
    if (item === null) return null;
    items.push(item);
  }
  if (items.length === 0) return null;
  const code = (i: string | number) => (typeof i === 'number' ? i : functionNames.get(i)!);
  if (items.every((i) => READ_CODES.has(code(i)))) return ['read'];
  return [...new Set(items)].sort((a, b) => code(a) - code(b));
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function learnedDescription(first: number, last: number, flows: number): string {
  const range = day(first) === day(last) ? day(first) : `${day(first)} to ${day(last)}`;
  return `learned ${range}, ${flows} flow${flows === 1 ? '' : 's'}`;
}

interface Learnable {
  c: Conversation;
  service: string;
}

export function propose(input: ProposeInput): Proposal {
  const { conversations, now, hours } = input;
  const active = input.activeText === null ? null : loadPolicyText(input.activeText, 'active policy');
  if (active !== null && !active.ok) throw new Error('the active policy does not compile; propose needs the policy that runs');
  const activeModel = active?.model ?? null;
  const activePolicy = active?.policy ?? null;
  const lastIsCatchAll = catchAllLast(activeModel);
  // Compiled index of that catch-all: what it decides is learned, as if it were the default.
  const catchAllIndex = lastIsCatchAll ? activeModel!.rules[activeModel!.rules.length - 1].index : -1;
  const assetsById = new Map(input.assets.map((a) => [a.id, a]));

  // 1. Which conversations a learned rule is for; the others keep their reason.
  const reasonOf = new Map<Conversation, { code: LeftOutCode; detail?: string }>();
  const learnable: Learnable[] = [];
  for (const c of conversations) {
    const d = decidable(c);
    if (d !== null && activePolicy !== null) {
      const r = decide(activePolicy, d);
      const rule = activePolicy.rules[r];
      const explicit = !rule.isDefault && r !== catchAllIndex;
      if (explicit && rule.action === Action.Allow) continue;
      if (explicit) {
        reasonOf.set(c, { code: 'denied-by-active', detail: `denied by rule '${rule.name}' of the active policy, which comes before the learned rules` });
        continue;
      }
    }
    if (c.verdict === 'deny') reasonOf.set(c, { code: 'dropped' });
    else if (isMulticastOrBroadcast(c.server)) reasonOf.set(c, { code: 'broadcast' });
    else if (c.clientAsset === null || c.serverAsset === null || !assetsById.has(c.clientAsset) || !assetsById.has(c.serverAsset) ||
      c.clientAsset === c.serverAsset) reasonOf.set(c, { code: 'no-asset' });
    else {
      const service = serviceOf(c, activeModel);
      if (service === null || d === null) reasonOf.set(c, { code: 'unknown-service' });
      else learnable.push({ c, service });
    }
  }

  // 2. Groups: one per asset, merged when the behaviour is identical.
  const addressesOf = new Map<number, Set<string>>();
  const behaviour = new Map<number, Set<string>>();
  const usedBy = new Map<string, Set<number>>();
  const add = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => { let s = m.get(k); if (!s) m.set(k, (s = new Set())); s.add(v); };
  for (const { c, service } of learnable) {
    const fns = c.protocol === 'modbus' ? `${Object.keys(c.functions).filter((f) => c.functions[f] > 0).sort().join(',')}@${c.units.join(',')}` : '';
    add(addressesOf, c.clientAsset!, c.client);
    add(addressesOf, c.serverAsset!, c.server);
    add(usedBy, c.client, c.clientAsset!);
    add(usedBy, c.server, c.serverAsset!);
    add(behaviour, c.clientAsset!, `c|${c.serverAsset}|${service}|${fns}`);
    add(behaviour, c.serverAsset!, `s|${c.clientAsset}|${service}|${fns}`);
  }
  const bySignature = new Map<string, number[]>();
  for (const [id, b] of [...behaviour].sort((x, y) => x[0] - y[0])) {
    const sig = [...b].sort().join('\n');
    const list = bySignature.get(sig);
    if (list) list.push(id);
    else bySignature.set(sig, [id]);
  }
  const activeBindings = new Map<string, string>();
  for (const b of activeModel?.bindings ?? []) activeBindings.set(`${b.family}|${b.address}`, b.mac);
  const bindingOf = (address: string, a: Asset): string => {
    if (a.router || !a.mac || (usedBy.get(address)?.size ?? 0) > 1) return address;
    const v4 = parseIPv4(address);
    const key = v4 !== null ? `4|${v4}` : `6|${parseIPv6(address)}`;
    const bound = activeBindings.get(key);
    return bound !== undefined && bound !== a.mac.toLowerCase() ? address : `${address}@${a.mac.toLowerCase()}`;
  };

  const groupNames = new Names(activeModel?.groups.keys() ?? []);
  const groups: ProposedGroup[] = [];
  const groupOfAsset = new Map<number, ProposedGroup>();
  for (const ids of bySignature.values()) {
    const named = ids.map((id) => identityName(assetsById.get(id)!));
    const base = ids.length === 1 ? named[0].name : commonStem(named.map((n) => n.name)) ?? `${named[0].name}-group`;
    const members = ids.flatMap((id) => [...addressesOf.get(id)!].sort().map((addr) => bindingOf(addr, assetsById.get(id)!)));
    const g: ProposedGroup = { id: `g${groups.length + 1}`, name: groupNames.unique(base), namedFrom: named[0].from, members: [...new Set(members)], assets: ids };
    groups.push(g);
    for (const id of ids) groupOfAsset.set(id, g);
  }

  // 3. Rules: one per (client group, server group, service).
  interface Acc { from: ProposedGroup; to: ProposedGroup; service: string; flows: number; first: number; last: number; fns: Set<string>; units: Set<number>; modbus: boolean; tcp: boolean }
  const accs = new Map<string, Acc>();
  for (const { c, service } of learnable) {
    const from = groupOfAsset.get(c.clientAsset!)!;
    const to = groupOfAsset.get(c.serverAsset!)!;
    const key = `${from.id}|${to.id}|${service}`;
    let a = accs.get(key);
    if (!a) accs.set(key, (a = { from, to, service, flows: 0, first: c.firstSeen, last: c.lastSeen, fns: new Set(), units: new Set(), modbus: false, tcp: c.proto === 'tcp' }));
    a.flows += c.flows;
    a.first = Math.min(a.first, c.firstSeen);
    a.last = Math.max(a.last, c.lastSeen);
    if (c.protocol === 'modbus') {
      a.modbus = true;
      for (const [f, n] of Object.entries(c.functions)) if (n > 0) a.fns.add(f);
      for (const unit of c.units) a.units.add(unit);
    }
  }
  const ruleNames = new Names(activeModel?.rules.map((r) => r.name) ?? []);
  const rules: ProposedRule[] = [...accs.values()].map((a, i) => {
    const functions = a.modbus && a.tcp ? functionsBlock([...a.fns].sort()) : null;
    return {
      id: `r${i + 1}`,
      name: ruleNames.unique(sanitizeName(`${a.from.name}-to-${a.to.name}-${a.service}`, 'rule')),
      from: a.from.name,
      to: a.to.name,
      services: [a.service],
      ...(functions ? { modbus: { functions, units: [...a.units].sort((x, y) => x - y) } } : {}),
      flows: a.flows,
      firstSeen: a.first,
      lastSeen: a.last,
      description: learnedDescription(a.first, a.last, a.flows),
    };
  });

  // 4. The whole proposal as text, compiled, and the coverage of the window.
  const heading = `pair ${input.pair}, proposal ${input.id}, ${new Date(now).toISOString()}`;
  let text: string;
  const errors: string[] = [];
  try {
    text = mergeLearned(input.activeText, groups.map(groupText), rules.map(ruleText), heading, lastIsCatchAll);
  } catch (err) {
    if (!(err instanceof MergeError)) throw err;
    text = input.activeText ?? '';
    errors.push(err.message);
  }
  const merged = loadPolicyText(text, 'proposal');
  if (!merged.ok) errors.push(...merged.errors.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`));
  const since = now - hours * HOUR_MS;
  let total = 0;
  let allowed = 0;
  const leftOut = new Map<string, Proposal['coverage']['leftOut'][number]>();
  for (const c of conversations) {
    if (c.lastSeen < since) continue;
    total++;
    const d = decidable(c);
    if (merged.ok && d !== null && merged.policy.rules[decide(merged.policy, d)].action === Action.Allow) {
      allowed++;
      continue;
    }
    const why = reasonOf.get(c) ?? { code: 'not-matched' as const };
    const reason = why.detail ?? LEFT_OUT_REASONS[why.code];
    const key = `${c.client}|${c.server}|${c.service}|${reason}`;
    const e = leftOut.get(key);
    if (e) e.flows += c.flows;
    else leftOut.set(key, { client: c.client, server: c.server, service: c.service, reason, code: why.code, flows: c.flows });
  }
  return {
    id: input.id,
    pair: input.pair,
    createdAt: now,
    groups,
    rules,
    text,
    errors,
    coverage: {
      hours,
      conversations: total,
      allowed,
      share: total === 0 ? 1 : allowed / total,
      leftOut: [...leftOut.values()].sort((a, b) => b.flows - a.flows).slice(0, LEFT_OUT_MAX),
      leftOutOmitted: Math.max(0, leftOut.size - LEFT_OUT_MAX),
    },
  };
}

/**
 * The service a learned rule names: the inventory's name, unless the active policy declares a
 * service of that name (which then means something else there): then the literal proto/port.
 */
function serviceOf(c: Conversation, model: PolicyModel | null): string | null {
  const declared = model?.services.get(c.service);
  const builtin = Object.hasOwn(BUILTIN_SERVICES, c.service);
  if (builtin && (!declared || declared.builtin)) return c.service;
  const literal = builtin || declared ? `${c.proto}/${c.port}` : c.service;
  return parseServiceEntry(literal).kind === 'ok' ? literal : null;
}

/** "hmi-1", "hmi-2" → "hmi": the shared start of the names without trailing digits and separators. */
function commonStem(names: string[]): string | null {
  let stem = names[0];
  for (const n of names) while (!n.startsWith(stem)) stem = stem.slice(0, -1);
  stem = stem.replace(/[-_.0-9]+$/, '');
  return stem.length >= 2 && /^[a-z]/.test(stem) ? stem : null;
}

export function groupText(g: ProposedGroup): LearnedGroupText {
  return { name: g.name, description: `learned from ${g.namedFrom}: ${g.assets.length === 1 ? 'asset' : 'assets'} ${g.assets.join(', ')}`, members: g.members };
}

export function ruleText(r: ProposedRule): LearnedRuleText {
  return { name: r.name, description: r.description, from: r.from, to: r.to, services: r.services, ...(r.modbus ? { functions: r.modbus.functions, units: r.modbus.units } : {}) };
}
