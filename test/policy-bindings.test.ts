// address@MAC bindings in the policy language: the entry's syntax, its errors at line:col, what it
// adds to the group (the address, for rules) and the compiled binding tables the dataplane reads.

import t from 'tap';
import { explainDecision } from '../appliance/policy/analysis/explain';
import { formatDiagnostic } from '../appliance/policy/diagnostics';
import { loadPolicyText } from '../appliance/policy/load';
import { boundMac4, boundMac6 } from '../appliance/policy/match';
import { parseIPv4, parseIPv6 } from '../appliance/wire/address-text';

const policy = (groups: string, from = 'plc'): string => `version: 1
groups:
${groups}rules:
  - name: r1
    from: ${from}
    to: any
    service: any
    action: allow
`;

function load(text: string) {
  return loadPolicyText(text, 'p.yaml');
}

function errorsOf(text: string): string[] {
  const r = load(text);
  return r.ok ? [] : r.errors.map(formatDiagnostic);
}

const words = (text: string): Uint32Array => {
  const v = parseIPv6(text)!;
  return Uint32Array.from([0, 1, 2, 3], (k) => Number((v >> BigInt(96 - 32 * k)) & 0xffffffffn));
};

t.test('an address@MAC entry binds the address and is the address for rules', async (t) => {
  const r = load(policy('  plc: [198.18.20.5@02:00:00:00:00:05, "2001:2:0:20::5@02-00-00-00-00-05", 198.18.20.6@02:00:00:00:00:06]\n'));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  t.same(r.warnings.map(formatDiagnostic), [], 'no warning: the MAC is enforced, not decoration');
  const p = r.policy;
  t.equal(p.stats.bindings, 3);
  t.equal(boundMac4(p.bound4, p.bound4Macs, parseIPv4('198.18.20.5')!), 0x020000000005);
  t.equal(boundMac4(p.bound4, p.bound4Macs, parseIPv4('198.18.20.6')!), 0x020000000006);
  t.equal(boundMac4(p.bound4, p.bound4Macs, parseIPv4('198.18.20.7')!), -1, 'an address not bound');
  t.equal(boundMac6(p.bound6, p.bound6Macs, words('2001:2:0:20::5')), 0x020000000005, 'IPv6, MAC written with dashes');
  t.equal(boundMac6(p.bound6, p.bound6Macs, words('2001:2:0:20::6')), -1);
  t.equal(p.match4(parseIPv4('198.18.20.5')!, parseIPv4('198.18.1.1')!, 6, 80), 0, 'rules match the bound address');
  t.equal(p.match4(parseIPv4('198.18.20.7')!, parseIPv4('198.18.1.1')!, 6, 80), 1, 'and only it');
});

t.test('bindings from every group and rule literal; the same binding twice and one MAC on several addresses are fine', async (t) => {
  const r = load(policy('  plc: [198.18.20.5@02:00:00:00:00:05]\n  again: [plc, 198.18.20.5@02:00:00:00:00:05, 198.18.20.9@02:00:00:00:00:05]\n',
    '[again, 198.18.20.8@02:00:00:00:00:08]'));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  t.equal(r.policy.stats.bindings, 3);
  const p = r.policy;
  t.same(['198.18.20.5', '198.18.20.8', '198.18.20.9'].map((a) => boundMac4(p.bound4, p.bound4Macs, parseIPv4(a)!)),
    [0x020000000005, 0x020000000008, 0x020000000005]);
});

t.test('the IPv4 table: thousands of bindings, every one found, neighbours not; at most a quarter full', async (t) => {
  const hosts = Array.from({ length: 3000 }, (_, i) => `198.18.${100 + (i >> 8)}.${i & 0xff}@02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`);
  const r = load(policy(`  plc: [${hosts.join(', ')}, 0.0.0.0@02:00:00:00:ff:ff]\n`));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const p = r.policy;
  t.ok(p.bound4.length >= 4 * 3001 && (p.bound4.length & (p.bound4.length - 1)) === 0, `${p.bound4.length} slots, a power of two`);
  let wrong = 0;
  for (let i = 0; i < 3000; i++) {
    const v = parseIPv4(`198.18.${100 + (i >> 8)}.${i & 0xff}`)!;
    if (boundMac4(p.bound4, p.bound4Macs, v) !== 0x020000000000 + i) wrong++;
  }
  t.equal(wrong, 0, 'every bound address finds its MAC');
  t.equal(boundMac4(p.bound4, p.bound4Macs, 0), 0x02000000ffff, '0.0.0.0 is a key like any other');
  let found = 0;
  for (let v = parseIPv4('198.18.112.0')!; v < parseIPv4('198.18.120.0')!; v++) if (boundMac4(p.bound4, p.bound4Macs, v) >= 0) found++;
  t.equal(found, 0, 'no address beyond them');
});

t.test('policy explain says when the source is bound', async (t) => {
  const r = load(policy('  plc: [198.18.20.5@02:00:00:00:00:05, "2001:2::5@02:00:00:00:00:05"]\n'));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const text = (from: string, to: string) => explainDecision(r.model, r.policy, from, to, 'tcp/80').text;
  t.match(text('198.18.20.5', '198.18.1.1'), /198\.18\.20\.5 is bound to 02:00:00:00:00:05 \(line 3\): from any other MAC it is dropped as spoofed_source/);
  t.match(text('2001:2::5', '2001:2::1'), /2001:2::5 is bound to 02:00:00:00:00:05/);
  t.notMatch(text('198.18.1.1', '198.18.20.5'), /bound/, 'only the source is checked');
});

t.test('a policy without bindings has empty tables', async (t) => {
  const r = load(policy('  plc: [198.18.20.5, 00:11:22:33:44:55]\n'));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  t.same([r.policy.bound4.length, r.policy.bound6.length, r.policy.stats.bindings], [0, 0, 0]);
  t.equal(boundMac4(r.policy.bound4, r.policy.bound4Macs, parseIPv4('198.18.20.5')!), -1, 'an empty IPv4 table answers');
  t.equal(boundMac6(r.policy.bound6, r.policy.bound6Macs, words('2001:2::5')), -1, 'and so does an empty IPv6 one');
  t.match(r.warnings.map(formatDiagnostic).join('\n'), /p\.yaml:3:22: warning: MAC address 00:11:22:33:44:55 is not matched by rules .*ADDRESS@00:11:22:33:44:55/,
    'a plain MAC entry still warns, and says how to bind it');
});

const errorCases: [string, string, RegExp][] = [
  ['CIDR with a MAC', policy('  plc: [198.18.20.0/24@02:00:00:00:00:05]\n'),
    /^p\.yaml:3:9: '198\.18\.20\.0\/24@02:00:00:00:00:05': a MAC binds a single address, not a CIDR or range/],
  ['range with a MAC', policy('  plc: [198.18.20.1-198.18.20.9@02:00:00:00:00:05]\n'), /^p\.yaml:3:9: .*a MAC binds a single address/],
  ['IPv6 CIDR with a MAC', policy('  plc: ["2001:2::/64@02:00:00:00:00:05"]\n'), /^p\.yaml:3:9: .*a MAC binds a single address/],
  ['bad MAC', policy('  plc: [198.18.20.5@02:00:00:00:05]\n'), /^p\.yaml:3:9: '02:00:00:00:05' in '198\.18\.20\.5@02:00:00:00:05' is not a MAC address/],
  ['bad address', policy('  plc: [198.18.20.256@02:00:00:00:00:05]\n'), /^p\.yaml:3:9: '198\.18\.20\.256' is not a valid IPv4 or IPv6 address/],
  ['v4-mapped', policy('  plc: ["::ffff:198.18.20.5@02:00:00:00:00:05"]\n'), /^p\.yaml:3:9: .*IPv4-mapped/],
  ['address bound to two MACs', policy('  plc: [198.18.20.5@02:00:00:00:00:05]\n  other: [198.18.20.5@02:00:00:00:00:99]\n', '[plc, other]'),
    /^p\.yaml:4:11: 198\.18\.20\.5 is already bound to 02:00:00:00:00:05 \(line 3\); an address can be bound to one MAC only/],
  ['in a rule literal', policy('  plc: [198.18.20.5]\n', '[plc, 198.18.20.5/32@02:00:00:00:00:05]'), /^p\.yaml:6:17: .*a MAC binds a single address/],
];

t.test('errors at line:col', async (t) => {
  for (const [name, text, expected] of errorCases) {
    const errors = errorsOf(text);
    t.ok(errors.some((e) => expected.test(e)), `${name}: ${JSON.stringify(errors)}`);
  }
});
