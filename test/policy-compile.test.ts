// Compiled tables against a naive reference: random policies (IPv4 and IPv6 hosts, CIDRs, ranges,
// nested groups, port ranges, ICMP types, bare protocols, disabled rules), random packets, and the
// first matching rule computed by walking the generated structure directly.

import t from 'tap';
import { compilePolicy, indexAddresses4 } from '../appliance/policy/compile';
import { lookup4 } from '../appliance/policy/match';
import { generatePolicyText, prng } from '../appliance/policy/generate';
import { loadPolicyText } from '../appliance/policy/load';
import { PolicyDocument } from '../appliance/policy/schema';
import { formatIPv6, v6ToWords, formatIpv4 } from '../appliance/wire/address-text';

type Addr = { v4: boolean; lo: bigint; hi: bigint; text: string };
type Svc = { proto: number; lo: number; hi: number; text: string };
type Ref<T> = { literal: T } | { group: string } | { any: true };

const B4 = 0x0a000000n;
const B6 = 0x20010db8n << 96n;

function randomPolicy(seed: number) {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: T[]) => xs[int(xs.length)];

  const addr = (v4: boolean): Addr => {
    const base = v4 ? B4 : B6;
    const bits = v4 ? 32 : 128;
    const fmt = (v: bigint) => (v4 ? formatIpv4(Number(v)) : formatIPv6(v));
    const x = rnd();
    if (x < 0.35) {
      const v = base + BigInt(int(256));
      return { v4, lo: v, hi: v, text: fmt(v) };
    }
    if (x < 0.7) {
      const len = bits - 1 - int(7);
      const size = 1n << BigInt(bits - len);
      const lo = base + (BigInt(int(256)) / size) * size;
      return { v4, lo, hi: lo + size - 1n, text: `${fmt(lo)}/${len}` };
    }
    if (x < 0.95) {
      const a = BigInt(int(256));
      const b = a + BigInt(int(80));
      return { v4, lo: base + a, hi: base + b, text: `${fmt(base + a)}-${fmt(base + b)}` };
    }
    return v4
      ? { v4, lo: B4, hi: B4 + 0xffffffn, text: '10.0.0.0/8' }
      : { v4, lo: B6, hi: B6 + (1n << 96n) - 1n, text: '2001:db8::/32' };
  };

  const svc = (): Svc => {
    const x = rnd();
    const portProto = pick([['tcp', 6], ['udp', 17], ['sctp', 132]] as const);
    if (x < 0.3) {
      const p = rnd() < 0.8 ? int(40) : 65530 + int(6);
      return { proto: portProto[1], lo: p, hi: p, text: `${portProto[0]}/${p}` };
    }
    if (x < 0.5) {
      const lo = int(40);
      const hi = rnd() < 0.2 ? 65535 : lo + int(10);
      return { proto: portProto[1], lo, hi, text: `${portProto[0]}/${lo}-${hi}` };
    }
    if (x < 0.6) {
      const type = pick([0, 3, 8, 11]);
      if (rnd() < 0.5) return { proto: 1, lo: type << 8, hi: (type << 8) | 255, text: `icmp/${type}` };
      const code = int(4);
      return { proto: 1, lo: (type << 8) | code, hi: (type << 8) | code, text: `icmp/${type}/${code}` };
    }
    if (x < 0.65) return { proto: 58, lo: 128 << 8, hi: (128 << 8) | 255, text: 'icmpv6/echo-request' };
    if (x < 0.75) return { proto: portProto[1], lo: 0, hi: 65535, text: portProto[0] };
    const [text, proto] = pick([['gre', 47], ['proto/47', 47], ['esp', 50], ['proto/99', 99]] as const);
    return { proto, lo: 0, hi: 65535, text };
  };

  const groups = new Map<string, Ref<Addr>[]>();
  const services = new Map<string, Ref<Svc>[]>();
  for (let g = 0; g < 2 + int(8); g++) {
    // Both families in every group, so that any two endpoints share a family.
    const members: Ref<Addr>[] = [{ literal: addr(true) }, { literal: addr(false) }];
    for (let i = int(3); i > 0; i--) members.push(g > 0 && rnd() < 0.3 ? { group: `g${int(g)}` } : { literal: addr(rnd() < 0.6) });
    groups.set(`g${g}`, members);
  }
  for (let s = 0; s < 1 + int(5); s++) {
    const members: Ref<Svc>[] = [];
    for (let i = 1 + int(3); i > 0; i--) members.push(s > 0 && rnd() < 0.2 ? { group: `s${int(s)}` } : { literal: svc() });
    services.set(`s${s}`, members);
  }
  const endpoint = (): Ref<Addr>[] => {
    if (rnd() < 0.1) return [{ any: true }];
    const refs: Ref<Addr>[] = [{ group: pick([...groups.keys()]) }];
    if (rnd() < 0.3) refs.push({ literal: addr(rnd() < 0.6) });
    return refs;
  };
  const rules = Array.from({ length: 1 + int(40) }, (_, i) => ({
    name: `r${i}`,
    from: endpoint(),
    to: endpoint(),
    service: rnd() < 0.1 ? [{ any: true } as Ref<Svc>] : Array.from({ length: 1 + int(2) }, () => (rnd() < 0.5 ? { group: pick([...services.keys()]) } : { literal: svc() })),
    action: pick(['allow', 'deny', 'reject']),
    enabled: rnd() > 0.1,
  }));

  const refText = (r: Ref<Addr | Svc>) => ('any' in r ? 'any' : 'group' in r ? r.group : r.literal.text);
  const yamlList = (refs: Ref<Addr | Svc>[]) => `[${refs.map((r) => JSON.stringify(refText(r))).join(', ')}]`;
  const text = [
    'version: 1',
    `default: ${rnd() < 0.5 ? 'deny' : 'allow'}`,
    'groups:',
    ...[...groups].map(([n, m]) => `  ${n}: ${yamlList(m)}`),
    'services:',
    ...[...services].map(([n, m]) => `  ${n}: ${yamlList(m)}`),
    'rules:',
    ...rules.flatMap((r) => [
      `  - name: ${r.name}`,
      `    from: ${yamlList(r.from)}`,
      `    to: ${yamlList(r.to)}`,
      `    service: ${yamlList(r.service)}`,
      `    action: ${r.action}`,
      `    enabled: ${r.enabled}`,
    ]),
  ].join('\n');

  const addrIn = (refs: Ref<Addr>[], v4: boolean, v: bigint): boolean =>
    refs.some((r) =>
      'any' in r ? true : 'group' in r ? addrIn(groups.get(r.group)!, v4, v) : r.literal.v4 === v4 && v >= r.literal.lo && v <= r.literal.hi,
    );
  const svcIn = (refs: Ref<Svc>[], proto: number, key: number): boolean =>
    refs.some((r) =>
      'any' in r
        ? true
        : 'group' in r
          ? svcIn(services.get(r.group)!, proto, key)
          : r.literal.proto === proto && ([1, 6, 17, 58, 132].includes(proto) ? key >= r.literal.lo && key <= r.literal.hi : true),
    );
  /** Name of the first enabled rule matching, or 'default'. */
  const reference = (v4: boolean, src: bigint, dst: bigint, proto: number, key: number): string =>
    rules.find((r) => r.enabled && addrIn(r.from, v4, src) && addrIn(r.to, v4, dst) && svcIn(r.service, proto, key))?.name ??
    'default';

  const packet = () => {
    const v4 = rnd() < 0.5;
    const address = (): bigint => {
      if (rnd() < 0.05) return v4 ? BigInt(int(2 ** 32)) : BigInt(int(2 ** 32)) << 96n;
      return (v4 ? B4 : B6) + BigInt(int(340));
    };
    const proto = pick([6, 6, 17, 17, 132, 1, 1, 58, 47, 50, 99, 0, 256]);
    let key = 0;
    if ([6, 17, 132].includes(proto)) key = rnd() < 0.85 ? int(50) : 65528 + int(8);
    else if (proto === 1 || proto === 58) key = (pick([0, 3, 8, 11, 128, 129]) << 8) | int(5);
    return { v4, src: address(), dst: address(), proto, key };
  };
  return { text, reference, packet };
}

t.test('compiled tables agree with the naive reference on random policies', async (t) => {
  let packets = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const { text, reference, packet } = randomPolicy(seed);
    const loaded = loadPolicyText(text, `random-${seed}.yaml`);
    if (!loaded.ok) {
      t.fail(`seed ${seed} did not load: ${loaded.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('; ')}\n${text}`);
      continue;
    }
    const { policy, warnings } = loaded;
    const shadowed = new Set(warnings.filter((w) => w.message.includes('can never match')).map((w) => /rule '([^']+)'/.exec(w.message)![1]));
    let mismatches = 0;
    for (let i = 0; i < 3000; i++) {
      const p = packet();
      const expected = reference(p.v4, p.src, p.dst, p.proto, p.key);
      const index = p.v4
        ? policy.match4(Number(p.src), Number(p.dst), p.proto, p.key)
        : policy.match6(v6ToWords(p.src), v6ToWords(p.dst), p.proto, p.key);
      const got = policy.rules[index].isDefault ? 'default' : policy.rules[index].name;
      if (got !== expected && mismatches++ < 3) {
        t.fail(`seed ${seed}: ${JSON.stringify({ ...p, src: p.src.toString(16), dst: p.dst.toString(16) })}: got ${got}, expected ${expected}`);
      }
      if (shadowed.has(expected)) t.fail(`seed ${seed}: rule ${expected} reported as never matching but matched`);
      packets++;
    }
    if (mismatches === 0) t.pass(`seed ${seed}: ${policy.rules.length - 1} rules agree`);
  }
  t.ok(packets > 100000);
});

t.test('default rule, unknown protocol and service any', async (t) => {
  const text = `version: 1
default: allow
rules:
  - name: block-gre
    from: any
    to: 10.0.0.1
    service: gre
    action: deny
  - name: any-proto
    from: 10.0.0.2
    to: any
    service: any
    action: reject
  - name: v6-ssh
    from: "2001:db8::/64"
    to: "2001:db8::1"
    service: ssh
    action: allow
    log: true
`;
  const r = loadPolicyText(text, 'p.yaml');
  t.ok(r.ok);
  if (!r.ok) return;
  const p = r.policy;
  const ip = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  t.equal(p.rules.length, 4);
  t.same(p.rules[3], { index: 3, name: 'default', action: 0, log: true, line: 0, isDefault: true, modbus: null });
  t.equal(p.rules[2].line, 14);
  t.equal(p.match4(ip('1.2.3.4'), ip('10.0.0.1'), 47, 0), 0);
  t.equal(p.match4(ip('1.2.3.4'), ip('10.0.0.1'), 6, 80), 3);
  t.equal(p.match4(ip('10.0.0.2'), ip('9.9.9.9'), 256, 0), 1);
  t.equal(p.match4(ip('10.0.0.3'), ip('9.9.9.9'), 256, 0), 3);
  t.equal(p.match4(ip('10.0.0.2'), ip('9.9.9.9'), 999, 0), 1, 'out-of-range protocol counts as unknown');
  const w = (s: string) => v6ToWords(BigInt(`0x${s}`));
  t.equal(p.match6(w('20010db8000000000000000000000005'), w('20010db8000000000000000000000001'), 6, 22), 2);
  t.equal(p.match6(w('20010db8000000000000000000000005'), w('20010db8000000000000000000000001'), 6, 23), 3);
  t.equal(p.stats.rules, 3);
  t.match(p.sourceHash, /^[0-9a-f]{64}$/);
});

t.test('compilePolicy from a document object', async (t) => {
  const doc: PolicyDocument = {
    version: 1,
    rules: [{ name: 'a', from: '10.0.0.0/8', to: 'any', service: 'modbus', action: 'allow' }],
  };
  const p = compilePolicy(doc, JSON.stringify(doc));
  t.equal(p.match4(0x0a000001, 0x01020304, 6, 502), 0);
  t.equal(p.match4(0x0a000001, 0x01020304, 6, 503), 1);
  t.throws(() => compilePolicy({ ...doc, rules: [{ ...doc.rules[0], to: 'nope' }] }, ''), /unknown group 'nope'/);
});

t.test('generated policies compile within budget and match without allocating much', async (t) => {
  for (const n of [10, 1000, 10000]) {
    const r = loadPolicyText(generatePolicyText(n, 42), `gen-${n}.yaml`);
    t.ok(r.ok, `${n} rules load`);
    if (!r.ok) continue;
    t.equal(r.policy.stats.rules, n);
    t.ok(r.policy.stats.compileMs < 5000, `${n} rules compile in ${r.policy.stats.compileMs.toFixed(0)} ms`);
  }
  t.equal(generatePolicyText(50, 3), generatePolicyText(50, 3), 'deterministic');
});

t.test('IPv4 index: every bound, its neighbours and random addresses land in the right interval', async (t) => {
  const rnd = prng(5);
  const int = (n: number) => Math.floor(rnd() * n);
  // Clusters that make every kind of entry: a /24 packed with bounds (a long run under a second-level
  // table), a /16 with a few (a run on the top level), sparse bounds, and the ends of the space.
  const points = new Set<number>([0, 0xffffffff, 0xfffffffe, 0x00010000, 0x7fffffff, 0x80000000]);
  for (let i = 0; i < 200; i++) points.add(0xc6120a00 + int(256));
  for (let i = 0; i < 40; i++) points.add(0xc6130000 + int(0x10000));
  for (let i = 0; i < 5; i++) points.add(0x0a000000 + int(0x10000));
  for (let i = 0; i < 300; i++) points.add(int(2 ** 32));
  const bounds = Uint32Array.from(points).sort();
  const sets = Int32Array.from(bounds, (_, i) => i * 7);
  const index = indexAddresses4(bounds, sets);
  t.ok(index.mid.length >= 256 && index.runs.length > 0, 'the clusters produce second-level tables and runs');
  const expected = (v: number): number => {
    let i = 0;
    while (i + 1 < bounds.length && bounds[i + 1] <= v) i++;
    return sets[i];
  };
  let wrong = 0;
  let probes = 0;
  const probe = (v: number) => {
    if (v < 0 || v > 0xffffffff) return;
    probes++;
    if (lookup4(index, v) !== expected(v) && wrong++ < 5) t.fail(`address ${v.toString(16)}: got ${lookup4(index, v)}, expected ${expected(v)}`);
  };
  for (const b of bounds) for (const d of [-1, 0, 1]) probe(b + d);
  for (let i = 0; i < 5000; i++) probe(int(2 ** 32));
  t.equal(wrong, 0, `${probes} probes`);
});
