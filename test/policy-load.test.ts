// Loading: every error class with its exact line:col, warnings, flows, l2, and garbage input.

import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng } from '../appliance/policy/generate';
import { type Diagnostic, formatDiagnostic } from '../appliance/policy/diagnostics';
import { loadPolicyFile, loadPolicyText } from '../appliance/policy/load';
import { groupNamesFor4, groupNamesFor6 } from '../appliance/policy/model';
import { policySchema } from '../appliance/policy/schema';

const header = 'version: 1\n';

/** A policy with one rule whose fields are given, plus optional extra sections (YAML text). */
function rule(fields: string, extra = ''): string {
  return `${header}${extra}rules:\n  - name: r1\n${fields}`;
}

const okRule = '    from: any\n    to: any\n    service: any\n    action: allow\n';

function errorsOf(text: string): string[] {
  const r = loadPolicyText(text, 'p.yaml');
  return r.ok ? [] : r.errors.map(formatDiagnostic);
}

function warningsOf(text: string): string[] {
  return loadPolicyText(text, 'p.yaml').warnings.map(formatDiagnostic);
}

const errorCases: [string, string, RegExp][] = [
  ['yaml syntax', `${header}rules: [\n  - a: b\n`, /^p\.yaml:\d+:\d+: /],
  ['duplicate key', `${header}version: 1\nrules: []\n`, /^p\.yaml:2:1: Map keys must be unique/],
  ['not a mapping', '- a\n- b\n', /^p\.yaml:1:1: the document must be a mapping/],
  ['missing rules', header, /^p\.yaml:1:1: the document is missing 'rules'/],
  ['wrong version', 'version: 2\nrules: []\n', /^p\.yaml:1:10: version must be 1/],
  ['unknown top-level key', `${header}rules: []\nmdoe: monitor\n`, /^p\.yaml:3:1: unknown key 'mdoe' in the document \(did you mean 'mode'\?\)/],
  [
    'unknown rule key',
    rule('    from: any\n    to: any\n    servcie: any\n    service: any\n    action: allow\n'),
    /^p\.yaml:6:5: unknown key 'servcie' in rules\[0\] \(did you mean 'service'\?\)/,
  ],
  ['bad action', rule('    from: any\n    to: any\n    service: any\n    action: permit\n'), /^p\.yaml:7:13: rules\[0\]\.action must be one of: allow, deny, reject/],
  ['missing action', rule('    from: any\n    to: any\n    service: any\n'), /^p\.yaml:3:5: rules\[0\] is missing 'action'/],
  ['bad type', rule('    from: any\n    to: any\n    service: any\n    action: allow\n    log: yes please\n'), /^p\.yaml:8:10: rules\[0\]\.log must be true or false/],
  ['bad mode', `${header}mode: audit\nrules: []\n`, /^p\.yaml:2:7: mode must be one of: enforce, monitor/],
  ['bad group name', `${header}groups:\n  9plc: [10.0.0.1]\nrules: []\n`, /^p\.yaml:3:3: invalid name '9plc' in groups/],
  ['unknown group key', `${header}groups:\n  plc:\n    members: [10.0.0.1]\n    descr: x\nrules: []\n`, /^p\.yaml:5:5: unknown key 'descr' in groups\.plc/],
  ['bad duration', `${header}flows:\n  udp-idle: 60\nrules: []\n`, /^p\.yaml:3:13: flows\.udp-idle must be a duration such as 30s/],
  ['unknown flow key', `${header}flows:\n  udp-timeout: 60s\nrules: []\n`, /^p\.yaml:3:3: unknown key 'udp-timeout' in flows/],
  ['unknown group', rule('    from: plcs\n    to: any\n    service: any\n    action: allow\n', 'groups:\n  plc: [10.0.0.1]\n'), /^p\.yaml:6:11: unknown group 'plcs' \(did you mean 'plc'\?\)/],
  ['unknown group in list', rule('    from: [any, hmi]\n    to: any\n    service: any\n    action: allow\n'), /^p\.yaml:4:17: unknown group 'hmi'/],
  ['unknown service', rule('    from: any\n    to: any\n    service: modbsu\n    action: allow\n'), /^p\.yaml:6:14: unknown service 'modbsu' \(did you mean 'modbus'\?\)/],
  [
    'group cycle',
    rule(okRule, 'groups:\n  a: [10.0.0.1, b]\n  b: [c]\n  c: [a]\n'),
    /^p\.yaml:5:7: group cycle: a -> b -> c -> a/,
  ],
  ['service cycle', rule(okRule, 'services:\n  a: [tcp/1, a]\n'), /^p\.yaml:3:14: service cycle: a -> a/],
  ['duplicate rule name', `${header}rules:\n  - name: r1\n${okRule}  - name: r1\n${okRule}`, /^p\.yaml:8:11: duplicate rule name 'r1' \(first used on line 3\)/],
  ['host bits set', rule('    from: 10.0.0.5/24\n    to: any\n    service: any\n    action: allow\n'), /^p\.yaml:4:11: '10\.0\.0\.5\/24' has host bits set; did you mean 10\.0\.0\.0\/24\?/],
  ['v6 host bits set', rule('    from: "2001:db8::1/64"\n    to: any\n    service: any\n    action: allow\n'), /^p\.yaml:4:11: .*did you mean 2001:db8::\/64\?/],
  ['prefix too long', rule('    from: 10.0.0.0/33\n    to: any\n    service: any\n    action: allow\n'), /^p\.yaml:4:11: '10\.0\.0\.0\/33': prefix length must be 0\.\.32/],
  ['bad address', rule('    from: 10.0.0.256\n    to: any\n    service: any\n    action: allow\n'), /^p\.yaml:4:11: '10\.0\.0\.256' is not a valid IPv4 or IPv6 address/],
  ['leading zeros', rule('    from: 10.0.0.010\n    to: any\n    service: any\n    action: allow\n'), /^p\.yaml:4:11: '10\.0\.0\.010' is not a valid/],
  ['range reversed', rule(okRule, 'groups:\n  g: [10.0.0.9-10.0.0.1]\n'), /^p\.yaml:3:7: range '10\.0\.0\.9-10\.0\.0\.1' starts after it ends/],
  ['range mixed family', rule(okRule, 'groups:\n  g: ["10.0.0.1-2001:db8::1"]\n'), /^p\.yaml:3:7: range .* mixes IPv4 and IPv6/],
  ['v4-mapped v6', rule(okRule, 'groups:\n  g: ["::ffff:10.0.0.1"]\n'), /^p\.yaml:3:7: '::ffff:10\.0\.0\.1' is an IPv4-mapped IPv6 address; write the IPv4 address 10\.0\.0\.1 instead/],
  ['port too big', rule('    from: any\n    to: any\n    service: tcp/65536\n    action: allow\n'), /^p\.yaml:6:14: 'tcp\/65536': ports must be 0\.\.65535/],
  ['port range reversed', rule('    from: any\n    to: any\n    service: [udp/9-1]\n    action: allow\n'), /^p\.yaml:6:15: 'udp\/9-1': port range starts after it ends/],
  ['unknown protocol', rule('    from: any\n    to: any\n    service: tpc/80\n    action: allow\n'), /^p\.yaml:6:14: 'tpc\/80': unknown protocol 'tpc'/],
  ['unknown icmp type', rule('    from: any\n    to: any\n    service: icmp/echo\n    action: allow\n'), /^p\.yaml:6:14: 'icmp\/echo': unknown icmp type 'echo'/],
  ['ports on gre', rule('    from: any\n    to: any\n    service: gre/1\n    action: allow\n'), /^p\.yaml:6:14: 'gre\/1': protocol gre has no ports/],
  ['protocol number', rule('    from: any\n    to: any\n    service: proto/300\n    action: allow\n'), /^p\.yaml:6:14: 'proto\/300': protocol number must be 0\.\.255/],
  ['redefine any', rule(okRule, 'groups:\n  any: [10.0.0.1]\n'), /^p\.yaml:3:3: 'any' is built in and cannot be redefined/],
  ['service named like a protocol', rule(okRule, 'services:\n  tcp: tcp/1\n'), /^p\.yaml:3:3: 'tcp' is a protocol name/],
  ['family mismatch', rule('    from: 10.0.0.1\n    to: "2001:db8::1"\n    service: any\n    action: allow\n'), /^p\.yaml:3:5: rule 'r1' can never match: 'from' and 'to' have no address family/],
  ['mac only', rule('    from: plc\n    to: any\n    service: any\n    action: allow\n', 'groups:\n  plc: [00:11:22:33:44:55]\n'), /^p\.yaml:6:11: 'from' has no IP addresses/],
  ['bad ethertype', `${header}rules: []\nl2:\n  allow: [lldp, profinett]\n`, /^p\.yaml:4:17: unknown EtherType 'profinett' \(did you mean 'profinet'\?\)/],
  ['ethertype range', `${header}rules: []\nl2:\n  allow: [0x05dc]\n`, /^p\.yaml:4:11: EtherType 1500 out of range/],
];

t.test('each error class is reported with its position', async (t) => {
  for (const [name, text, expected] of errorCases) {
    const errors = errorsOf(text);
    t.ok(errors.some((e) => expected.test(e)), `${name}: ${JSON.stringify(errors)}`);
  }
});

t.test('several errors are all reported, in file order', async (t) => {
  const text = `${header}groups:\n  a: [10.0.0.1/8]\n  b: [1.2.3.4-1.2.3.1]\nrules:\n  - name: r1\n    from: nope\n    to: a\n    service: tcp/99999\n    action: allow\n`;
  const errors = errorsOf(text);
  t.same(
    errors.map((e) => e.split(': ')[0]),
    ['p.yaml:3:7', 'p.yaml:4:7', 'p.yaml:7:11', 'p.yaml:9:14'],
  );
});

const warningCases: [string, string, RegExp][] = [
  ['monitor', rule(okRule, 'mode: monitor\n'), /^p\.yaml:2:7: warning: mode is monitor/],
  ['default allow', rule(okRule, 'default: allow\n'), /^p\.yaml:2:10: warning: default is allow/],
  ['unused group', rule(okRule, 'groups:\n  spare: [10.0.0.1]\n'), /^p\.yaml:3:3: warning: group 'spare' is not used/],
  ['unused service', rule(okRule, 'services:\n  spare: tcp/1\n'), /^p\.yaml:3:3: warning: service 'spare' is not used/],
  [
    'MAC entry',
    rule('    from: plc\n    to: any\n    service: any\n    action: allow\n', 'groups:\n  plc: [10.0.0.1, 00:11:22:33:44:55]\n'),
    /^p\.yaml:3:19: warning: MAC address 00:11:22:33:44:55 is not matched by rules/,
  ],
  ['override built-in', rule('    from: any\n    to: any\n    service: modbus\n    action: allow\n', 'services:\n  modbus: tcp/5020\n'), /^p\.yaml:3:3: warning: service 'modbus' replaces the built-in/],
  [
    'shadowed rule',
    `${header}rules:\n  - name: wide\n    from: 10.0.0.0/8\n    to: any\n    service: [modbus, tcp/1-100]\n    action: allow\n  - name: narrow\n    from: [10.1.0.0/16, 10.2.0.1]\n    to: 192.168.0.1\n    service: [tcp/502, ssh]\n    action: deny\n`,
    /^p\.yaml:8:11: warning: rule 'narrow' can never match: rule 'wide' \(line 3\) matches everything it does/,
  ],
  ['always-passed EtherType', `${header}rules: []\nl2:\n  allow: [arp]\n`, /^p\.yaml:4:11: warning: EtherType arp always passes/],
];

t.test('warnings', async (t) => {
  for (const [name, text, expected] of warningCases) {
    const r = loadPolicyText(text, 'p.yaml');
    t.ok(r.ok, `${name} loads`);
    const warnings = warningsOf(text);
    t.ok(warnings.some((w) => expected.test(w)), `${name}: ${JSON.stringify(warnings)}`);
  }
});

t.test('a rule that is only partly covered is not reported as shadowed', async (t) => {
  const text = `${header}rules:\n  - name: a\n    from: 10.0.0.0/8\n    to: any\n    service: tcp/502\n    action: allow\n  - name: b\n    from: 10.0.0.0/7\n    to: any\n    service: tcp/502\n    action: deny\n  - name: c\n    from: 10.0.0.1\n    to: any\n    service: [tcp/502, udp/1]\n    action: deny\n`;
  t.same(warningsOf(text), []);
});

t.test('formatDiagnostic', async (t) => {
  const d: Diagnostic = { file: 'a.yaml', line: 3, col: 7, message: 'boom', severity: 'error' };
  t.equal(formatDiagnostic(d), 'a.yaml:3:7: boom');
  t.equal(formatDiagnostic({ ...d, severity: 'warning' }), 'a.yaml:3:7: warning: boom');
});

t.test('flows, l2, descriptions, disabled rules, defaults', async (t) => {
  const text = `version: 1
description: test
default-log: false
groups:
  plc:
    description: the PLCs
    members: [10.0.0.1, 10.0.0.2]
services:
  web:
    description: web ports
    members: [http, https]
flows:
  tcp-established-idle: 2h
  udp-idle: 1m30s
  max-flows: 5000
  pickup-established: true
  fragment-timeout: 500ms
rules:
  - name: off
    description: parked
    from: any
    to: plc
    service: web
    action: deny
    enabled: false
  - name: web
    from: any
    to: plc
    service: web
    action: allow
l2:
  allow: [lldp, 0x88b8, 34962]
`;
  const r = loadPolicyText(text, 'p.yaml');
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.policy.mode, 'enforce');
  t.same(
    { ...r.policy.flow },
    {
      maxFlows: 5000,
      tcpEstablishedIdleMs: 7_200_000,
      tcpOpeningIdleMs: 30_000,
      tcpClosingIdleMs: 15_000,
      udpIdleMs: 90_000,
      icmpIdleMs: 10_000,
      otherIdleMs: 60_000,
      pickupEstablished: true,
      fragmentTimeoutMs: 500,
    },
  );
  t.equal(r.policy.rules.length, 2, 'disabled rule left out of the table');
  t.equal(r.policy.rules[0].name, 'web');
  t.equal(r.policy.rules[0].line, 26);
  t.equal(r.policy.rules[1].log, false);
  t.equal(r.policy.l2Allow[0x88cc], 1);
  t.equal(r.policy.l2Allow[0x88b8], 1);
  t.equal(r.policy.l2Allow[34962], 1);
  t.equal(r.policy.l2Allow[0x0806], 0);
  t.equal(r.model.rules[0].enabled, false);
  t.equal(r.model.groups.get('plc')?.description, 'the PLCs');
  t.same(groupNamesFor4(r.model.groups, 0x0a000002), ['plc']);
  t.same(groupNamesFor4(r.model.groups, 0x0a000003), []);
  t.equal(r.document.description, 'test');
});

t.test('groupNamesFor6 and nested groups', async (t) => {
  const text = rule(okRule, 'groups:\n  a: ["2001:db8::/64"]\n  b: [a, 10.0.0.0/8]\n  c: [b]\n');
  const r = loadPolicyText(text, 'p.yaml');
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(groupNamesFor6(r.model.groups, new Uint32Array([0x20010db8, 0, 0, 1])), ['a', 'b', 'c']);
  t.same(groupNamesFor4(r.model.groups, 0x0a010101), ['b', 'c']);
});

t.test('never throws on garbage', async (t) => {
  const rnd = prng(99);
  const pieces = ['version: 1\n', 'rules:\n', '  - ', 'name: x\n', 'from: ', '[', ']', '{', '}', ':', '"', "'", '&a ', '*a', '!!binary ', '- ', '\t', '\n', 'any', '10.0.0.1/8', '%YAML 1.2\n', '---\n', '...\n', '\u0000', '\ufeff', '#', '? '];
  const ok: string[] = [];
  for (let i = 0; i < 500; i++) {
    let text = '';
    for (let j = Math.floor(rnd() * 40); j > 0; j--) text += pieces[Math.floor(rnd() * pieces.length)];
    try {
      const r = loadPolicyText(text, 'g.yaml');
      if (!r.ok && r.errors.length === 0) t.fail(`no errors for refused input ${JSON.stringify(text)}`);
      if (!r.ok && r.errors.some((e) => e.message.startsWith('internal error'))) t.fail(`internal error on ${JSON.stringify(text)}: ${r.errors[0].message}`);
      ok.push(text);
    } catch (err) {
      t.fail(`threw on ${JSON.stringify(text)}: ${err}`);
    }
  }
  t.equal(ok.length, 500);
  const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  t.notOk(loadPolicyText(bomb, 'bomb.yaml').ok, 'alias bombs are refused');
});

t.test('loadPolicyFile and the shipped examples', async (t) => {
  const missing = loadPolicyFile('/nonexistent/policy.yaml');
  t.notOk(missing.ok);
  if (!missing.ok) t.match(missing.errors[0].message, /cannot read policy/);
  for (const name of ['lab.yaml', 'plant.yaml']) {
    const r = loadPolicyFile(join(__dirname, '..', 'docs', 'examples', name));
    t.ok(r.ok, `${name}: ${r.ok ? '' : r.errors.map(formatDiagnostic).join('\n')}`);
    t.same(r.warnings.map(formatDiagnostic), [], `${name} has no warnings`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'policy-'));
  writeFileSync(join(dir, 'p.yaml'), rule(okRule));
  const r = loadPolicyFile(join(dir, 'p.yaml'));
  t.ok(r.ok);
  t.equal(readFileSync(join(dir, 'p.yaml'), 'utf8').length > 0, true);
});

t.test('the schema is a plain JSON object', async (t) => {
  t.same(JSON.parse(JSON.stringify(policySchema)), policySchema);
});
