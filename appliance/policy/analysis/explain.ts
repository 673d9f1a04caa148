// Explains a decision: which rule decides a connection, which rules matched each field, and which
// earlier rules came close but failed on a field. Uses the compiled tables for the decision (what
// the dataplane does) and a linear walk over the resolved rules for the reasons. An offline tool for
// people (CLI, management): reads a policy, changes nothing, never on the packet path.

import { AddressSet, intervalsContain } from '../addresses';
import { ruleKeyOf } from '../match';
import { groupNamesFor4, groupNamesFor6, ModelRule, PolicyModel } from '../model';
import { formatServiceSet, isServiceLiteral, KEYED_PROTOCOLS, parseServiceEntry, serviceMatches, ServiceSet } from '../services';
import { actionNames, CompiledPolicy, KEY_MAX } from '../types';
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

export function explainDecision(
  model: PolicyModel,
  policy: CompiledPolicy,
  from: string,
  to: string,
  service: string,
): Explanation {
  const fail = (error: string): Explanation => ({ ok: false, error, fromGroups: [], toGroups: [], probes: [], text: error });
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
  }
  if (model.mode === 'monitor') lines.push('  mode is monitor: the packet is forwarded whatever the decision, and drops are only recorded');
  return { ok: true, fromGroups, toGroups, probes: results, text: lines.join('\n') };
}
