// The JSON Schemas of everything that crosses the management socket, in both directions: what a
// dataplane sends (hello, stats with the DataplaneStats snapshot, event batches, replies) and what
// management sends (welcome, requests), plus the dataplane events management accepts. Data only:
// validate.ts compiles them. messages.ts, stats.ts and events.ts keep the TypeScript types;
// test/ipc-validate.test.ts derives types from these schemas and checks that both describe the same
// shapes. Extra fields are allowed everywhere, as before: an older peer ignores what it does not know.

import { severityNames, type EventType } from './events';
import { portCounterNames } from './stats';

/** Counters, ids, ports, epoch and duration ms: non-negative integers (never 1.5, never 1e999). */
const count = { type: 'integer', minimum: 0 } as const;
const string = { type: 'string' } as const;
const boolean = { type: 'boolean' } as const;
const strings = { type: 'array', items: string } as const;
/** Counts by name, e.g. drops by reason: only the names seen so far are present. */
const countsByName = { type: 'object', additionalProperties: count } as const;

/** An object schema with every property required except those named in `optional`. */
function object<const P extends Record<string, object>, const O extends keyof P & string = never>(properties: P, optional: readonly O[] = []) {
  const required = Object.keys(properties).filter((k) => !(optional as readonly string[]).includes(k)) as Exclude<keyof P & string, O>[];
  return { type: 'object', properties, required } as const;
}

const counts = <const N extends string>(names: readonly N[]) =>
  Object.fromEntries(names.map((n) => [n, count])) as { [K in N]: typeof count };

const enumOf = <const V extends readonly string[]>(values: V) => ({ enum: values }) as const;
const constant = <const V extends string>(value: V) => ({ const: value }) as const;

/** What an application-layer inspector or observer saw on a flow (messages.ts FlowApp). */
const appSchema = object({
  protocol: string, functions: countsByName, units: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 255 } },
}, ['units']);

// ---------------------------------------------------------------------------------------------------
// The stats snapshot (stats.ts)

export const portStatsSchema = object({
  name: string,
  link: string,
  ...counts(portCounterNames),
  dropped: countsByName,
  decode_errors: countsByName,
});

export const ruleStatsSchema = object({
  name: string,
  action: enumOf(['allow', 'deny', 'reject']),
  packets: count,
  bytes: count,
  flows: count,
  violations: count,
});

export const inspectStatsSchema = object({
  flows: count,
  active: count,
  violations: countsByName,
  held: countsByName,
});

export const eventStatsSchema = object({
  connected: boolean,
  queued: count,
  sent: count,
  dropped: count,
  denyOverflow: count,
});

export const dataplaneStatsSchema = object(
  {
    pair: string,
    pid: count,
    uptimeMs: count,
    generation: count,
    policyHash: string,
    mode: enumOf(['enforce', 'monitor']),
    ports: object({ inside: portStatsSchema, outside: portStatsSchema }),
    flows: object(counts(['created', 'evicted', 'expired', 'closed', 'cut', 'chained', 'earlyDropped', 'embryonic', 'active', 'capacity'])),
    fragments: object({ tracked: count }),
    rules: { type: 'array', items: ruleStatsSchema },
    inspect: { type: 'object', additionalProperties: inspectStatsSchema },
    events: eventStatsSchema,
    busyPoll: object(counts(['backoffs', 'stalls'])),
    fastPath: object({
      state: enumOf(['on', 'off', 'unavailable']),
      reason: string,
      ...counts(['flows', 'capacity', 'offloads', 'notOffloadable', 'tableFull', 'withdrawn']),
    }, ['reason']),
  },
  ['events', 'busyPoll', 'fastPath'],
);

// ---------------------------------------------------------------------------------------------------
// dataplane → management (messages.ts DataplaneMessage)

export const flowRecordSchema = object({
  proto: string,
  src: string,
  srcPort: count,
  dst: string,
  dstPort: count,
  vlan: count,
  rule: string,
  verdict: enumOf(['allow', 'monitor']),
  state: enumOf(['opening', 'established', 'closing', 'none']),
  initiatorSide: enumOf(['inside', 'outside']),
  packetsOut: count,
  packetsIn: count,
  bytesOut: count,
  bytesIn: count,
  firstSeen: count,
  lastSeen: count,
  app: appSchema,
}, ['app']);

const sideSchema = enumOf(['inside', 'outside']);

export const sightingSchema = object({ mac: string, address: string, vlan: count, side: sideSchema, frames: count, firstSeen: count, lastSeen: count });

export const conversationDeltaSchema = object({
  proto: string, client: string, clientMac: string, server: string, serverMac: string, port: count, vlan: count,
  clientSide: sideSchema, rule: string, verdict: enumOf(['allow', 'monitor']), flows: count, packets: count, bytes: count,
  app: appSchema, firstSeen: count, lastSeen: count,
}, ['app']);

export const identityObservationSchema = object({
  mac: string, address: string, vlan: count, side: sideSchema, source: enumOf(['lldp', 'dhcp', 'modbus']),
  fields: { type: 'object', additionalProperties: string }, time: count,
});

const errorSchema = object({ type: constant('error'), requestId: count, message: string }, ['requestId']);

export const dataplaneMessageSchemas = {
  hello: object({
    type: constant('hello'),
    version: count,
    pair: { type: 'string', minLength: 1 },
    pid: count,
    inside: string,
    outside: string,
    generation: count,
    policyHash: string,
    startedAt: count,
    failMode: { type: 'string', enum: ['open', 'closed'] },
  }, ['failMode']),
  stats: object({ type: constant('stats'), stats: dataplaneStatsSchema }),
  // The events themselves are checked one by one (isDataplaneEvent): a bad one is skipped, not fatal.
  events: object({ type: constant('events'), events: { type: 'array' }, dropped: count }),
  'policy.prepared': object({ type: constant('policy.prepared'), requestId: count, ok: boolean, errors: strings }),
  'policy.committed': object({ type: constant('policy.committed'), requestId: count, generation: count, policyHash: string }),
  flows: object({ type: constant('flows'), requestId: count, flows: { type: 'array', items: flowRecordSchema }, matched: count, total: count }),
  observations: object({
    type: constant('observations'),
    sightings: { type: 'array', items: sightingSchema },
    conversations: { type: 'array', items: conversationDeltaSchema },
    identities: { type: 'array', items: identityObservationSchema },
    dropped: count,
  }),
  error: errorSchema,
} as const;

// ---------------------------------------------------------------------------------------------------
// management → dataplane (messages.ts ManagementMessage)

export const flowFilterSchema = object(
  {
    address: string,
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    rule: string,
    verdict: enumOf(['allow', 'monitor']),
  },
  ['address', 'port', 'rule', 'verdict'],
);

export const managementMessageSchemas = {
  welcome: object({ type: constant('welcome'), version: count }),
  'policy.prepare': object({ type: constant('policy.prepare'), requestId: count, text: string, source: string }),
  'policy.commit': object({ type: constant('policy.commit'), requestId: count }),
  'policy.abort': object({ type: constant('policy.abort'), requestId: count }),
  'flows.get': object({ type: constant('flows.get'), requestId: count, filter: flowFilterSchema, limit: count }),
  error: errorSchema,
} as const;

// ---------------------------------------------------------------------------------------------------
// Events inside an `events` batch (events.ts)

/**
 * What a dataplane may report. Management's own events (policy, audit, connection state, and
 * events.dropped, which the hub derives from a batch's `dropped` count) never come from a dataplane:
 * one that sends them is not believed.
 */
export const dataplaneEventTypes: readonly EventType[] = [
  'flow.start', 'flow.end', 'deny.summary', 'ot.violation', 'spoof.summary', 'link.up', 'link.down', 'dataplane.start', 'dataplane.stop', 'bypass.off',
  'counters.snapshot',
];

/**
 * Largest event kept, as JSON. Events are stored, listed and exported whole; real ones are a few
 * hundred bytes, so a bigger one is a misbehaving dataplane.
 */
export const MAX_EVENT_BYTES = 8192;

/** The endpoint fields of the events management reads them from (the deny summary and the dry-run). */
const endpointFields = { src: string, dst: string, proto: string, rule: string, srcGroups: strings, dstGroups: strings, srcPort: count, dstPort: count, vlan: count };

/**
 * A dataplane event: a known type and severity (an unknown severity would pass every minSeverity
 * filter) and a string time (validate.ts also parses it); deny.summary and flow.start with the
 * fields management reads.
 */
export const dataplaneEventSchema = {
  type: 'object',
  properties: { type: { enum: dataplaneEventTypes }, time: string, severity: { enum: severityNames } },
  required: ['type', 'time', 'severity'],
  allOf: [
    {
      if: { type: 'object', properties: { type: constant('deny.summary') } },
      then: object({ ...endpointFields, action: enumOf(['deny', 'reject']), count }),
    },
    {
      if: { type: 'object', properties: { type: constant('flow.start') } },
      then: object({ ...endpointFields, action: constant('allow') }),
    },
    {
      if: { type: 'object', properties: { type: constant('ot.violation') } },
      then: object({
        ...endpointFields, protocol: string, reason: string, function: string, unit: { type: 'integer', minimum: -1, maximum: 255 },
        addressFirst: count, addressLast: count, action: enumOf(['reset', 'exception', 'drop', 'monitor']), monitor: boolean, count,
      }, ['addressFirst', 'addressLast']),
    },
    {
      if: { type: 'object', properties: { type: constant('spoof.summary') } },
      then: object({
        address: string, groups: strings, mac: string, boundMac: string, kind: enumOf(['arp', 'ip']), side: enumOf(['inside', 'outside']),
        monitor: boolean, count, bytes: count, firstSeen: string, lastSeen: string,
      }),
    },
    {
      if: { type: 'object', properties: { type: constant('flow.end') } },
      then: { type: 'object', properties: { functions: countsByName } },
    },
  ],
} as const;
