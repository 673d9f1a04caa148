// The one IPC validator (appliance/ipc/validate.ts) in both directions: every message type of each
// side passes from its sender and is unknown from the other; every required field is required; counts
// are non-negative integers on both sides (management used to take 1.5 from a dataplane where a
// dataplane took only integers from management); optional fields may be absent but not null. At
// compile time (tsc), types derived from the schemas must agree with messages.ts / stats.ts.

import t from 'tap';
import {
  dataplaneMessageSchemas, dataplaneStatsSchema, eventStatsSchema, flowFilterSchema, flowRecordSchema,
  managementMessageSchemas, portStatsSchema, ruleStatsSchema,
} from '../appliance/ipc/schemas';
import { isDataplaneEvent, messageProblem, type Sender } from '../appliance/ipc/validate';
import type { DenySummaryEvent, FlowStartEvent } from '../appliance/ipc/events';
import type {
  DataplaneMessage, ErrorMessage, EventsMessage, FlowFilter, FlowRecord, FlowsMessage, GetFlowsMessage, HelloMessage,
  ManagementMessage, ObservationsMessage, PolicyAbortMessage, PolicyCommitMessage, PolicyCommittedMessage, PolicyPreparedMessage,
  PolicyPrepareMessage, StatsMessage, WelcomeMessage,
} from '../appliance/ipc/messages';
import type { DataplaneStats, EventStats, PortStats, RuleStats } from '../appliance/ipc/stats';

// ---------------------------------------------------------------------------------------------------
// Schema and type agreement, checked by the type checker.

/** The TypeScript type a schema of schemas.ts describes (the keywords schemas.ts uses). */
type FromSchema<S> = S extends { const: infer C }
  ? C
  : S extends { enum: readonly (infer E)[] }
    ? E
    : S extends { type: 'string' }
      ? string
      : S extends { type: 'integer' }
        ? number
        : S extends { type: 'boolean' }
          ? boolean
          : S extends { type: 'array'; items: infer I }
            ? FromSchema<I>[]
            : S extends { type: 'array' }
              ? unknown[]
              : S extends { type: 'object'; properties: infer P; required: readonly (infer R)[] }
                ? { [K in keyof P & R]: FromSchema<P[K]> } & { [K in Exclude<keyof P, R>]?: FromSchema<P[K]> }
                : S extends { type: 'object'; additionalProperties: infer A }
                  ? Record<string, FromSchema<A>>
                  : never;

/** True when each type is assignable to the other: same fields, same optionality, same field types. */
type Agree<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const agreement: Record<string, true> = {
  hello: true satisfies Agree<FromSchema<typeof dataplaneMessageSchemas.hello>, HelloMessage>,
  stats: true satisfies Agree<FromSchema<typeof dataplaneMessageSchemas.stats>, StatsMessage>,
  dataplaneStats: true satisfies Agree<FromSchema<typeof dataplaneStatsSchema>, DataplaneStats>,
  portStats: true satisfies Agree<FromSchema<typeof portStatsSchema>, PortStats>,
  ruleStats: true satisfies Agree<FromSchema<typeof ruleStatsSchema>, RuleStats>,
  eventStats: true satisfies Agree<FromSchema<typeof eventStatsSchema>, EventStats>,
  events: true satisfies Agree<FromSchema<typeof dataplaneMessageSchemas.events>, Omit<EventsMessage, 'events'> & { events: unknown[] }>,
  prepared: true satisfies Agree<FromSchema<(typeof dataplaneMessageSchemas)['policy.prepared']>, PolicyPreparedMessage>,
  committed: true satisfies Agree<FromSchema<(typeof dataplaneMessageSchemas)['policy.committed']>, PolicyCommittedMessage>,
  flows: true satisfies Agree<FromSchema<typeof dataplaneMessageSchemas.flows>, FlowsMessage>,
  flowRecord: true satisfies Agree<FromSchema<typeof flowRecordSchema>, FlowRecord>,
  observations: true satisfies Agree<FromSchema<typeof dataplaneMessageSchemas.observations>, ObservationsMessage>,
  error: true satisfies Agree<FromSchema<typeof dataplaneMessageSchemas.error>, ErrorMessage>,
  welcome: true satisfies Agree<FromSchema<typeof managementMessageSchemas.welcome>, WelcomeMessage>,
  prepare: true satisfies Agree<FromSchema<(typeof managementMessageSchemas)['policy.prepare']>, PolicyPrepareMessage>,
  commit: true satisfies Agree<FromSchema<(typeof managementMessageSchemas)['policy.commit']>, PolicyCommitMessage>,
  abort: true satisfies Agree<FromSchema<(typeof managementMessageSchemas)['policy.abort']>, PolicyAbortMessage>,
  getFlows: true satisfies Agree<FromSchema<(typeof managementMessageSchemas)['flows.get']>, GetFlowsMessage>,
  flowFilter: true satisfies Agree<FromSchema<typeof flowFilterSchema>, FlowFilter>,
};
/** Every message type of each direction has a schema, and no schema names a type that does not exist. */
const typesCovered: [true, true] = [
  true satisfies Agree<keyof typeof dataplaneMessageSchemas, DataplaneMessage['type']>,
  true satisfies Agree<keyof typeof managementMessageSchemas, ManagementMessage['type']>,
];

t.ok(Object.values(agreement).every(Boolean) && typesCovered.every(Boolean), 'schemas and types agree (checked by tsc)');

// ---------------------------------------------------------------------------------------------------
// Samples: one well-formed message of every type, as the TypeScript types spell them.

const port = (name: string): PortStats => ({
  name, link: 'up', rx_packets: 10, rx_bytes: 1000, tx_packets: 10, tx_bytes: 1000, forwarded: 10, rejects_sent: 0,
  rejects_suppressed: 0, send_errors: 0, monitor_would_drop: 0, kernel_dropped: 0, rx_segments: 10, fast_path_frames: 0, dropped: { policy: 2 }, decode_errors: {},
});
const stats: DataplaneStats = {
  pair: 'p1', pid: 1234, uptimeMs: 5000, generation: 2, policyHash: 'abc', mode: 'enforce',
  ports: { inside: port('in0'), outside: port('out0') },
  flows: { active: 3, capacity: 1000, created: 9, evicted: 0, expired: 6, closed: 0, cut: 0, chained: 0, earlyDropped: 0, embryonic: 0 },
  fragments: { tracked: 0 },
  rules: [{ name: 'web', action: 'allow', packets: 5, bytes: 500, flows: 1, violations: 2 }, { name: 'default', action: 'deny', packets: 2, bytes: 120, flows: 0, violations: 0 }],
  inspect: { modbus: { flows: 1, active: 1, violations: { function_not_allowed: 2 }, held: { segment_ahead: 0 } } },
  events: { connected: true, queued: 0, sent: 4, dropped: 0, denyOverflow: 0 },
};
const flow: FlowRecord = {
  proto: 'tcp', src: '198.18.1.10', srcPort: 40000, dst: '198.18.1.100', dstPort: 502, vlan: 0, rule: 'web', verdict: 'allow',
  state: 'established', initiatorSide: 'inside', packetsOut: 3, packetsIn: 2, bytesOut: 300, bytesIn: 200, firstSeen: 1700000000000, lastSeen: 1700000001000,
};

const fromDataplane: DataplaneMessage[] = [
  { type: 'hello', version: 1, pair: 'p1', pid: 1234, inside: 'in0', outside: 'out0', generation: 1, policyHash: 'abc', startedAt: 1700000000000 },
  { type: 'stats', stats },
  { type: 'events', events: [], dropped: 0 },
  { type: 'policy.prepared', requestId: 1, ok: false, errors: ['policy v2:3:5: unknown group'] },
  { type: 'policy.committed', requestId: 1, generation: 2, policyHash: 'def' },
  { type: 'flows', requestId: 2, flows: [flow], matched: 1, total: 5 },
  {
    type: 'observations',
    sightings: [{ mac: '02:00:00:00:00:01', address: '198.18.1.10', vlan: 0, side: 'outside', frames: 2, firstSeen: 1700000000000, lastSeen: 1700000001000 }],
    conversations: [{
      proto: 'tcp', client: '198.18.1.10', clientMac: '02:00:00:00:00:01', server: '198.18.1.100', serverMac: '02:00:00:00:00:64', port: 502, vlan: 0,
      clientSide: 'outside', rule: 'hmi-reads', verdict: 'allow', flows: 1, packets: 10, bytes: 800,
      app: { protocol: 'modbus', functions: { 'read-holding-registers': 4 } }, firstSeen: 1700000000000, lastSeen: 1700000001000,
    }],
    identities: [{ mac: '02:00:00:00:00:64', address: '', vlan: 0, side: 'inside', source: 'lldp', fields: { systemName: 'plc-1' }, time: 1700000000000 }],
    dropped: 0,
  },
  { type: 'error', requestId: 3, message: 'bad filter' },
];
const fromManagement: ManagementMessage[] = [
  { type: 'welcome', version: 1 },
  { type: 'policy.prepare', requestId: 1, text: 'version: 1\n', source: 'policy v2' },
  { type: 'policy.commit', requestId: 1 },
  { type: 'policy.abort', requestId: 1 },
  { type: 'flows.get', requestId: 2, filter: { address: '198.18.1.10', port: 502, rule: 'web', verdict: 'allow' }, limit: 10 },
  { type: 'error', message: 'refused' },
];

const other = (from: Sender): Sender => (from === 'dataplane' ? 'management' : 'dataplane');
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The path of every field in `v`, depth first, through objects and arrays (keys as strings). */
function fields(v: unknown, path: string[] = []): string[][] {
  if (typeof v !== 'object' || v === null) return [];
  return Object.entries(v).flatMap(([k, child]) => [[...path, k], ...fields(child, [...path, k])]);
}
const parentOf = (root: unknown, path: string[]) => path.slice(0, -1).reduce((o, k) => (o as Record<string, unknown>)[k], root) as Record<string, unknown>;

/** The optional fields, by message type: the `?` fields of the types. */
const OPTIONAL: Record<string, string[]> = {
  error: ['requestId'],
  observations: ['conversations.0.app'],
  stats: ['stats.events'],
  'flows.get': ['filter.address', 'filter.port', 'filter.rule', 'filter.verdict'],
};
/** Maps of counts by name (drops by reason): any name may be absent. */
const isCountMapEntry = (path: string[]) =>
  (path.length >= 2 && ['dropped', 'decode_errors', 'violations', 'held', 'inspect', 'functions', 'fields'].includes(path[path.length - 2]));

for (const [from, samples] of [['dataplane', fromDataplane], ['management', fromManagement]] as const) {
  t.test(`from ${from}: every type passes, and is unknown from the other side`, async (t) => {
    for (const m of samples) {
      t.equal(messageProblem(copy(m), from), null, `${m.type} from ${from}`);
      if (m.type !== 'error') t.equal(messageProblem(copy(m), other(from)), `unknown message type "${m.type}"`, `${m.type} from ${other(from)}`);
    }
    t.equal(messageProblem({ type: 'teleport' }, from), 'unknown message type "teleport"');
    t.equal(messageProblem({ type: 'toString' }, from), 'unknown message type "toString"', 'no inherited names');
    t.equal(messageProblem([1, 2], from), 'unknown message type undefined');
  });

  t.test(`from ${from}: every field but the optional ones is required, and none may be null`, async (t) => {
    for (const m of samples) {
      for (const path of fields(m)) {
        const name = path.join('.');
        const parent = parentOf(m, path);
        if (name === 'type') continue;
        if (!Array.isArray(parent)) {
          const without = copy(m);
          delete parentOf(without, path)[path[path.length - 1]];
          const absentOk = (OPTIONAL[m.type] ?? []).includes(name) || isCountMapEntry(path);
          t.equal(messageProblem(without, from), absentOk ? null : `malformed ${m.type} message`, `${m.type} without ${name}`);
        }
        const nulled = copy(m);
        parentOf(nulled, path)[path[path.length - 1]] = null;
        t.equal(messageProblem(nulled, from), `malformed ${m.type} message`, `${m.type} with ${name}: null`);
      }
    }
  });

  t.test(`from ${from}: counts are non-negative integers`, async (t) => {
    const m = copy(samples.find((s) => s.type === (from === 'dataplane' ? 'policy.committed' : 'policy.commit'))!) as unknown as Record<string, unknown>;
    for (const bad of [1.5, -1, '1', true, JSON.parse('1e999') as number]) {
      t.equal(messageProblem({ ...m, requestId: bad }, from), `malformed ${String(m.type)} message`, `requestId ${JSON.stringify(bad) ?? String(bad)}`);
    }
    t.equal(messageProblem({ ...m, requestId: 0 }, from), null, '0 is a count');
    t.equal(messageProblem({ ...m, requestId: 2 ** 40 }, from), null, 'big counts are counts');
  });
}

t.test('the disagreement that was fixed: management takes no fractional counts from a dataplane', async (t) => {
  const fractional: [string, DataplaneMessage][] = [
    ['uptimeMs 1.5', { type: 'stats', stats: { ...stats, uptimeMs: 1.5 } }],
    ['rx_packets 0.5', { type: 'stats', stats: { ...stats, ports: { ...stats.ports, inside: { ...port('in0'), rx_packets: 0.5 } } } }],
    ['a drop count 2.5', { type: 'stats', stats: { ...stats, ports: { ...stats.ports, outside: { ...port('out0'), dropped: { policy: 2.5 } } } } }],
    ['pid 1.5', { ...fromDataplane[0], pid: 1.5 } as HelloMessage],
    ['dropped 0.5', { type: 'events', events: [], dropped: 0.5 }],
    ['bytesIn 1.5', { type: 'flows', requestId: 2, flows: [{ ...flow, bytesIn: 1.5 }], matched: 1, total: 1 }],
  ];
  for (const [what, m] of fractional) t.equal(messageProblem(copy(m), 'dataplane'), `malformed ${m.type} message`, what);
});

t.test('shapes the TypeScript types name: enums, the flow filter port, a non-empty pair', async (t) => {
  t.equal(messageProblem({ ...fromDataplane[0], pair: '' }, 'dataplane'), 'malformed hello message');
  t.equal(messageProblem({ type: 'stats', stats: { ...stats, mode: 'learning' } }, 'dataplane'), 'malformed stats message');
  t.equal(messageProblem({ type: 'stats', stats: { ...stats, rules: [{ ...stats.rules[0], action: 'drop' }] } }, 'dataplane'), 'malformed stats message');
  t.equal(messageProblem({ type: 'flows', requestId: 1, flows: [{ ...flow, verdict: 'deny' }], matched: 1, total: 1 }, 'dataplane'), 'malformed flows message');
  t.equal(messageProblem({ type: 'stats', stats: { ...stats, extra: 1 } }, 'dataplane'), null, 'an unknown extra field is allowed');
  const get = (filter: object) => ({ type: 'flows.get', requestId: 1, filter, limit: 5 });
  t.equal(messageProblem(get({}), 'management'), null, 'empty filter');
  t.equal(messageProblem(get({ port: 65535 }), 'management'), null);
  t.equal(messageProblem(get({ port: 70000 }), 'management'), 'malformed flows.get message');
  t.equal(messageProblem(get({ verdict: 'deny' }), 'management'), 'malformed flows.get message');
  t.equal(messageProblem({ type: 'policy.prepare', requestId: 'x' }, 'management'), 'malformed policy.prepare message');
});

t.test('events: a known dataplane type and severity, a readable time, at most 8 KiB, the fields management reads', async (t) => {
  const time = new Date().toISOString();
  const deny: DenySummaryEvent = {
    type: 'deny.summary', time, severity: 'warning', src: '198.18.1.10', srcPort: 40000, srcGroups: ['client'], dst: '198.18.1.100',
    dstPort: 22, dstGroups: [], proto: 'tcp', vlan: 0, rule: 'default', action: 'deny', monitor: false, count: 3, bytes: 180, firstSeen: time, lastSeen: time,
  };
  const start: FlowStartEvent = {
    type: 'flow.start', time, severity: 'info', src: '198.18.1.10', srcPort: 40001, srcGroups: ['client'], dst: '198.18.1.100', dstPort: 502,
    dstGroups: ['plc'], proto: 'tcp', vlan: 0, rule: 'web', action: 'allow', monitor: false,
  };
  const linkUp = { type: 'link.up', time, severity: 'notice', port: 'eth0', side: 'inside' };
  t.ok(isDataplaneEvent(deny) && isDataplaneEvent(start) && isDataplaneEvent(linkUp), 'well-formed events pass');
  const bad: [string, unknown][] = [
    ['unknown severity', { ...linkUp, severity: 'whatever' }],
    ['unreadable time', { ...linkUp, time: 'yesterday' }],
    ['no time', { ...linkUp, time: undefined }],
    ['over 8 KiB', { ...linkUp, padding: 'x'.repeat(8192) }],
    ['a management event', { type: 'auth.login', time, severity: 'notice', user: 'admin', from: '198.18.0.1' }],
    ['events.dropped', { type: 'events.dropped', time, severity: 'warning', count: 3 }],
    ['deny without count', { ...deny, count: undefined }],
    ['deny with a fractional count', { ...deny, count: 1.5 }],
    ['deny with action allow', { ...deny, action: 'allow' }],
    ['flow.start with action deny', { ...start, action: 'deny' }],
    ['flow.start without srcGroups', { ...start, srcGroups: undefined }],
    ['flow.start with a port string', { ...start, dstPort: '502' }],
    ['not an object', 'link.up'],
    ['null', null],
  ];
  for (const [what, e] of bad) t.notOk(isDataplaneEvent(copy(e)), what);
});
