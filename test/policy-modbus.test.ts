// A rule's `modbus:` block in the policy language: every error at its line:col, the warnings, the
// compiled block in CompiledRule.modbus, its trip through the loading worker, the shadow warning's
// text, and `policy explain` asked about Modbus requests (the function and the CLI).

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath } from '../appliance/paths';
import { explainDecision, type ModbusQuestion } from '../appliance/policy/analysis/explain';
import { formatDiagnostic } from '../appliance/policy/diagnostics';
import { loadPolicyText } from '../appliance/policy/load';
import { loadPolicyInBackground } from '../appliance/policy/load-worker';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import { DEVICE_ID_BIT, FUNCTION_WORDS, Table } from '../appliance/policy/modbus-functions';
import { decide } from '../appliance/policy/modbus-match';
import { MODBUS_KEYS } from '../appliance/policy/schema';

/**
 * One rule `r` from hmi to plc; the block's lines start on line 12 (`modbus:` is on line 11, at
 * column 5). `more` is appended after the block (further rules).
 */
function policy(o: { service?: string; action?: string; block?: string; head?: string; more?: string } = {}): string {
  return `version: 1
groups:
  hmi: [10.0.1.0/28]
  plc: [10.0.0.10]
rules:
  - name: r
    from: hmi
    to: plc
    service: ${o.service ?? 'modbus'}
    action: ${o.action ?? 'allow'}
    modbus:
${o.block ?? '      functions: [read]\n'}${o.more ?? ''}`.replace('version: 1\n', `version: 1\n${o.head ?? ''}`);
}

function errorsOf(text: string): string[] {
  const r = loadPolicyText(text, 'p.yaml');
  return r.ok ? [] : r.errors.map(formatDiagnostic);
}

function warningsOf(text: string): string[] {
  const r = loadPolicyText(text, 'p.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatDiagnostic).join('\n'));
  return r.warnings.map(formatDiagnostic);
}

function loaded(text: string) {
  const r = loadPolicyText(text, 'p.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatDiagnostic).join('\n'));
  return r;
}

t.test('the example compiles with no error and no warning', async (t) => {
  const text = policy({
    block: `      functions: [read]
      units: [1, 2-5]
      addresses:
        holding-registers: [0-99, 200]
        coils: [0-15]
        discrete-inputs: [0-7]
        input-registers: [0-9]
      max-length: 260
      on-violation: reset
`,
  });
  t.same(errorsOf(text), []);
  t.same(warningsOf(text), []);
});

// [name, block lines (from line 12), exact diagnostic]: the position is the offending item, the
// key of an unknown key or table, the value otherwise.
const blockErrors: [string, string, string][] = [
  ['unknown function name', '      functions: [read, reed]\n',
    `p.yaml:12:25: modbus functions[1]: unknown function "reed" (classes: read, write, diagnostics, program; or a name such as write-single-register, or a code) (did you mean 'read'?)`],
  ['misspelt function name', '      functions:\n        - read-coils\n        - write-single-regster\n',
    `p.yaml:14:11: modbus functions[1]: unknown function "write-single-regster" (classes: read, write, diagnostics, program; or a name such as write-single-register, or a code) (did you mean 'write-single-register'?)`],
  ['function code out of range', '      functions: [3, 300]\n', 'p.yaml:12:22: modbus functions[1]: a function code is 1-127'],
  ['function neither name nor code', '      functions: [3, {read: 1}]\n', 'p.yaml:12:22: modbus functions[1]: expected a function name, class or code, got {"read":1}'],
  ['functions empty', '      functions: []\n', 'p.yaml:12:18: modbus functions: must not be empty'],
  ['functions not a list', '      functions: read\n', 'p.yaml:12:18: modbus functions: expected a list'],
  ['unit out of range', '      functions: [read]\n      units: [1, 256]\n', 'p.yaml:13:18: modbus units[1]: must be within 0-255'],
  ['unit range reversed', '      functions: [read]\n      units: [9-3]\n', 'p.yaml:13:15: modbus units[0]: range 9-3 is reversed'],
  ['unit not a number', '      functions: [read]\n      units: [one]\n', 'p.yaml:13:15: modbus units[0]: expected a number or a range like "0-9", got "one"'],
  ['address out of range', '      functions: [read]\n      addresses:\n        holding-registers: [0-99, 70000]\n',
    'p.yaml:14:35: modbus addresses.holding-registers[1]: must be within 0-65535'],
  ['address range out of range', '      functions: [read]\n      addresses:\n        coils: [65000-65536]\n',
    'p.yaml:14:17: modbus addresses.coils[0]: must be within 0-65535'],
  ['unknown table', '      functions: [read]\n      addresses:\n        coil: [0-15]\n',
    `p.yaml:14:9: modbus addresses.coil: unknown table "coil" (tables: coils, discrete-inputs, holding-registers, input-registers) (did you mean 'coils'?)`],
  ['table not a list', '      functions: [read]\n      addresses:\n        coils: 5\n', 'p.yaml:14:16: modbus addresses.coils: expected a list'],
  ['addresses not a mapping', '      functions: [read]\n      addresses: [0-9]\n',
    'p.yaml:13:18: modbus addresses: expected a map of tables (coils, discrete-inputs, holding-registers, input-registers)'],
  ['max-length out of range', '      functions: [read]\n      max-length: 261\n', 'p.yaml:13:19: modbus max-length: an ADU length in bytes, 8-260'],
  ['max-length not a number', '      functions: [read]\n      max-length: big\n', 'p.yaml:13:19: modbus max-length: an ADU length in bytes, 8-260'],
  ['unknown on-violation', '      functions: [read]\n      on-violation: rst\n', 'p.yaml:13:21: modbus on-violation: one of reset, exception, drop'],
  // Keys and the block's shape are the schema's, like every other key of the file.
  ['unknown key', '      functions: [read]\n      unit: [1]\n',
    `p.yaml:13:7: unknown key 'unit' in rules[0].modbus (did you mean 'units'?); expected one of: functions, units, addresses, max-length, on-violation`],
  ['missing functions', '      units: [1]\n', `p.yaml:12:7: rules[0].modbus is missing 'functions'`],
];

t.test('each error in the block is reported at its node', async (t) => {
  for (const [name, block, expected] of blockErrors) t.same(errorsOf(policy({ block })), [expected], name);
});

t.test('a block that is not a mapping', async (t) => {
  const text = policy({ block: '' }).replace('    modbus:\n', '    modbus: read\n');
  t.same(errorsOf(text), ['p.yaml:11:13: rules[0].modbus must be a mapping']);
  t.same(errorsOf(policy({ block: '' })), ['p.yaml:11:12: rules[0].modbus must be a mapping'], 'an empty block');
});

t.test('every error of a block is reported at once, in file order', async (t) => {
  const block = '      functions: [reed, 0]\n      units: [300]\n      max-length: 7\n';
  t.same(errorsOf(policy({ block })).map((e) => e.split(': ')[0]), ['p.yaml:12:19', 'p.yaml:12:25', 'p.yaml:13:15', 'p.yaml:14:19']);
});

t.test('a block needs TCP services', async (t) => {
  t.same(errorsOf(policy({ service: 'udp/502' })), [`p.yaml:9:14: 'udp/502' includes udp/502, but the rule's modbus block (line 11) inspects TCP only`]);
  t.same(errorsOf(policy({ service: 'any' })), [
    `p.yaml:9:14: 'any' matches every protocol, but the rule's modbus block (line 11) inspects TCP only: name the Modbus service (modbus, tcp/502)`,
  ]);
  t.same(errorsOf(policy({ service: 'enip' })), [`p.yaml:9:14: 'enip' includes udp/2222, but the rule's modbus block (line 11) inspects TCP only`], 'tcp and udp');
  t.same(errorsOf(policy({ service: '[modbus, ping]' })), [
    `p.yaml:9:23: 'ping' includes icmp/echo-request, icmpv6/echo-request, but the rule's modbus block (line 11) inspects TCP only`,
  ], 'the offending item of a list');
  t.same(errorsOf(policy({ service: 'mixed', head: 'services:\n  mixed: [tcp/502, udp/502]\n' })), [
    `p.yaml:11:14: 'mixed' includes udp/502, but the rule's modbus block (line 13) inspects TCP only`,
  ], 'a declared service mixing tcp and udp');
  t.same(errorsOf(policy({ service: '[tcp/502, tcp/5020, tcp]' })).length, 0, 'TCP only, any ports');
});

t.test('a block needs action allow', async (t) => {
  for (const action of ['deny', 'reject']) {
    t.same(errorsOf(policy({ action })), [`p.yaml:11:5: a modbus block needs action allow: a ${action} rule forwards no connection to inspect`], action);
  }
  t.same(errorsOf(policy({ action: 'deny', service: 'udp/1', block: '      functions: [reed]\n' })).map((e) => e.split(': ')[0]),
    ['p.yaml:9:14', 'p.yaml:11:5', 'p.yaml:12:19'], 'with the other errors of the rule');
  t.same(errorsOf(policy({ service: '[modbus, nosuch]', block: '      functions: [reed]\n' })).map((e) => e.split(': ').slice(0, 2).join(': ')),
    ['p.yaml:9:23: unknown service \'nosuch\'', 'p.yaml:12:19: modbus functions[0]'], 'a service that fails is reported once, the block still checked');
});

t.test('warnings', async (t) => {
  t.same(warningsOf(policy({ service: 'tcp/5020' })), [
    `p.yaml:11:5: warning: the rule's service (tcp/5020) does not include tcp/502: its connections are inspected as Modbus/TCP all the same`,
  ]);
  t.same(warningsOf(policy({ service: '[tcp/5020, tcp/502]' })), [], 'a service that includes 502');
  t.same(warningsOf(policy({ service: 'tcp' })), [
    'p.yaml:11:5: warning: the rule allows every TCP port: each connection it allows is inspected as Modbus/TCP, and one that is not Modbus is refused',
  ]);
  t.same(warningsOf(policy({ block: '      functions: [read]\n      addresses:\n        holding-registers: [0-9]\n' })), [
    'p.yaml:13:7: warning: addresses lists no coils, discrete-inputs, input-registers: read-coils (1), read-discrete-inputs (2), ' +
      'read-input-registers (4) pass the functions but are always refused there (a table not listed allows no address)',
  ]);
  t.same(warningsOf(policy({ block: '      functions: [write-single-coil]\n      addresses:\n        coils: [0]\n        input-registers: [0-9]\n' })), [
    'p.yaml:15:9: warning: no function the rule allows reads or writes input-registers: these addresses never apply',
  ]);
  t.same(warningsOf(policy({ block: '      functions: [read-holding-registers, 6]\n      addresses:\n        holding-registers: [0-9]\n' })), [],
    'functions and tables that agree');
});

t.test('the shadow warning says the shadowing block judges the requests', async (t) => {
  const later = '  - name: wide\n    from: hmi\n    to: plc\n    service: modbus\n    action: allow\n';
  t.same(warningsOf(policy({ more: later })), [
    `p.yaml:13:11: warning: rule 'wide' can never match: rule 'r' (line 6) matches everything it does, and its modbus block then judges ` +
      `every request: a request that block refuses is refused, never passed on to 'wide'`,
  ]);
  // Without a block on the shadowing rule, the usual text.
  const text = policy({ more: later }).replace('    modbus:\n      functions: [read]\n', '');
  t.same(warningsOf(text), [`p.yaml:11:11: warning: rule 'wide' can never match: rule 'r' (line 6) matches everything it does`]);
  // The same rule on other traffic is no shadow.
  t.same(warningsOf(policy({ more: later.replace('service: modbus', 'service: tcp/503') })), []);
});

const bit = (set: Uint32Array, n: number): boolean => (set[n >>> 5] & (1 << (n & 31))) !== 0;
const bitsOf = (set: Uint32Array, max: number): number[] => Array.from({ length: max }, (_, n) => n).filter((n) => bit(set, n));

const fullBlock = `      functions: [read, write-single-register, 16]
      units: [1, 2-5]
      addresses:
        holding-registers: [200, 0-99, 100-109]
        coils: [0-15]
      max-length: 200
      on-violation: exception
`;

t.test('a good block compiles into CompiledRule.modbus', async (t) => {
  const more = '  - name: plain\n    from: hmi\n    to: plc\n    service: tcp/80\n    action: allow\n' +
    '  - name: off\n    from: hmi\n    to: plc\n    service: modbus\n    action: allow\n    enabled: false\n    modbus:\n      functions: [write]\n';
  const { policy: p, model } = loaded(policy({ block: fullBlock, more }));
  const m = p.rules[0].modbus;
  if (m === null) throw new Error('no modbus block compiled');
  t.equal(m.functions.length, FUNCTION_WORDS);
  t.same(bitsOf(m.functions, DEVICE_ID_BIT + 1), [1, 2, 3, 4, 6, 16, DEVICE_ID_BIT]);
  t.same(bitsOf(m.units!, 256), [1, 2, 3, 4, 5]);
  t.same(m.addresses!.map((a) => [...a]), [[0, 15], [], [0, 109, 200, 200], []], 'sorted, merged intervals per table');
  t.equal(m.maxLength, 200);
  t.equal(m.onViolation, 'exception');
  t.same(m, model.rules[0].modbus, 'the model holds the same block');
  t.equal(p.rules[1].name, 'plain');
  t.equal(p.rules[1].modbus, null, 'a rule without a block');
  t.equal(p.rules.length, 3, 'the disabled rule is not compiled');
  t.equal(p.rules[2].isDefault, true);
  t.equal(p.rules[2].modbus, null, 'the default rule');
  t.ok(model.rules[2].modbus !== null && bit(model.rules[2].modbus.functions, 5), "a disabled rule's block is still checked and kept in the model");
  // The defaults.
  const d = loaded(policy()).policy.rules[0].modbus!;
  t.equal(d.units, null);
  t.equal(d.addresses, null);
  t.equal(d.maxLength, 260);
  t.equal(d.onViolation, 'reset');
});

t.test('the block survives the loading worker', async (t) => {
  const text = policy({ block: fullBlock });
  const direct = loaded(text).policy.rules[0].modbus!;
  const r = await loadPolicyInBackground(text, 'p.yaml');
  if (!r.ok) throw new Error(r.errors.map(formatDiagnostic).join('\n'));
  const m = r.policy.rules[0].modbus;
  if (m === null) throw new Error('the block was lost');
  t.ok(m.functions instanceof Uint32Array);
  t.ok(m.units instanceof Uint32Array);
  t.ok(m.addresses!.every((a) => a instanceof Uint32Array));
  t.same([...m.functions], [...direct.functions]);
  t.same([...m.units!], [...direct.units!]);
  t.same(m.addresses!.map((a) => [...a]), direct.addresses!.map((a) => [...a]));
  t.same([m.maxLength, m.onViolation], [200, 'exception']);
  t.equal(r.policy.rules[1].modbus, null);
  const request = { malformed: null, aduLength: 12, function: 3, subFunction: -1, unit: 2, table: Table.HoldingRegisters, start: 100, quantity: 10, writeStart: 0, writeQuantity: 0 };
  t.equal(decide(m, request), null, 'the decision reads the cloned block');
  t.equal(decide(m, { ...request, start: 105, quantity: 10 }), 'address_not_allowed');
  const refused = await loadPolicyInBackground(policy({ action: 'deny' }), 'bad.yaml');
  t.equal(refused.ok, false);
  if (!refused.ok) t.match(formatDiagnostic(refused.errors[0]), /^bad\.yaml:11:5: a modbus block needs action allow/);
});

t.test('the schema knows the keys the block builder accepts', async (t) => {
  const r = compileModbusBlock({ functions: ['read'], bogus: 1 });
  const unknown = r.errors?.find((e) => e.path === 'bogus');
  t.ok(unknown, 'the builder refuses an unknown key');
  t.same(/\(keys: (.*)\)/.exec(unknown?.message ?? '')?.[1].split(', '), [...MODBUS_KEYS]);
});

const explainText = `version: 1
groups:
  hmi: [10.0.1.0/28]
  plc: [10.0.0.10]
  eng: [10.0.2.5]
rules:
  - name: hmi-reads-plc
    from: hmi
    to: plc
    service: modbus
    action: allow
    modbus:
      functions: [read, write-multiple-registers, 8]
      units: [1, 2-5]
      addresses:
        holding-registers: [0-99, 200]
        coils: [0-15]
      max-length: 100
      on-violation: exception
  - name: eng-plc
    from: eng
    to: plc
    service: modbus
    action: allow
  - name: drop-hmi
    from: hmi
    to: plc
    service: tcp/503
    action: deny
`;

function explain(q: ModbusQuestion | undefined, from = '10.0.1.3', service = 'modbus', text = explainText) {
  const { model, policy: p } = loaded(text);
  return explainDecision(model, p, from, '10.0.0.10', service, q);
}

t.test('explain: the block is described after the 5-tuple', async (t) => {
  const e = explain(undefined);
  t.ok(e.ok);
  t.same(e.probes[0].modbus, { inspected: true });
  t.match(e.text, /rules matching the service: .*\n    inspected by its modbus block: functions 1-4, 8, 16, 43\/14; units 1-5; addresses coils 0-15; holding-registers 0-99, 200 \(no address in any other table\); max-length 100; on-violation exception$/);
  t.equal(explain(undefined, '10.0.2.5').probes[0].modbus, null, 'no block, no question: nothing about Modbus');
});

t.test('explain: requests the block allows', async (t) => {
  for (const q of [
    { function: 'read-holding-registers', unit: '3', address: '10-19' },
    { function: '3', address: '200' },
    { function: 'read-coils', unit: '1', address: '0-15' },
    { function: '43/14', unit: '5' },
    { function: 'read-device-identification' },
    { function: 'write-multiple-registers', unit: '1', address: '0-9' },
    { function: 'diagnostics' },
  ]) {
    const e = explain(q);
    t.ok(e.ok, JSON.stringify(q));
    t.same(e.probes[0].modbus, { inspected: true, refused: null }, JSON.stringify(q));
  }
  const e = explain({ function: 'read-holding-registers', address: '10-19' });
  t.match(e.text, /\n    modbus request read-holding-registers \(3\), unit 1 \(not given: one the block allows\), holding-registers 10-19: allowed$/);
});

t.test('explain: requests the block refuses, and why', async (t) => {
  const cases: [ModbusQuestion, string, RegExp][] = [
    [{ function: 'write-single-register', unit: '1', address: '5' }, 'function_not_allowed',
      /write-single-register \(6\), unit 1, holding-registers 5: refused \(function_not_allowed\): write-single-register \(6\) is not among the block's functions\n {6}on-violation exception: the client gets exception 01 \(illegal function\) and the server side is reset/],
    [{ function: '43/13' }, 'function_not_allowed', /encapsulated-interface \(43\/13\), unit 1 .*: refused \(function_not_allowed\)/],
    [{ function: 'read-holding-registers', unit: '7', address: '0' }, 'unit_not_allowed',
      /refused \(unit_not_allowed\): unit 7 is not among the block's units\n.*exception 0B \(gateway target device failed to respond\)/],
    [{ function: 'read-holding-registers', unit: '1', address: '95-104' }, 'address_not_allowed',
      /holding-registers 95-104: refused \(address_not_allowed\): holding-registers 95-104 is not inside one range the block allows\n.*exception 02 \(illegal data address\)/],
    [{ function: 'read-input-registers', unit: '1' }, 'address_not_allowed',
      /input-registers 0 \(not given\): refused \(address_not_allowed\): the block allows no input-registers address/],
    [{ function: 'read-holding-registers', unit: '1', address: '0-199' }, 'bad_quantity',
      /refused \(bad_quantity\): 200 items are more than one read-holding-registers \(3\) request may carry \(125\)/],
    [{ function: 'write-multiple-registers', unit: '1', address: '0-49' }, 'too_long',
      /refused \(too_long\): the request is at least 113 bytes, more than max-length 100\n.*exception 03 \(illegal data value\)/],
  ];
  for (const [q, reason, text] of cases) {
    const e = explain(q);
    t.ok(e.ok, JSON.stringify(q));
    t.same(e.probes[0].modbus, { inspected: true, refused: reason }, JSON.stringify(q));
    t.match(e.text, text, JSON.stringify(q));
  }
  const reset = explain({ function: '6', address: '1' }, '10.0.1.3', 'modbus', explainText.replace('on-violation: exception', 'on-violation: reset'));
  t.match(reset.text, /\n {6}on-violation reset: the connection is reset both ways$/);
  const drop = explain({ function: '6', address: '1' }, '10.0.1.3', 'modbus', explainText.replace('on-violation: exception', 'on-violation: drop'));
  t.match(drop.text, /\n {6}on-violation drop: the request is dropped silently \(the client waits for its timeout\)/);
  const monitor = explain({ function: '6', address: '1' }, '10.0.1.3', 'modbus', explainText.replace('version: 1\n', 'version: 1\nmode: monitor\n'));
  t.match(monitor.text, /\n {6}mode is monitor: the violation is counted and logged, and the request forwarded\n/);
});

t.test('explain: a rule without a block does not inspect Modbus', async (t) => {
  const e = explain({ function: 'write-single-register', unit: '9', address: '7' }, '10.0.2.5');
  t.same(e.probes[0].modbus, { inspected: false, refused: null });
  t.match(e.text, /\n {4}rule 'eng-plc' does not inspect Modbus: any function passes$/);
  const denied = explain({ function: '3' }, '10.0.1.3', 'tcp/503');
  t.same(denied.probes[0].modbus, { inspected: false, refused: 'deny' });
  t.match(denied.text, /the connection is not allowed \(deny\): no Modbus request reaches the server/);
  const unmatched = explain({ function: '3' }, '10.0.1.99');
  t.equal(unmatched.probes[0].decidedBy.isDefault, true);
  t.same(unmatched.probes[0].modbus, { inspected: false, refused: 'deny' });
});

t.test('explain: bad questions are errors', async (t) => {
  const cases: [ModbusQuestion, string][] = [
    [{ function: 'reed-coils' }, `--modbus-function 'reed-coils': unknown function (did you mean 'read-coils'?) (a name such as read-holding-registers, a code 1-127, or 43/14)`],
    [{ function: 'read' }, `--modbus-function 'read': 'read' is a class (read-coils (1), read-discrete-inputs (2), read-holding-registers (3), read-input-registers (4), read-device-identification (43/14)): name one function`],
    [{ function: '0' }, `--modbus-function '0': a function code is 1-127`],
    [{ function: '128' }, `--modbus-function '128': a function code is 1-127`],
    [{ function: '3/14' }, `--modbus-function '3/14': only function 43 takes a type after '/', 0-255 (43/14 reads device identification)`],
    [{ function: '43/256' }, `--modbus-function '43/256': only function 43 takes a type after '/', 0-255 (43/14 reads device identification)`],
    [{ function: '3', unit: '256' }, `--unit '256': a unit identifier is 0-255`],
    [{ function: '3', unit: 'x' }, `--unit 'x': a unit identifier is 0-255`],
    [{ function: '3', address: '70000' }, `--address '70000': an address or a range A-B, 0-65535`],
    [{ function: '3', address: '9-1' }, `--address '9-1': the range starts after it ends`],
    [{ function: '3', address: 'ten' }, `--address 'ten': an address or a range A-B, 0-65535`],
    [{ function: '7', address: '1' }, `--address '1': read-exception-status (7) touches no data table, so it has no address`],
    [{ function: 'write-single-coil', address: '1-2' }, `--address '1-2': write-single-coil (5) addresses one item of coils: give one address`],
  ];
  for (const [q, message] of cases) {
    const e = explain(q);
    t.equal(e.ok, false, JSON.stringify(q));
    t.equal(e.text, message);
  }
});

t.test('policy explain on the command line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatekeeper-modbus-'));
  const file = join(dir, 'p.yaml');
  writeFileSync(file, explainText);
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [cliPath, 'policy', 'explain', file, '--from', '10.0.1.3', '--to', '10.0.0.10', '--service', 'modbus', ...args],
      { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const allowed = run('--modbus-function', 'read-holding-registers', '--unit', '2', '--address', '0-9');
  t.equal(allowed.status, 0, allowed.stderr);
  t.match(allowed.stdout, /modbus request read-holding-registers \(3\), unit 2, holding-registers 0-9: allowed/);
  const refused = run('--modbus-function', '6', '--unit', '2', '--address', '0');
  t.equal(refused.status, 0, refused.stderr);
  t.match(refused.stdout, /refused \(function_not_allowed\)/);
  const plain = run();
  t.equal(plain.status, 0);
  t.match(plain.stdout, /inspected by its modbus block: functions 1-4, 8, 16, 43\/14/);
  t.notMatch(plain.stdout, /modbus request/);
  const bad = run('--modbus-function', 'read');
  t.equal(bad.status, 2);
  t.match(bad.stdout, /--modbus-function 'read': 'read' is a class/);
  const lonely = run('--unit', '1');
  t.equal(lonely.status, 2);
  t.match(lonely.stderr, /--unit and --address describe a Modbus request: give its --modbus-function too/);
  const noBlock = spawnSync(process.execPath, [cliPath, 'policy', 'explain', file, '--from', '10.0.2.5', '--to', '10.0.0.10', '--service', 'tcp/502',
    '--modbus-function', '5', '--address', '3'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(noBlock.status, 0, noBlock.stderr);
  t.match(noBlock.stdout, /rule 'eng-plc' does not inspect Modbus: any function passes/);
});
