// Propose (appliance/mgmt/learn/propose.ts): groups named from identity, identical assets merged,
// Modbus functions as read or exact codes, bindings, coverage and what it leaves out, every text
// compiled with the real policy compiler.

import t, { type Test } from 'tap';
import { loadPolicyText } from '../appliance/policy/load';
import { LEFT_OUT_REASONS, leftOutCodes, propose, sanitizeName, type ProposeInput } from '../appliance/mgmt/learn/propose';
import type { Proposal } from '../appliance/mgmt/learn/types';
import { makeAsset, makeConversation } from './lib/fake-inventory';

const NOW = Date.UTC(2026, 11, 2, 12);

function run(fields: Partial<ProposeInput>): Proposal {
  return propose({ id: 'p-test', pair: 'p1', conversations: [], assets: [], activeText: null, now: NOW, hours: 24, ...fields });
}

function compiles(t: Test, text: string): void {
  const r = loadPolicyText(text, 'x');
  t.ok(r.ok, r.ok ? 'the text compiles' : `the text compiles: ${r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('; ')}`);
}

const plc = () => makeAsset({ mac: '02:00:5e:10:00:0a', addresses: ['198.18.10.10'], vendor: 'Siemens AG',
  identity: { lldp: { systemName: 'PLC Line 1' } } });
const hmi = () => makeAsset({ mac: '02:00:5e:20:00:03', addresses: ['198.18.20.3'], identity: { dhcp: { hostName: 'hmi_ops' } } });

t.test('names come from identity, in order lldp, dhcp, modbus, vendor, address', async (t) => {
  const a = plc();
  const b = hmi();
  const c = makeAsset({ mac: '02:00:5e:30:00:01', addresses: ['198.18.30.1'], identity: { modbus: { productName: 'M580 CPU' } } });
  const d = makeAsset({ mac: '00:1b:1b:00:00:07', addresses: ['198.18.30.7'], vendor: 'Siemens AG' });
  const e = makeAsset({ mac: '02:00:5e:30:00:09', addresses: ['198.18.30.9'] });
  const conversations = [makeConversation(b, a), makeConversation(b, c, { port: 102, service: 's7comm' }),
    makeConversation(d, e, { port: 8086, service: 'tcp/8086' }), makeConversation(e, a, { proto: 'icmp', port: 8, service: 'ping' })];
  const p = run({ assets: [a, b, c, d, e], conversations });
  const byAsset = new Map(p.groups.map((g) => [g.assets[0], g]));
  t.same([byAsset.get(a.id)!.name, byAsset.get(a.id)!.namedFrom], ['plc-line-1', 'lldp']);
  t.same([byAsset.get(b.id)!.name, byAsset.get(b.id)!.namedFrom], ['hmi_ops', 'dhcp']);
  t.same([byAsset.get(c.id)!.name, byAsset.get(c.id)!.namedFrom], ['m580-cpu', 'modbus']);
  t.same([byAsset.get(d.id)!.name, byAsset.get(d.id)!.namedFrom], ['siemens-7', 'vendor']);
  t.same([byAsset.get(e.id)!.name, byAsset.get(e.id)!.namedFrom], ['host-198.18.30.9', 'address']);
  t.same(byAsset.get(a.id)!.members, ['198.18.10.10@02:00:5e:10:00:0a'], 'members bound to the MAC');
  t.same(p.rules.map((r) => r.services[0]).sort(), ['modbus', 'ping', 's7comm', 'tcp/8086']);
  t.same(p.errors, []);
  compiles(t, p.text);
  t.equal(p.coverage.conversations, 4);
  t.equal(p.coverage.share, 1);
});

t.test('sanitized names are valid and unique, also against the active policy', async (t) => {
  t.equal(sanitizeName('Ünïcode  Box #1'), 'unicode-box-1');
  t.equal(sanitizeName('3com switch'), 'asset-3com-switch');
  t.equal(sanitizeName('any'), 'asset-any');
  t.equal(sanitizeName('!!!'), 'asset');
  const a = makeAsset({ mac: '02:00:00:00:00:01', addresses: ['198.18.0.1'], identity: { lldp: { systemName: 'plc' } } });
  const b = makeAsset({ mac: '02:00:00:00:00:02', addresses: ['198.18.0.2'], identity: { lldp: { systemName: 'plc' } } });
  const c = makeAsset({ mac: '02:00:00:00:00:03', addresses: ['198.18.0.3'], identity: { lldp: { systemName: 'plc' } } });
  const active = 'version: 1\ngroups:\n  plc: [198.18.99.1]\nrules:\n  - name: x\n    from: plc\n    to: plc\n    service: ssh\n    action: allow\n';
  // a → b modbus, b → c http: three different behaviours, three groups named plc.
  const p = run({ assets: [a, b, c], activeText: active,
    conversations: [makeConversation(a, b), makeConversation(b, c, { port: 80, service: 'http' })] });
  t.same(p.groups.map((g) => g.name).sort(), ['plc-2', 'plc-3', 'plc-4']);
  compiles(t, p.text);
});

t.test('assets with identical behaviour share one group; the rule allows exactly the pairs seen', async (t) => {
  const plcs = [1, 2].map((n) => makeAsset({ mac: `02:00:00:00:01:0${n}`, addresses: [`198.18.10.${n}`], identity: { lldp: { systemName: `plc-${n}` } } }));
  const hmis = [1, 2].map((n) => makeAsset({ mac: `02:00:00:00:02:0${n}`, addresses: [`198.18.20.${n}`], identity: { dhcp: { hostName: `hmi-${n}` } } }));
  const eng = makeAsset({ mac: '02:00:00:00:03:01', addresses: ['198.18.30.1'], identity: { dhcp: { hostName: 'eng' } } });
  const read = { protocol: 'modbus', functions: { 'read-holding-registers': 10 } };
  const conversations = [
    ...hmis.flatMap((h) => plcs.map((p) => makeConversation(h, p, read))),
    makeConversation(eng, plcs[0], { protocol: 'modbus', functions: { 'write-single-register': 1 } }),
  ];
  const p = run({ assets: [...plcs, ...hmis, eng], conversations });
  const names = p.groups.map((g) => g.name).sort();
  // plc-1 differs (the engineering station writes to it), so only the HMIs merge.
  t.same(names, ['eng', 'hmi', 'plc-1', 'plc-2']);
  const hmiGroup = p.groups.find((g) => g.name === 'hmi')!;
  t.same(hmiGroup.assets, hmis.map((h) => h.id));
  t.equal(p.rules.length, 3);
  compiles(t, p.text);

  const samePlcs = run({ assets: [...plcs, ...hmis], conversations: conversations.slice(0, 4) });
  t.same(samePlcs.groups.map((g) => g.name).sort(), ['hmi', 'plc']);
  t.equal(samePlcs.rules.length, 1);
  t.equal(samePlcs.rules[0].flows, 4);
  compiles(t, samePlcs.text);
});

t.test('modbus: read only gives functions [read], mixed gives the exact functions, codes for unnamed ones', async (t) => {
  const a = hmi();
  const b = plc();
  const c = makeAsset({ mac: '02:00:5e:10:00:0b', addresses: ['198.18.10.11'] });
  const p = run({ assets: [a, b, c], conversations: [
    makeConversation(a, b, { protocol: 'modbus', functions: { 'read-coils': 3, 'read-input-registers': 9 }, units: [1, 7] }),
    makeConversation(a, c, { protocol: 'modbus', functions: { 'read-coils': 1, 'write-multiple-registers': 2, '90': 1 } }),
  ] });
  const toB = p.rules.find((r) => r.to === 'plc-line-1')!;
  const toC = p.rules.find((r) => r.to !== 'plc-line-1')!;
  t.same(toB.modbus, { functions: ['read'], units: [1, 7] }, 'the units the requests named');
  t.same(toC.modbus, { functions: ['read-coils', 'write-multiple-registers', 90], units: [] }, 'none seen: any unit');
  t.match(p.text, /functions: \["read"\]\n\s+units: \[1, 7\]/);
  t.match(p.text, /functions: \["read-coils", "write-multiple-registers", 90\]/);
  compiles(t, p.text);
  // The compiled block allows what was seen and refuses a write on the read-only rule.
  const r = loadPolicyText(p.text, 'x');
  if (!r.ok) return;
  const rule = r.policy.rules.find((x) => x.name === toB.name)!;
  t.ok(rule.modbus!.functions[0] & (1 << 1), 'read-coils allowed');
  t.notOk(rule.modbus!.functions[0] & (1 << 6), 'write-single-register refused');
  const units = rule.modbus!.units!;
  t.ok(units[0] & (1 << 7), 'unit 7, seen, allowed');
  t.notOk(units[0] & (1 << 2), 'unit 2, never seen, refused');
  t.equal(r.policy.rules.find((x) => x.name === toC.name)!.modbus!.units, null, 'no units seen: any unit');
});

t.test('a description says it was learned, with first/last seen and flows', async (t) => {
  const a = hmi();
  const b = plc();
  const p = run({ assets: [a, b], conversations: [
    makeConversation(a, b, { flows: 3, firstSeen: Date.UTC(2026, 10, 30, 1), lastSeen: Date.UTC(2026, 11, 1, 2) }),
    makeConversation(a, b, { flows: 4, vlan: 5, firstSeen: Date.UTC(2026, 11, 1, 1), lastSeen: Date.UTC(2026, 11, 2, 2) }),
  ] });
  t.equal(p.rules.length, 1);
  t.equal(p.rules[0].description, 'learned 2026-11-30 to 2026-12-02, 7 flows');
  t.equal(p.rules[0].firstSeen, Date.UTC(2026, 10, 30, 1));
  t.equal(p.rules[0].lastSeen, Date.UTC(2026, 11, 2, 2));
});

t.test('routers and shared addresses are not bound; an address the active policy binds elsewhere neither', async (t) => {
  const router = makeAsset({ mac: '02:00:00:00:00:fe', addresses: ['198.18.0.254', '198.18.50.1'], router: true });
  const a = makeAsset({ mac: '02:00:00:00:00:01', addresses: ['198.18.0.1'] });
  const b = makeAsset({ mac: '02:00:00:00:00:02', addresses: ['198.18.0.2'] });
  const moved = makeAsset({ mac: '02:00:00:00:00:03', addresses: ['198.18.0.2'] });
  const active = 'version: 1\ngroups:\n  old: 198.18.0.1@02:00:00:00:00:99\nrules:\n  - name: x\n    from: old\n    to: old\n    service: ssh\n    action: allow\n';
  const p = run({ assets: [router, a, b, moved], activeText: active, conversations: [
    makeConversation('198.18.50.1', a, { clientAsset: router.id, service: 'http', port: 80 }),
    makeConversation(a, b, { service: 'http', port: 80 }),
    makeConversation(a, moved, { server: '198.18.0.2', service: 'https', port: 443 }),
  ] });
  const members = p.groups.flatMap((g) => g.members).sort();
  t.same(members, ['198.18.0.1', '198.18.0.2', '198.18.0.2', '198.18.50.1']);
  compiles(t, p.text);
});

t.test('coverage: share of the window, left out with named reasons', async (t) => {
  const a = hmi();
  const b = plc();
  const active = [
    'version: 1',
    'mode: monitor',
    'groups:',
    '  hmi: [198.18.20.3]',
    'rules:',
    '  # the HMI may ping anything',
    '  - name: hmi-ping',
    '    from: hmi',
    '    to: any',
    '    service: ping',
    '    action: allow',
    '  - name: no-telnet',
    '    from: any',
    '    to: any',
    '    service: telnet',
    '    action: deny',
    '',
  ].join('\n');
  const old = { firstSeen: NOW - 50 * 3_600_000, lastSeen: NOW - 30 * 3_600_000 };
  const conversations = [
    makeConversation(a, b, { flows: 5 }), // learned
    makeConversation(a, b, { proto: 'icmp', port: 8, service: 'ping' }), // already allowed by hmi-ping
    makeConversation(a, b, { port: 23, service: 'telnet', flows: 2 }), // denied-by-active
    makeConversation(b, a, { port: 80, service: 'http', verdict: 'deny', flows: 3 }), // dropped
    makeConversation(a, '198.18.255.255', { proto: 'udp', port: 47808, service: 'bacnet' }), // no-asset
    makeConversation(a, '224.0.0.251', { proto: 'udp', port: 5353, service: 'udp/5353' }), // broadcast
    makeConversation(a, b, { proto: 'gre', port: 0, service: 'gre!' }), // unknown-service
    makeConversation(b, a, { port: 22, service: 'ssh', ...old }), // learned but outside the window
  ];
  const p = run({ assets: [a, b], activeText: active, conversations });
  t.same(p.errors, []);
  compiles(t, p.text);
  t.equal(p.coverage.conversations, 7, 'the conversation last seen 30 h ago is outside the 24 h window');
  t.equal(p.coverage.allowed, 2);
  t.equal(p.coverage.share, 2 / 7);
  const reasons = new Map(p.coverage.leftOut.map((l) => [l.service, l]));
  t.equal(reasons.get('telnet')!.code, 'denied-by-active');
  t.match(reasons.get('telnet')!.reason, /rule 'no-telnet'/);
  t.equal(reasons.get('telnet')!.flows, 2);
  t.equal(reasons.get('http')!.code, 'dropped');
  t.equal(reasons.get('bacnet')!.code, 'no-asset');
  t.equal(reasons.get('udp/5353')!.code, 'broadcast');
  t.equal(reasons.get('gre!')!.code, 'unknown-service');
  t.equal(p.coverage.leftOut[0].service, 'http', 'most flows first');
  t.equal(p.coverage.leftOutOmitted, 0);
  t.ok(p.rules.some((r) => r.services[0] === 'ssh'), 'the older conversation is still learned');
  const wide = run({ assets: [a, b], activeText: active, conversations, hours: 72 });
  t.equal(wide.coverage.conversations, 8);
  t.equal(wide.coverage.allowed, 3);
  // Every named reason but not-matched (a proposal always allows what it learned) is produced above.
  const produced = new Set(p.coverage.leftOut.map((l) => l.code));
  t.same(leftOutCodes.filter((c) => !produced.has(c)), ['not-matched']);
  for (const l of p.coverage.leftOut) if (l.code !== 'denied-by-active') t.equal(l.reason, LEFT_OUT_REASONS[l.code as keyof typeof LEFT_OUT_REASONS]);
});

t.test('no conversations: share 1, the active text unchanged', async (t) => {
  const active = 'version: 1\nrules:\n  - name: x\n    from: any\n    to: any\n    service: ssh\n    action: allow\n';
  const p = run({ activeText: active });
  t.equal(p.coverage.share, 1);
  t.equal(p.text, active);
  const fresh = run({});
  compiles(t, fresh.text);
});

t.test('the learned rules go before a final catch-all rule, which they would otherwise never pass', async (t) => {
  const a = hmi();
  const b = plc();
  const active = [
    'version: 1',
    'groups: {}',
    'rules:',
    '  - name: ssh',
    '    from: any',
    '    to: any',
    '    service: ssh',
    '    action: allow',
    '  # everything else is dropped and logged',
    '  - name: drop-rest',
    '    from: any',
    '    to: any',
    '    service: any',
    '    action: deny',
    '    log: true',
    '',
  ].join('\n');
  const p = run({ assets: [a, b], activeText: active, conversations: [makeConversation(a, b)] });
  compiles(t, p.text);
  t.equal(p.coverage.share, 1, 'what the catch-all denies is learned');
  const rules = p.text.indexOf('  - name: hmi_ops-to-plc-line-1-modbus');
  t.ok(rules > 0 && rules < p.text.indexOf('  # everything else'), 'before the catch-all and its comment');
  t.ok(p.text.includes('# everything else is dropped and logged'), 'comments kept');
});

t.test('the left-out list is bounded, most flows first, and says how many it omits', async (t) => {
  const a = hmi();
  const conversations = Array.from({ length: 1005 }, (_, i) =>
    makeConversation(a, `198.19.${i >> 8}.${i & 255}`, { flows: i + 1, service: 'http', port: 80 }));
  const p = run({ assets: [a], conversations });
  t.equal(p.coverage.leftOut.length, 1000);
  t.equal(p.coverage.leftOutOmitted, 5);
  t.equal(p.coverage.leftOut[0].flows, 1005);
  t.equal(p.coverage.leftOut[999].flows, 6);
  t.equal(p.coverage.conversations, 1005);
  t.equal(p.coverage.allowed, 0);
});
