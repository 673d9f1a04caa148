// Review (appliance/mgmt/learn/review.ts): decisions on a proposal → the merged policy text (active
// text and comments kept, learned part marked, before a final catch-all), its diff, notes; rename
// collisions and bad decisions are clear errors; every text compiles.

import t, { type Test } from 'tap';
import { loadPolicyText } from '../appliance/policy/load';
import { propose } from '../appliance/mgmt/learn/propose';
import { review, ReviewError } from '../appliance/mgmt/learn/review';
import type { Decision, Proposal } from '../appliance/mgmt/learn/types';
import { makeAsset, makeConversation } from './lib/fake-inventory';

const NOW = Date.UTC(2026, 11, 2, 12);
const ACTIVE = [
  'version: 1',
  '# the plant cell',
  'groups:',
  '  scada: [198.18.40.1]   # the SCADA server',
  'rules:',
  '  - name: scada-ssh',
  '    from: scada',
  '    to: any',
  '    service: ssh',
  '    action: allow',
  '  # the rest is dropped',
  '  - name: rest',
  '    from: any',
  '    to: any',
  '    service: any',
  '    action: deny',
  '',
].join('\n');

function compiles(t: Test, text: string): void {
  const r = loadPolicyText(text, 'x');
  t.ok(r.ok, r.ok ? 'the text compiles' : `the text compiles: ${r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('; ')}`);
}

function fixture(): Proposal {
  const hmi = makeAsset({ mac: '02:00:5e:20:00:03', addresses: ['198.18.20.3'], identity: { dhcp: { hostName: 'hmi' } } });
  const plc = makeAsset({ mac: '02:00:5e:10:00:0a', addresses: ['198.18.10.10'], identity: { lldp: { systemName: 'plc' } } });
  const eng = makeAsset({ mac: '02:00:5e:30:00:05', addresses: ['198.18.30.5'], identity: { lldp: { systemName: 'eng' } } });
  return propose({ id: 'prop-1', pair: 'p1', activeText: ACTIVE, now: NOW, hours: 24, assets: [hmi, plc, eng], conversations: [
    makeConversation(hmi, plc, { protocol: 'modbus', functions: { 'read-coils': 4 } }),
    makeConversation(eng, plc, { port: 102, service: 's7comm' }),
  ] });
}

const byName = (p: Proposal, name: string) => p.groups.find((g) => g.name === name)!;
const ruleTo = (p: Proposal, service: string) => p.rules.find((r) => r.services[0] === service)!;
const acceptAll = (p: Proposal): Decision[] => [...p.groups.map((g) => ({ kind: 'group' as const, id: g.id, accept: true })),
  ...p.rules.map((r) => ({ kind: 'rule' as const, id: r.id, accept: true }))];

t.test('accepting everything gives the proposal text; the diff only adds lines, the active text stays', async (t) => {
  const p = fixture();
  t.same(p.errors, []);
  const r = review(p, acceptAll(p), ACTIVE, NOW);
  compiles(t, r.text);
  t.same(r.notes, []);
  t.notOk(/^-[^-]/m.test(r.diff), 'no line removed');
  t.match(r.diff, /^\+  - name: hmi-to-plc-modbus$/m);
  t.match(r.diff, /^\+  # --- learned rules \(pair p1, proposal prop-1, reviewed 2026-12-02T12:00:00.000Z\) ---$/m);
  t.ok(r.text.includes('  scada: [198.18.40.1]   # the SCADA server'), 'the active lines and comments kept');
  t.ok(r.text.indexOf('hmi-to-plc-modbus') < r.text.indexOf('  # the rest is dropped'), 'learned rules before the catch-all');
  const removed = r.text.split('\n').filter((l) => !ACTIVE.split('\n').includes(l));
  t.ok(removed.every((l) => /learned|hmi|plc|eng|description|members|from|to|service|action|modbus|functions|^\s*$/.test(l)), 'only learned lines added');
});

t.test('a rejected group drops the rules that use it, with a note; renames carry into the rules', async (t) => {
  const p = fixture();
  const decisions: Decision[] = [
    { kind: 'group', id: byName(p, 'hmi').id, accept: true, rename: 'operator-hmi' },
    { kind: 'group', id: byName(p, 'plc').id, accept: true },
    { kind: 'group', id: byName(p, 'eng').id, accept: false },
    { kind: 'rule', id: ruleTo(p, 'modbus').id, accept: true, rename: 'hmi-reads-plc' },
    { kind: 'rule', id: ruleTo(p, 's7comm').id, accept: true },
  ];
  const r = review(p, decisions, ACTIVE, NOW);
  compiles(t, r.text);
  t.match(r.text, /- name: hmi-reads-plc\n\s+description: "learned 2026-12-01 to 2026-12-02, 1 flow"\n\s+from: operator-hmi\n\s+to: plc/);
  t.notOk(r.text.includes('eng'), 'the rejected group and its rule are not in the text');
  t.same(r.notes, [`rule '${ruleTo(p, 's7comm').id}' (eng-to-plc-s7comm) is left out: its group 'eng' was not accepted`]);
});

t.test('undecided parts are left out and said so; an unused accepted group is noted', async (t) => {
  const p = fixture();
  const r = review(p, [{ kind: 'group', id: byName(p, 'eng').id, accept: true }], ACTIVE, NOW);
  compiles(t, r.text);
  t.same(r.notes, ['2 groups and 2 rules of the proposal had no decision and are left out',
    "group 'eng' is used by no accepted rule (the compiler warns about unused groups)"]);
  const none = review(p, [], ACTIVE, NOW);
  t.equal(none.text, ACTIVE);
  t.equal(none.diff.split('\n').filter((l) => /^[+-][^+-]/.test(l)).length, 0, 'empty diff');
});

t.test('renames that collide, invalid names and unknown ids are errors with clear messages', async (t) => {
  const p = fixture();
  const hmi = byName(p, 'hmi').id;
  const plc = byName(p, 'plc').id;
  t.throws(() => review(p, [{ kind: 'group', id: hmi, accept: true, rename: 'scada' }], ACTIVE, NOW),
    new ReviewError(`group '${hmi}' renamed to 'scada': the active policy already has a group 'scada'; choose another name`));
  t.throws(() => review(p, [{ kind: 'group', id: hmi, accept: true, rename: 'plc' }, { kind: 'group', id: plc, accept: true }], ACTIVE, NOW),
    { message: `group '${plc}' ('plc'): group '${hmi}' already has a group 'plc'; choose another name` });
  t.throws(() => review(p, [{ kind: 'group', id: hmi, accept: true }, { kind: 'group', id: plc, accept: true },
    { kind: 'rule', id: ruleTo(p, 'modbus').id, accept: true, rename: 'scada-ssh' }], ACTIVE, NOW),
  { message: `rule '${ruleTo(p, 'modbus').id}' renamed to 'scada-ssh': the active policy already has a rule 'scada-ssh'; choose another name` });
  t.throws(() => review(p, [{ kind: 'group', id: hmi, accept: true, rename: '1-hmi' }], ACTIVE, NOW), { message: /rename of group '.*' to '1-hmi': names start with a letter/ });
  t.throws(() => review(p, [{ kind: 'group', id: hmi, accept: true, rename: 'any' }], ACTIVE, NOW), { message: /to 'any': .*"any" is reserved/ });
  t.throws(() => review(p, [{ kind: 'rule', id: 'g1', accept: true }], ACTIVE, NOW), { message: "decision for rule 'g1': proposal prop-1 has no such rule" });
  t.throws(() => review(p, [{ kind: 'group', id: hmi, accept: true }, { kind: 'group', id: hmi, accept: false }], ACTIVE, NOW),
    { message: `group '${hmi}' has more than one decision` });
});

t.test('a catch-all allow rule is kept and noted: the learned rules change nothing until it goes', async (t) => {
  const active = ACTIVE.replace('    action: deny', '    action: allow');
  const p = fixture();
  const r = review(p, acceptAll(p), active, NOW);
  compiles(t, r.text);
  t.same(r.notes, ["the active policy's last rule 'rest' allows everything; the learned rules come before it but change nothing until it is removed or made a deny"]);
});

t.test('without an active policy the review writes a fresh policy with default deny', async (t) => {
  const p = fixture();
  const fresh = propose({ ...p, id: 'prop-2', activeText: null, now: NOW, hours: 24, pair: 'p1',
    assets: [], conversations: [] });
  t.equal(fresh.groups.length, 0);
  const hmi = makeAsset({ mac: '02:00:5e:20:00:03', addresses: ['198.18.20.3', '2001:2::3'] });
  const plc = makeAsset({ mac: '02:00:5e:10:00:0a', addresses: ['198.18.10.10', '2001:2::10'] });
  const q = propose({ id: 'prop-3', pair: 'p1', activeText: null, now: NOW, hours: 24, assets: [hmi, plc], conversations: [
    makeConversation(hmi, plc), makeConversation(hmi, plc, { client: '2001:2::3', server: '2001:2::10' })] });
  const r = review(q, acceptAll(q), null, NOW);
  compiles(t, r.text);
  t.match(r.text, /^version: 1\n/);
  t.match(r.text, /default: deny/);
  t.match(r.text, /"2001:2::3@02:00:5e:20:00:03"/);
  t.match(r.diff, /^\+version: 1$/m);
});
