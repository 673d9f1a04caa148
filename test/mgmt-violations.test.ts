// Modbus in management: the violation tracker (grouping per conversation, the one-hour window, the
// bound on what it keeps); GET /api/v1/violations/top (viewer, its schema); the status and flows
// routes letting the inspection fields through their response schemas; and, over a real socket, a
// dataplane's ot.violation events reaching the tracker and its counters reaching /metrics.

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDataplaneHub } from '../appliance/mgmt/dataplanes/hub';
import type { FlowsResult, PairStatus } from '../appliance/mgmt/dataplanes/types';
import { MAX_VIOLATION_SUMMARIES, VIOLATION_WINDOW_MS, ViolationTracker } from '../appliance/mgmt/dataplanes/violations';
import { FakeHub, startTestServer, USERS } from './lib/mgmt-fixture';
import { HMI, ModbusDataplane, modbusFlow, modbusStats, PLC, violationEvent } from './lib/modbus-fixture';

const NOW = Date.parse('2026-12-01T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

t.test('the tracker sums summaries per conversation, function, unit and reason', async (t) => {
  const tracker = new ViolationTracker();
  const at = (ms: number) => ({ time: iso(ms), firstSeen: iso(ms - 1000), lastSeen: iso(ms) });
  tracker.record({ ...violationEvent({ ...at(NOW - 60_000), addressFirst: 40, addressLast: 41, count: 3, action: 'monitor' }), pair: 'p1' }, NOW - 60_000);
  tracker.record({ ...violationEvent({ ...at(NOW - 30_000), addressFirst: 10, addressLast: 12, count: 4 }), pair: 'p1' }, NOW - 30_000);
  tracker.record({ ...violationEvent({ ...at(NOW - 20_000), unit: 2, count: 1 }), pair: 'p1' }, NOW - 20_000);
  tracker.record({ ...violationEvent({ ...at(NOW - 10_000), reason: 'address_not_allowed', count: 2 }), pair: 'p1' }, NOW - 10_000);
  tracker.record({ ...violationEvent({ ...at(NOW - 10_000), count: 9 }), pair: 'p2' }, NOW - 10_000);
  const broken = violationEvent({ ...at(NOW - 5000), reason: 'bad_length', function: '', unit: -1, count: 1 });
  delete broken.addressFirst;
  delete broken.addressLast;
  tracker.record({ ...broken, pair: 'p1' }, NOW - 5000);

  const top = tracker.top(10, NOW);
  t.same(top.map((e) => [e.pair, e.unit, e.reason, e.count]), [
    ['p2', 1, 'function_not_allowed', 9],
    ['p1', 1, 'function_not_allowed', 7],
    ['p1', 1, 'address_not_allowed', 2],
    ['p1', -1, 'bad_length', 1],
    ['p1', 2, 'function_not_allowed', 1],
  ], 'one entry per (pair, conversation, rule, function, unit, reason), most refused first, then the latest');
  t.match(top[1], {
    src: HMI, srcGroups: ['hmi'], dst: PLC, dstGroups: ['plc'], dstPort: 502, protocol: 'modbus', rule: 'hmi-reads-plc',
    function: 'write-single-register', addressFirst: 10, addressLast: 41, firstSeen: iso(NOW - 61_000), lastSeen: iso(NOW - 30_000),
    action: 'reset',
  }, 'addresses span every summary; first and last seen too; the action is the latest summary\'s');
  t.notOk('addressFirst' in top[3] || 'addressLast' in top[3], 'no address range when no refused request named one');
  t.equal(tracker.top(2, NOW).length, 2, 'the limit holds');
});

t.test('the tracker forgets summaries older than an hour', async (t) => {
  const tracker = new ViolationTracker();
  tracker.record(violationEvent({ count: 100, rule: 'old' }), NOW - VIOLATION_WINDOW_MS - 1);
  tracker.record(violationEvent({ count: 1, rule: 'recent' }), NOW - VIOLATION_WINDOW_MS);
  t.same(tracker.top(10, NOW).map((e) => e.rule), ['recent'], 'received just over an hour ago: gone; exactly an hour: kept');
  t.same(tracker.top(10, NOW + 1), [], 'and that one goes a millisecond later');
});

t.test('the tracker keeps at most MAX_VIOLATION_SUMMARIES summaries, dropping the oldest', async (t) => {
  const tracker = new ViolationTracker();
  for (let i = 0; i < MAX_VIOLATION_SUMMARIES; i++) tracker.record(violationEvent({ count: 1, rule: 'first' }), NOW);
  for (let i = 0; i < 10; i++) tracker.record(violationEvent({ count: 1, rule: 'later' }), NOW);
  t.same(tracker.top(10, NOW).map((e) => [e.rule, e.count]), [['first', MAX_VIOLATION_SUMMARIES - 10], ['later', 10]]);
});

/** The fake hub with inspection data in status and flows. */
class ModbusHub extends FakeHub {
  override pairs(): PairStatus[] {
    const stats = modbusStats('pair0', 1234, 60_000);
    return [{ ...this.pairStatus, rules: stats.rules.map(({ bytes: _bytes, ...r }) => r), inspect: stats.inspect }];
  }
  override async flows(): Promise<FlowsResult> {
    return { flows: [{ ...modbusFlow(), pair: 'pair0' }, { ...modbusFlow(), app: undefined, dstPort: 8080, pair: 'pair0' }], matched: 2, total: 2 };
  }
}

t.test('GET /api/v1/violations/top: viewer role, limit checked, entries as the schema says', async (t) => {
  const s = await startTestServer(t, { hub: new ModbusHub() });
  const entry = { ...violationEvent(), pair: 'pair0' };
  const { type: _type, time: _time, severity: _severity, srcPort: _srcPort, proto: _proto, vlan: _vlan, monitor: _monitor, ...fields } = entry;
  s.hub.violations = [{ ...fields, secret: 'not in the schema' } as never, { ...fields, unit: -1, function: '', addressFirst: undefined, addressLast: undefined }];

  t.equal((await s.call(undefined, 'GET', '/api/v1/violations/top')).status, 401, 'anonymous: refused');
  const vera = USERS.find((u) => u.role === 'viewer')!;
  const viewer = await s.login(vera.name, vera.password);
  const res = await s.call(viewer, 'GET', '/api/v1/violations/top?limit=5');
  t.equal(res.status, 200, 'a viewer may read it');
  t.same(res.json.entries[0], fields, 'every field of an entry, and nothing else');
  t.notOk('addressFirst' in res.json.entries[1], 'an entry without addresses has none');
  t.equal((await s.call(viewer, 'GET', '/api/v1/violations/top?limit=1')).json.entries.length, 1, 'the limit is passed on');
  t.equal((await s.call(viewer, 'GET', '/api/v1/violations/top?limit=0')).status, 400, 'limit 0: 400');
  t.equal((await s.call(viewer, 'GET', '/api/v1/violations/top?limit=1001')).status, 400, 'limit above 1000: 400');
});

t.test('status and flows keep the inspection fields through their response schemas', async (t) => {
  const s = await startTestServer(t, { hub: new ModbusHub() });
  const vera = USERS.find((u) => u.role === 'viewer')!;
  const viewer = await s.login(vera.name, vera.password);
  const status = (await s.call(viewer, 'GET', '/api/v1/status')).json;
  t.same(status.pairs[0].rules, [
    { name: 'hmi-reads-plc', action: 'allow', packets: 420, flows: 3, violations: 7 },
    { name: 'default', action: 'deny', packets: 3, flows: 0, violations: 0 },
  ], 'per-rule violations next to packets and flows');
  t.same(status.pairs[0].inspect, modbusStats('pair0', 1, 1).inspect, 'inspect counters by protocol');
  const flows = (await s.call(viewer, 'GET', '/api/v1/flows')).json.flows;
  t.same(flows[0].app, modbusFlow().app, 'an inspected flow keeps its app field');
  t.notOk('app' in flows[1], 'a flow without inspection has none');
});

t.test('through the real hub: ot.violation events feed the tracker, inspect counters the status and /metrics', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gk-violations-'));
  const hub = createDataplaneHub({ socketPath: join(dir, 'mgmt.sock'), log: { info: () => undefined, warn: () => undefined, error: () => undefined } });
  t.teardown(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await hub.listen();
  const dp = await ModbusDataplane.connect(join(dir, 'mgmt.sock'), 'plant', 4321);
  t.teardown(() => dp.close());
  dp.send({ type: 'stats', stats: modbusStats('plant', 4321, 60_000) });
  dp.send({ type: 'events', dropped: 0, events: [violationEvent({ pair: 'spoofed' }), violationEvent({ count: 2, addressFirst: 7, addressLast: 7 })] });
  const deadline = Date.now() + 3000;
  while (hub.topViolations(10).length === 0 || hub.pairs()[0]?.rules.length === 0) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the dataplane\'s reports');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.match(hub.topViolations(10), [{ pair: 'plant', count: 7, addressFirst: 7, addressLast: 40, function: 'write-single-register' }],
    'both summaries in one entry, under the pair of the connection');
  t.match(hub.pairs()[0], { rules: [{ name: 'hmi-reads-plc', violations: 7 }, { name: 'default', violations: 0 }], inspect: { modbus: { active: 1 } } });
  t.same((await hub.flows({}, 10)).flows[0].app, modbusFlow().app, 'the flows answer keeps app');

  const metrics = await hub.metrics();
  for (const line of [
    'gatekeeper_rule_violations_total{pair="plant",rule="hmi-reads-plc"} 7',
    'gatekeeper_rule_violations_total{pair="plant",rule="default"} 0',
    'gatekeeper_inspect_violations_total{pair="plant",protocol="modbus",reason="function_not_allowed"} 5',
    'gatekeeper_inspect_violations_total{pair="plant",protocol="modbus",reason="address_not_allowed"} 2',
    'gatekeeper_inspect_held_total{pair="plant",protocol="modbus",reason="segment_ahead"} 2',
    'gatekeeper_inspect_flows{pair="plant",protocol="modbus"} 1',
  ]) t.ok(metrics.split('\n').includes(line), line);
  t.match(metrics, /# TYPE gatekeeper_inspect_flows gauge/, 'inspected flows now is a gauge');
  t.match(metrics, /# TYPE gatekeeper_inspect_held_total counter/, 'the others are counters');
});
