// explainDecision: the deciding rule, per-field matches, near misses, and bad input.

import t from 'tap';
import { join } from 'node:path';
import { explainDecision } from '../appliance/policy/analysis/explain';
import { loadPolicyFile, loadPolicyText } from '../appliance/policy/load';

const text = `version: 1
groups:
  plc: [10.0.0.10]
  hmi: [10.0.1.0/28, "2001:db8::/64"]
  eng: [10.0.2.5]
rules:
  - name: hmi-modbus
    from: hmi
    to: plc
    service: modbus
    action: allow
    log: true
  - name: eng-web
    from: eng
    to: plc
    service: [http, https]
    action: allow
  - name: block-hmi
    from: hmi
    to: any
    service: any
    action: reject
`;

function load() {
  const r = loadPolicyText(text, 'p.yaml');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r;
}

t.test('the deciding rule and the fields', async (t) => {
  const { model, policy } = load();
  const e = explainDecision(model, policy, '10.0.1.3', '10.0.0.10', 'tcp/502');
  t.ok(e.ok);
  t.same(e.fromGroups, ['hmi']);
  t.same(e.toGroups, ['plc']);
  t.equal(e.probes.length, 1);
  const p = e.probes[0];
  t.same(p.decidedBy, { index: 0, name: 'hmi-modbus', line: 7, action: 'allow', log: true, isDefault: false });
  t.same(p.matching, { from: ['hmi-modbus', 'block-hmi'], to: ['hmi-modbus', 'eng-web', 'block-hmi'], service: ['hmi-modbus', 'block-hmi'] });
  t.same(p.nearMisses, []);
  t.match(e.text, /decided by rule 'hmi-modbus' \(line 7\): allow, logged/);
});

t.test('near misses name the failing field', async (t) => {
  const { model, policy } = load();
  const e = explainDecision(model, policy, '10.0.1.3', '10.0.0.10', 'tcp/80');
  const p = e.probes[0];
  t.equal(p.decidedBy.name, 'block-hmi');
  t.equal(p.decidedBy.action, 'reject');
  t.same(
    p.nearMisses.map((c) => [c.name, c.from, c.to, c.service]),
    [
      ['hmi-modbus', true, true, false],
      ['eng-web', false, true, true],
    ],
  );
  t.match(e.text, /'hmi-modbus' \(line 7, allow\): service does not include tcp\/80/);
  t.match(e.text, /'eng-web' \(line 13, allow\): from does not contain 10\.0\.1\.3/);
});

t.test('default rule, IPv6 and named services with several protocols', async (t) => {
  const { model, policy } = load();
  const e = explainDecision(model, policy, '10.0.2.5', '10.0.0.99', 'http');
  t.equal(e.probes[0].decidedBy.isDefault, true);
  t.match(e.text, /no rule matches: the default applies: deny, logged/);
  const v6 = explainDecision(model, policy, '2001:db8::7', '2001:db8:1::1', 'dns');
  t.same(v6.probes.map((p) => p.packet), ['udp/53', 'tcp/53']);
  t.same(v6.probes.map((p) => p.decidedBy.name), ['block-hmi', 'block-hmi']);
  const ping = explainDecision(model, policy, '10.0.2.5', '10.0.0.10', 'icmp/echo-request');
  t.equal(ping.probes[0].packet, 'icmp type 8 code 0');
  const any = explainDecision(model, policy, '10.0.1.1', '10.0.0.10', 'any');
  t.equal(any.probes[0].decidedBy.name, 'block-hmi');
});

t.test('bad input is an error, not an exception', async (t) => {
  const { model, policy } = load();
  for (const [from, to, svc, msg] of [
    ['10.0.0.300', '10.0.0.1', 'tcp/1', /not an IPv4 or IPv6 address/],
    ['10.0.0.1', '2001:db8::1', 'tcp/1', /both be IPv4 or both be IPv6/],
    ['10.0.0.1', '10.0.0.2', 'nosuch', /unknown service 'nosuch'/],
    ['10.0.0.1', '10.0.0.2', 'tcp/70000', /ports must be 0\.\.65535/],
  ] as const) {
    const e = explainDecision(model, policy, from, to, svc);
    t.equal(e.ok, false);
    t.match(e.text, msg);
  }
});

t.test('lab policy: the documented decisions', async (t) => {
  const r = loadPolicyFile(join(__dirname, '..', 'docs', 'examples', 'lab.yaml'));
  t.ok(r.ok);
  if (!r.ok) return;
  const decide = (from: string, to: string, svc: string) => {
    const d = explainDecision(r.model, r.policy, from, to, svc).probes[0].decidedBy;
    return `${d.name}:${d.action}`;
  };
  t.equal(decide('198.18.1.10', '198.18.1.100', 'icmp/echo-request'), 'client-ping-server:allow');
  t.equal(decide('2001:2:0:1::10', '2001:2:0:1::100', 'icmpv6/echo-request'), 'client-ping-server:allow');
  for (const svc of ['tcp/5201', 'tcp/8080', 'udp/5353', 'tcp/502']) {
    t.equal(decide('198.18.1.10', '198.18.1.100', svc), 'client-test-services:allow', svc);
    t.equal(decide('2001:2:0:1::10', '2001:2:0:1::100', svc), 'client-test-services:allow', `${svc} v6`);
  }
  t.equal(decide('198.18.1.10', '198.18.1.100', 'tcp/8081'), 'client-rejected-port:reject');
  t.equal(decide('198.18.1.10', '198.18.1.100', 'tcp/22'), 'default:deny');
  t.equal(decide('198.18.1.100', '198.18.1.10', 'tcp/5201'), 'default:deny', 'server may not open connections');
  t.equal(r.policy.l2Allow[0x88cc], 1);
});
