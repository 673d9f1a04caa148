// The liveness settings API (GET/PUT /api/v1/settings/liveness) on a real management server
// (buildServer with its real state directory, test/lib/mgmt-fixture.ts): defaults (off), roles
// (viewers read, operators change), the schema and the cross-field rule refusing bad input with a
// clear 400 and nothing stored, the change audited (admin.change), kept across a restart, and the
// other settings untouched by it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_LIVENESS, LIVENESS_LIMITS, type LivenessSettings } from '../appliance/mgmt/state/settings';
import { startTestServer, USERS } from './lib/mgmt-fixture';

const [admin, operator, viewer] = USERS;
const URL = '/api/v1/settings/liveness';

const PLC: LivenessSettings = {
  enabled: true, intervalSeconds: 60, timeoutMs: 1000, downAfter: 3, maxProbesPerSecond: 10,
  groups: { plc: { enabled: true, intervalSeconds: 10 }, hmi: { enabled: false }, 'rtu.north-1': { enabled: true, timeoutMs: 500, downAfter: 5 } },
};

t.test('defaults, roles, audit, persistence', async (t) => {
  const s = await startTestServer(t);
  const as = {
    admin: await s.login(admin.name, admin.password),
    operator: await s.login(operator.name, operator.password),
    viewer: await s.login(viewer.name, viewer.password),
  };

  const first = await s.call(as.viewer, 'GET', URL);
  t.equal(first.status, 200, 'a viewer reads the settings');
  t.same(first.json, DEFAULT_LIVENESS, 'off by default, with the documented defaults');
  t.same(first.json, { enabled: false, intervalSeconds: 60, timeoutMs: 1000, downAfter: 3, maxProbesPerSecond: 10, groups: {} });
  t.equal((await s.call(undefined, 'GET', URL)).status, 401, 'not anonymously');

  const refused = await s.call(as.viewer, 'PUT', URL, PLC);
  t.equal(refused.status, 403, 'a viewer cannot change them');
  t.same((await s.call(as.viewer, 'GET', URL)).json, DEFAULT_LIVENESS, 'nothing changed');

  const changed = await s.call(as.operator, 'PUT', URL, PLC);
  t.equal(changed.status, 200, `an operator changes them${changed.status !== 200 ? `: ${JSON.stringify(changed.json)}` : ''}`);
  t.same(changed.json, PLC, 'and gets back what is stored');
  t.same((await s.call(as.viewer, 'GET', URL)).json, PLC, 'which everyone reads');

  const audit = (await s.call(as.admin, 'GET', '/api/v1/audit?limit=1')).json.entries[0];
  t.match(audit, { user: operator.name, action: 'settings.liveness', from: '127.0.0.1' }, 'audited as a settings change (admin.change), with who and from where');
  t.equal(audit.detail, 'on every 60s timeout 1000ms down after 3, at most 10/s; groups: plc=on every 10s, hmi=off, ' +
    'rtu.north-1=on timeout 500ms down after 5', `the audit says what is probed and how: ${audit.detail}`);

  const published = s.sink.published.filter((e) => e.type === 'admin.change' && 'action' in e && e.action === `settings.liveness ${audit.detail}`);
  t.equal(published.length, 1, 'and sent as an admin.change event (SIEM)');

  const stored = JSON.parse(readFileSync(join(s.stateDir, 'settings.json'), 'utf8'));
  t.same(stored.liveness, PLC, 'written to settings.json');
  t.same(stored.syslog, { targets: [] }, 'the other settings untouched');
  t.equal(stored.sessionTimeoutMin, 30);

  const general = await s.call(as.viewer, 'GET', '/api/v1/settings');
  t.equal(general.status, 200, 'the general settings still answer');
  t.notOk('liveness' in general.json, 'and keep their own shape');

  const syslog = await s.call(as.operator, 'PUT', '/api/v1/settings/syslog', { targets: [] });
  t.equal(syslog.status, 200);
  t.same((await s.call(as.viewer, 'GET', URL)).json, PLC, 'a syslog change keeps the liveness settings');

  await s.app.close();
  const again = await startTestServer(t, { stateDir: s.stateDir });
  const login = await again.login(viewer.name, viewer.password);
  t.same((await again.call(login, 'GET', URL)).json, PLC, 'kept across a restart of the service');
});

t.test('bad input: a clear 400, nothing stored, nothing audited', async (t) => {
  const s = await startTestServer(t);
  const op = await s.login(operator.name, operator.password);
  const auditCount = async () => (await s.call(op, 'GET', '/api/v1/audit?limit=100')).json.entries.length as number;
  const before = await auditCount();
  const bad: [string, unknown, RegExp][] = [
    ['unknown field', { ...PLC, interval: 5 }, /must NOT have additional properties/],
    ['missing field', { enabled: true }, /must have required property/],
    ['interval 0', { ...PLC, intervalSeconds: 0 }, /intervalSeconds must be >= 1/],
    ['interval over a day', { ...PLC, intervalSeconds: 86_401 }, /intervalSeconds must be <= 86400/],
    ['fractional interval', { ...PLC, intervalSeconds: 1.5 }, /intervalSeconds must be integer/],
    ['timeout too short', { ...PLC, timeoutMs: 10 }, /timeoutMs must be >= 50/],
    ['no rate limit', { ...PLC, maxProbesPerSecond: 0 }, /maxProbesPerSecond must be >= 1/],
    ['a flood', { ...PLC, maxProbesPerSecond: 100_000 }, /maxProbesPerSecond must be <= 1000/],
    ['down after 0', { ...PLC, downAfter: 0 }, /downAfter must be >= 1/],
    ['bad group name', { ...PLC, groups: { '1plc': { enabled: true } } }, /property name must be valid|must match pattern/],
    ['group without enabled', { ...PLC, groups: { plc: { intervalSeconds: 5 } } }, /must have required property 'enabled'/],
    ['unknown group field', { ...PLC, groups: { plc: { enabled: true, rate: 5 } } }, /must NOT have additional properties/],
    ['timeout not shorter than the interval', { ...PLC, intervalSeconds: 1, timeoutMs: 1000, groups: {} },
      /^liveness: timeoutMs \(1000\) must be shorter than the interval \(1 s\)$/],
    ['a group\'s timeout not shorter than its interval', { ...PLC, groups: { plc: { enabled: true, intervalSeconds: 2, timeoutMs: 2500 } } },
      /^groups\.plc: timeoutMs \(2500\) must be shorter than the interval \(2 s\)$/],
    ['too many groups', { ...PLC, groups: Object.fromEntries(Array.from({ length: LIVENESS_LIMITS.groups + 1 }, (_, i) => [`g${i}`, { enabled: true }])) },
      /must NOT have more than 256 properties/],
  ];
  for (const [what, body, message] of bad) {
    const res = await s.call(op, 'PUT', URL, body);
    t.equal(res.status, 400, `${what}: 400`);
    t.match(res.json.error, message, `${what}: "${res.json.error}"`);
  }
  t.same((await s.call(op, 'GET', URL)).json, DEFAULT_LIVENESS, 'nothing was stored');
  t.equal(await auditCount(), before, 'nothing was audited');
});
