// The matching module on its own: the one rule-key definition, and what the packet thread loads —
// a fresh process that requires policy/match.js and policy/load-worker.js (from dist/, so run
// `npm run build` first) and loads a policy through the worker must hold no YAML parser, schema
// validator, model or compiler in its require cache.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyText } from '../appliance/policy/load';
import { loadPolicyInBackground } from '../appliance/policy/load-worker';
import { flowRuleKeyOf, ruleKeyOf } from '../appliance/policy/match';
import { labPolicyPath, projectRoot } from '../appliance/paths';
import { Proto } from '../appliance/wire/protocols';

t.test('ruleKeyOf: destination port, ICMP type and code, or 0', async (t) => {
  for (const proto of [Proto.TCP, Proto.UDP, Proto.SCTP]) t.equal(ruleKeyOf(proto, 502, 9, 9), 502, `proto ${proto}`);
  t.equal(ruleKeyOf(Proto.ICMP, 77, 3, 4), (3 << 8) | 4, 'icmp');
  t.equal(ruleKeyOf(Proto.ICMPV6, 77, 128, 0), 128 << 8, 'icmpv6');
  for (const proto of [Proto.GRE, Proto.ESP, 0, Proto.UNKNOWN]) t.equal(ruleKeyOf(proto, 502, 8, 0), 0, `proto ${proto}`);
});

t.test('flowRuleKeyOf: the responder port, or the echo request of an ICMP flow', async (t) => {
  t.equal(flowRuleKeyOf(Proto.TCP, 443), 443);
  t.equal(flowRuleKeyOf(Proto.UDP, 53), 53);
  t.equal(flowRuleKeyOf(Proto.ICMP, 0), 8 << 8);
  t.equal(flowRuleKeyOf(Proto.ICMPV6, 0), 128 << 8);
  t.equal(flowRuleKeyOf(Proto.GRE, 0), 0);
});

t.test('the key decides like the policy language spells services', async (t) => {
  const loaded = loadPolicyText(
    [
      'version: 1',
      'default: deny',
      'rules:',
      '  - { name: ping, from: any, to: any, service: icmp/echo-request, action: allow }',
      '  - { name: unreachable, from: any, to: any, service: icmp/3/4, action: allow }',
      '  - { name: modbus, from: any, to: any, service: tcp/502, action: allow }',
      '  - { name: gre, from: any, to: any, service: gre, action: allow }',
      '',
    ].join('\n'),
    'keys.yaml',
  );
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const p = loaded.policy;
  const name = (proto: number, key: number) => p.rules[p.match4(0x0a000001, 0x0a000002, proto, key)].name;
  t.equal(name(Proto.ICMP, ruleKeyOf(Proto.ICMP, 0, 8, 0)), 'ping');
  t.equal(name(Proto.ICMP, flowRuleKeyOf(Proto.ICMP, 1234)), 'ping', 'a tracked echo flow');
  t.equal(name(Proto.ICMP, ruleKeyOf(Proto.ICMP, 0, 3, 4)), 'unreachable');
  t.equal(name(Proto.ICMP, ruleKeyOf(Proto.ICMP, 0, 3, 3)), 'default');
  t.equal(name(Proto.TCP, ruleKeyOf(Proto.TCP, 502, 0, 0)), 'modbus');
  t.equal(name(Proto.TCP, flowRuleKeyOf(Proto.TCP, 502)), 'modbus');
  t.equal(name(Proto.GRE, ruleKeyOf(Proto.GRE, 502, 0, 0)), 'gre');
});

t.test('the packet thread loads matching only, even after a load through the worker', async (t) => {
  const dist = join(projectRoot, 'dist', 'appliance', 'policy');
  if (!existsSync(join(dist, 'load-worker-entry.js'))) {
    t.fail('run npm run build first: dist/appliance/policy/load-worker-entry.js is missing');
    return;
  }
  const script = `
    require(${JSON.stringify(join(dist, 'match.js'))});
    const { loadPolicyInBackground } = require(${JSON.stringify(join(dist, 'load-worker.js'))});
    const text = require('node:fs').readFileSync(${JSON.stringify(labPolicyPath)}, 'utf8');
    loadPolicyInBackground(text, 'lab.yaml').then((r) => {
      const rules = r.ok ? r.policy.rules.length : -1;
      console.log(JSON.stringify({ ok: r.ok, rules, loaded: Object.keys(require.cache) }));
    });
  `;
  // The timeout also catches a kept-warm worker that would hold the process open.
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 })) as { ok: boolean; rules: number; loaded: string[] };
  t.ok(out.ok && out.rules > 1, 'the worker compiled the policy');
  const heavy = out.loaded.filter((path) =>
    /[\\/]node_modules[\\/](yaml|ajv)[\\/]/.test(path) ||
    /[\\/]policy[\\/](model|compile|load|load-worker-entry|schema|services|addresses|generate)\.js$/.test(path) ||
    /[\\/]policy[\\/]analysis[\\/]/.test(path));
  t.same(heavy, [], 'no parser, validator, model or compiler on the calling thread');
  t.ok(out.loaded.some((path) => path.endsWith(join('policy', 'match.js'))), 'the cache list is real');
});

t.test('background loads in a row and at once, good and bad, answer like loads in place', async (t) => {
  const good = readFileSync(labPolicyPath, 'utf8');
  const bad = 'version: 1\nrules:\n  - { name: x, from: nowhere, to: any, service: any, action: allow }\n';
  const inPlace = loadPolicyText(good, 'lab.yaml');
  if (!inPlace.ok) throw new Error('lab.yaml does not load');
  const first = await loadPolicyInBackground(good, 'lab.yaml');
  const refused = await loadPolicyInBackground(bad, 'bad.yaml');
  const together = await Promise.all([good, bad].map((text, i) => loadPolicyInBackground(text, `at-once-${i}.yaml`)));
  const again = await loadPolicyInBackground(good, 'lab.yaml');
  for (const r of [first, together[0], again]) {
    t.ok(r.ok && r.policy.sourceHash === inPlace.policy.sourceHash && r.policy.rules.length === inPlace.policy.rules.length, 'compiled');
  }
  for (const r of [refused, together[1]]) t.match(r, { ok: false, errors: [{ line: 3, message: /unknown group 'nowhere'/ }] }, 'refused at its line');
});
