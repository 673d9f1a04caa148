// Merging learned groups and rules into a policy text (appliance/mgmt/learn/merge.ts): the shapes an
// active policy may take (no groups, empty groups, empty flow lists, rules at column 0, no final
// newline), the marked blocks, the refusal of non-empty flow collections; every result compiles.

import t, { type Test } from 'tap';
import { mergeLearned, MergeError, type LearnedGroupText, type LearnedRuleText } from '../appliance/mgmt/learn/merge';
import { loadPolicyText } from '../appliance/policy/load';

const groups: LearnedGroupText[] = [{ name: 'hmi', description: 'learned from dhcp: asset 1', members: ['198.18.20.3@02:00:5e:20:00:03', '2001:2::3'] },
  { name: 'plc', description: 'learned from lldp: asset 2', members: ['198.18.10.10'] }];
const rules: LearnedRuleText[] = [{ name: 'hmi-to-plc-modbus', description: 'learned 2026-12-02, 3 flows', from: 'hmi', to: 'plc', services: ['modbus'], functions: ['read'] },
  { name: 'hmi-to-plc-8086', description: 'learned 2026-12-02, 1 flow', from: 'hmi', to: 'plc', services: ['tcp/8086'] }];

/** `emptied`: the active text has empty flow collections ({} / []), which the learned block replaces. */
function merged(t: Test, active: string, emptied = false): string {
  const text = mergeLearned(active, groups, rules, 'test', false);
  const r = loadPolicyText(text, 'x');
  t.ok(r.ok, r.ok ? 'compiles' : `compiles: ${r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('; ')}\n${text}`);
  if (r.ok) t.same(r.model.rules.slice(-2).map((x) => x.name), ['hmi-to-plc-modbus', 'hmi-to-plc-8086']);
  // Every line of the active text is still there, in order (only lines were added).
  const out = text.split('\n');
  let at = 0;
  for (const line of active.split('\n')) {
    while (at < out.length && out[at] !== line) at++;
    at++;
  }
  if (!emptied) t.ok(at <= out.length, 'the active lines kept, in order');
  return text;
}

t.test('the shapes an active policy may take', async (t) => {
  const rule = '  - name: ssh\n    from: 198.18.1.1\n    to: any\n    service: ssh\n    action: allow\n';
  const noGroups = merged(t, `version: 1\n# rules below\nrules:\n${rule}`);
  t.match(noGroups, /^version: 1\ngroups:\n  # --- learned groups \(test\) ---\n  hmi:\n/, 'a groups section before the comment that introduces rules');
  merged(t, `version: 1\ngroups:\nrules:\n${rule}`);
  const emptied = merged(t, `version: 1\ngroups: {}\nrules: []\n`, true);
  t.match(emptied, /^version: 1\ngroups:\n  # --- learned groups/);
  t.match(emptied, /\nrules:\n  # --- learned rules \(test\) ---\n  - name: hmi-to-plc-modbus\n/);
  const col0 = merged(t, `version: 1\ngroups:\n    old: [198.18.9.9]\nrules:\n- name: ssh\n  from: old\n  to: any\n  service: ssh\n  action: allow`);
  t.match(col0, /\n    hmi:\n      description: "learned from dhcp: asset 1"\n/, 'groups at the indentation of the existing ones');
  t.match(col0, /\n- name: hmi-to-plc-modbus\n  description: /, 'rules at the dash column of the existing ones');
  t.match(col0, /# --- end of learned rules ---\n$/);
  const nested = merged(t, `version: 1\ngroups:\n  old:\n    description: the old one\n    members:\n      - 198.18.9.9\n  # trailing comment\nrules:\n${rule}l2:\n  allow: [lldp]\n`);
  t.match(nested, /      - 198.18.9.9\n  # --- learned groups/);
  t.match(nested, /# --- end of learned rules ---\nl2:\n  allow: \[lldp\]\n$/, 'keys after rules stay after');
});

t.test('flow collections with entries are refused with a clear message', async (t) => {
  t.throws(() => mergeLearned('version: 1\ngroups: {a: [198.18.0.1]}\nrules: []\n', groups, [], 'x', false),
    new MergeError('the active policy writes `groups` in flow style ({...}); write it as a block mapping so learned groups can be added'));
  t.throws(() => mergeLearned('version: 1\nrules: [{name: a, from: any, to: any, service: ssh, action: allow}]\n', [], rules, 'x', false),
    { message: /writes `rules` in flow style/ });
});

t.test('nothing learned leaves the text as it is; no active policy gives a fresh one', async (t) => {
  const active = 'version: 1\nrules: []\n';
  t.equal(mergeLearned(active, [], [], 'x', false), active);
  const fresh = mergeLearned(null, groups, rules, 'x', false);
  t.ok(loadPolicyText(fresh, 'x').ok);
  t.match(fresh, /^version: 1\ndescription: "learned \(x\)"\nmode: enforce\ndefault: deny\n/);
});
