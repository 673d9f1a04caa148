// JSON schemas of the management API: every route validates its input and serializes its output
// through these (fastify + ajv), and @fastify/swagger turns them into /api/v1/openapi.json.
// Bodies reject unknown properties (additionalProperties: false) so a typo is a 400, not ignored.
// Each schema also carries, for TypeScript only, the type of what it accepts (Infer<typeof x>):
// the routes' request types come from here, so a schema and its type cannot drift apart.
// Declarations only: no logic, no imports from routes or services.

import { eventTypes, severityNames } from '../ipc/events';
import { PASSWORD_MIN_LENGTH } from './auth/passwords';
import { roles } from './auth/roles';
import { NAME_PATTERN } from '../policy/schema';
import { LIVENESS_LIMITS, SYSLOG_TRANSPORTS } from './state/settings';

declare const accepts: unique symbol;
/** A JSON schema; `T` is the type of the values it accepts (a phantom: nothing at run time). */
export type Schema<T = unknown> = Record<string, unknown> & { readonly [accepts]?: { value: T } };
/** The type of the values a schema accepts. */
export type Infer<S> = S extends { readonly [accepts]?: { value: infer T } } ? T : never;

export const typed = <T>(schema: Record<string, unknown>): Schema<T> => schema;
export const str = typed<string>({ type: 'string' });
export const int = typed<number>({ type: 'integer' });
export const num = typed<number>({ type: 'number' });
export const bool = typed<boolean>({ type: 'boolean' });
export const nullable = <T>(s: Schema<T>): Schema<T | null> => ({ ...s, nullable: true });
export const oneOf = <T extends string>(values: readonly T[]): Schema<T> => ({ type: 'string', enum: [...values] });
const anyObject = typed<Record<string, unknown>>({ type: 'object', additionalProperties: true });

type Flat<T> = { [K in keyof T]: T[K] };
type Properties = Record<string, Schema>;
type ObjectOf<P extends Properties, O extends keyof P> = Flat<{ [K in Exclude<keyof P, O>]: Infer<P[K]> } & { [K in O]?: Infer<P[K]> }>;

/** An object whose listed properties are all required (but `optional`), nothing else allowed. */
export function obj<P extends Properties, O extends keyof P & string = never>(properties: P, optional: readonly O[] = []): Schema<ObjectOf<P, O>> {
  return {
    type: 'object',
    properties,
    required: Object.keys(properties).filter((k) => !(optional as readonly string[]).includes(k)),
    additionalProperties: false,
  };
}

export const arr = <T>(items: Schema<T>, extra: Record<string, unknown> = {}): Schema<T[]> => ({ type: 'array', items, ...extra });

export const USER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$';
const userName = typed<string>({ type: 'string', pattern: USER_NAME_PATTERN });
const role = oneOf(roles);
const newPassword = typed<string>({ type: 'string', minLength: PASSWORD_MIN_LENGTH, maxLength: 1024 });
/** 1 MiB is far above any real policy and bounds what validation and diff have to chew. */
const policyText = typed<string>({ type: 'string', minLength: 1, maxLength: 1024 * 1024 });
const comment = typed<string>({ type: 'string', maxLength: 1000 });
const severity = oneOf(severityNames);
const mode = oneOf(['enforce', 'monitor']);

export const errorSchema = obj(
  { error: str, details: arr(anyObject), retryAfterS: int },
  ['details', 'retryAfterS'],
);

/** Response schemas: the success codes given, and the error shape for every 4xx/5xx. */
export function responses(ok: Record<number, Schema>): Record<string, Schema> {
  return { ...ok, '4xx': errorSchema, '5xx': errorSchema };
}

export const noContent = typed<null>({ type: 'null', description: 'no content' });

// --- meta ---

/** The vocabulary the UI offers in its forms, from the server's own definitions. */
export const metaResponse = obj({
  roles: arr(obj({ name: role, description: str })),
  eventTypes: arr(oneOf(eventTypes)),
  severities: arr(severity),
  passwordMinLength: int,
});
export type MetaResponse = Infer<typeof metaResponse>;

// --- auth ---

export const userRef = obj({ name: str, role });
export const loginBody = obj({ username: typed<string>({ type: 'string', minLength: 1, maxLength: 64 }), password: typed<string>({ type: 'string', maxLength: 1024 }) });
export type LoginBody = Infer<typeof loginBody>;
export const sessionResponse = obj({ user: userRef, csrfToken: str });
export const setupNeededResponse = obj({ needed: bool });
export const setupBody = obj({ token: typed<string>({ type: 'string', minLength: 1, maxLength: 200 }), username: userName, password: newPassword });
export type SetupBody = Infer<typeof setupBody>;
export const passwordBody = obj({ current: typed<string>({ type: 'string', maxLength: 1024 }), password: newPassword });
export type PasswordBody = Infer<typeof passwordBody>;

// --- status and traffic ---

const portStatus = obj({
  name: str, link: str, rxPackets: num, rxBytes: num, txPackets: num, txBytes: num, dropped: num,
  droppedByReason: typed<Record<string, number>>({ type: 'object', additionalProperties: num }), kernelDropped: num,
  rxPps: num, rxBps: num,
});
const countsByName = typed<Record<string, number>>({ type: 'object', additionalProperties: num });
const ruleCounters = obj({ name: str, action: oneOf(['allow', 'deny', 'reject']), packets: num, flows: num, violations: num });
/** Per protocol ("modbus"): flows inspected since start and now, refused messages and held segments by reason. */
const inspectCounters = typed<Record<string, { flows: number; active: number; violations: Record<string, number>; held: Record<string, number> }>>({
  type: 'object', additionalProperties: obj({ flows: num, active: num, violations: countsByName, held: countsByName }),
});
const pairStatus = obj({
  pair: str, connected: bool, bypass: bool, pid: int, generation: int, policyHash: str, policyVersion: nullable(int),
  mode, uptimeMs: num, lastSeen: num,
  ports: obj({ inside: portStatus, outside: portStatus }),
  flows: obj({ active: num, capacity: num, created: num, evicted: num }),
  rates: obj({ allowedPps: num, deniedPps: num, rxPps: num, rxBps: num }),
  rules: arr(ruleCounters),
  inspect: inspectCounters,
});
const policySummary = obj({
  version: int, hash: str, mode, appliedAt: str, author: str, comment: str,
});
export const statusResponse = obj({ version: str, uptimeMs: num, policy: nullable(policySummary), pairs: arr(pairStatus) });

export const historyQuery = obj({ pair: typed<string>({ type: 'string', minLength: 1 }), seconds: typed<number>({ type: 'integer', minimum: 1, maximum: 900, default: 300 }) }, ['seconds']);
/** After validation: defaults are filled in. */
export type HistoryQuery = Required<Infer<typeof historyQuery>>;
export const historyResponse = obj({
  pair: str,
  points: arr(obj({ t: num, rxPps: num, rxBps: num, allowedPps: num, deniedPps: num })),
});

export const deniedTopQuery = obj({ limit: typed<number>({ type: 'integer', minimum: 1, maximum: 1000, default: 10 }) }, ['limit']);
export type DeniedTopQuery = Required<Infer<typeof deniedTopQuery>>;
export const deniedTopResponse = obj({
  entries: arr(obj({
    pair: str, src: str, srcGroups: arr(str), dst: str, dstGroups: arr(str), proto: str, dstPort: int,
    rule: str, action: oneOf(['deny', 'reject']), count: num, lastSeen: str,
  })),
});

export const violationsTopQuery = obj({ limit: typed<number>({ type: 'integer', minimum: 1, maximum: 1000, default: 10 }) }, ['limit']);
export type ViolationsTopQuery = Required<Infer<typeof violationsTopQuery>>;
export const violationsTopResponse = obj({
  entries: arr(obj({
    pair: str, src: str, srcGroups: arr(str), dst: str, dstGroups: arr(str), dstPort: int, protocol: str, rule: str,
    function: str, unit: int, reason: str, action: oneOf(['reset', 'exception', 'drop', 'monitor']), count: num,
    addressFirst: int, addressLast: int, firstSeen: str, lastSeen: str,
  }, ['addressFirst', 'addressLast'])),
});

const verdict = oneOf(['allow', 'monitor']);
export const flowsQuery = obj({
  pair: typed<string>({ type: 'string', minLength: 1 }),
  address: typed<string>({ type: 'string', minLength: 1, maxLength: 64 }),
  port: typed<number>({ type: 'integer', minimum: 0, maximum: 65535 }),
  rule: typed<string>({ type: 'string', minLength: 1 }),
  verdict,
  limit: typed<number>({ type: 'integer', minimum: 1, maximum: 10000, default: 200 }),
}, ['pair', 'address', 'port', 'rule', 'verdict', 'limit']);
export type FlowsQuery = Infer<typeof flowsQuery> & { limit: number };
const flowRecord = obj({
  pair: str, proto: str, src: str, srcPort: int, dst: str, dstPort: int, vlan: int, rule: str, verdict,
  state: oneOf(['opening', 'established', 'closing', 'none']),
  initiatorSide: oneOf(['inside', 'outside']),
  packetsOut: num, packetsIn: num, bytesOut: num, bytesIn: num, firstSeen: num, lastSeen: num,
  /** Inspected flows: the protocol and the requests seen per function name. */
  app: obj({ protocol: str, functions: countsByName }),
}, ['app']);
export const flowsResponse = obj({ flows: arr(flowRecord), matched: int, total: int });

// --- policy ---

const diagnostic = obj({ line: int, col: int, message: str });
export const policyResponse = obj({
  version: int, text: str, hash: str, mode, author: str, comment: str, appliedAt: str,
});
export const policyTextBody = obj({ text: policyText });
export type PolicyTextBody = Infer<typeof policyTextBody>;
export const validateResponse = obj({
  ok: bool, errors: arr(diagnostic), warnings: arr(diagnostic),
  stats: obj({
    rules: int, groups: int, services: int, srcIntervals: int, dstIntervals: int, bitsets: int, tableBytes: int, compileMs: num, bindings: int,
  }),
}, ['stats']);
export const diffResponse = obj({ diff: str, added: int, removed: int });
const verdictRef = obj({ rule: str, action: str, inspection: str }, ['inspection']);
export const dryRunResponse = obj({
  ok: bool, errors: arr(diagnostic), observed: int,
  changes: arr(obj({ pair: str, proto: str, src: str, srcPort: int, dst: str, dstPort: int, before: verdictRef, after: verdictRef })),
}, ['errors']);
export const applyBody = obj({ text: policyText, comment }, ['comment']);
export type ApplyBody = Infer<typeof applyBody>;
export const applyResponse = obj({ version: int, pairs: arr(obj({ pair: str, generation: int })) });
export const historyListResponse = obj({
  versions: arr(obj({ version: int, author: str, comment: str, appliedAt: str, hash: str, mode, active: bool })),
});
export const versionParams = obj({ version: typed<number>({ type: 'integer', minimum: 1 }) });
export type VersionParams = Infer<typeof versionParams>;
export const versionResponse = obj({
  version: int, text: str, hash: str, mode, author: str, comment: str, appliedAt: str, active: bool,
});
export const rollbackBody = obj({ version: typed<number>({ type: 'integer', minimum: 1 }), comment }, ['comment']);
export type RollbackBody = Infer<typeof rollbackBody>;

// --- events and audit ---

export const eventsQuery = obj({
  type: typed<string>({ type: 'string', minLength: 1, maxLength: 1000, description: 'event types, comma separated' }),
  minSeverity: severity,
  pair: typed<string>({ type: 'string', minLength: 1 }),
  limit: typed<number>({ type: 'integer', minimum: 1, maximum: 10000, default: 100 }),
  before: typed<string>({ type: 'string', format: 'date-time' }),
}, ['type', 'minSeverity', 'pair', 'limit', 'before']);
export type EventsQuery = Infer<typeof eventsQuery> & { limit: number };
/** GatekeeperEvent (appliance/events.ts): a union of many shapes, documented in docs/siem.md. */
export const eventsResponse = obj({ events: arr(anyObject) });
export const auditQuery = obj({ limit: typed<number>({ type: 'integer', minimum: 1, maximum: 10000, default: 100 }) }, ['limit']);
export type AuditQuery = Required<Infer<typeof auditQuery>>;
export const auditResponse = obj({
  entries: arr(obj({ time: str, user: str, from: str, action: str, detail: str, diff: str }, ['diff'])),
});

// --- users ---

export const usersResponse = obj({ users: arr(obj({ name: str, role, createdAt: str, lastLoginAt: nullable(str) })) });
export const userBody = obj({ name: userName, role, password: newPassword });
export type UserBody = Infer<typeof userBody>;
export const userNameParams = obj({ name: userName });
export type UserNameParams = Infer<typeof userNameParams>;
const userPatch = obj({ role, password: newPassword }, ['role', 'password']);
export const userPatchBody: typeof userPatch = { ...userPatch, minProperties: 1 };
export type UserPatchBody = Infer<typeof userPatchBody>;
export const userResponse = obj({ user: obj({ name: str, role, createdAt: str, lastLoginAt: nullable(str) }) });

// --- settings ---

const pem = typed<string>({ type: 'string', minLength: 1, maxLength: 65536 });
const host = typed<string>({ type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_-]+$' });
const targetCommon = {
  name: typed<string>({ type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }),
  enabled: bool,
  host,
  port: typed<number>({ type: 'integer', minimum: 1, maximum: 65535 }),
  transport: oneOf(SYSLOG_TRANSPORTS),
  format: oneOf(['rfc5424', 'rfc3164', 'cef']),
  minSeverity: severity,
  types: arr(oneOf(eventTypes), { uniqueItems: true }),
};
/**
 * A syslog target as sent by the client. The TLS client key and certificate are never sent back;
 * to keep the stored ones, send `hasKey: true` / `hasCert: true` instead of the PEM.
 */
export const syslogTargetIn = obj({
  ...targetCommon,
  tls: obj({ ca: pem, cert: pem, key: pem, serverName: host, hasKey: bool, hasCert: bool },
    ['ca', 'cert', 'key', 'serverName', 'hasKey', 'hasCert']),
}, ['tls']);
export const syslogTargetOut = obj({
  ...targetCommon,
  tls: obj({ ca: str, serverName: str, hasKey: bool, hasCert: bool }, ['ca', 'serverName']),
}, ['tls']);
export const settingsResponse = obj({
  syslog: obj({ targets: arr(syslogTargetOut) }), metricsToken: bool, sessionTimeoutMin: int,
});
export const syslogBody = obj({ targets: arr(syslogTargetIn, { maxItems: 32 }) });
export type SyslogBody = Infer<typeof syslogBody>;
export const syslogResponse = obj({ targets: arr(syslogTargetOut) });
export const syslogTestBody = obj({ target: typed<string>({ type: 'string', minLength: 1 }) });
export type SyslogTestBody = Infer<typeof syslogTestBody>;
export const syslogTestResponse = obj({ ok: bool, error: str }, ['error']);
export const syslogStatusResponse = obj({
  targets: arr(obj({
    name: str, connected: bool, sent: num, spooled: num, spoolBytes: num, droppedFromSpool: num, droppedDiskFull: num,
    spoolDiskFull: bool, filtered: num, droppedOverload: num, lastError: str, lastErrorAt: str,
  }, ['droppedDiskFull', 'spoolDiskFull', 'droppedOverload', 'lastError', 'lastErrorAt'])),
});
/** null removes the token. */
export const metricsTokenBody = obj({ token: nullable(typed<string>({ type: 'string', minLength: 16, maxLength: 256 })) });
export type MetricsTokenBody = Infer<typeof metricsTokenBody>;
export const sessionSettingsBody = obj({ sessionTimeoutMin: typed<number>({ type: 'integer', minimum: 1, maximum: 720 }) });
export type SessionSettingsBody = Infer<typeof sessionSettingsBody>;
export const sessionSettingsResponse = obj({ sessionTimeoutMin: int });

const bounded = (limits: { minimum: number; maximum: number }) => typed<number>({ type: 'integer', ...limits });
const livenessTiming = {
  intervalSeconds: bounded(LIVENESS_LIMITS.intervalSeconds),
  timeoutMs: bounded(LIVENESS_LIMITS.timeoutMs),
  downAfter: bounded(LIVENESS_LIMITS.downAfter),
};
/** Per policy group (names as in the policy); what a group leaves out comes from the global values. */
const livenessGroup = obj({ enabled: bool, ...livenessTiming }, ['intervalSeconds', 'timeoutMs', 'downAfter']);
export const livenessSettings = obj({
  enabled: bool,
  ...livenessTiming,
  maxProbesPerSecond: bounded(LIVENESS_LIMITS.maxProbesPerSecond),
  groups: typed<Record<string, Infer<typeof livenessGroup>>>({
    type: 'object', propertyNames: { pattern: NAME_PATTERN, maxLength: 64 }, maxProperties: LIVENESS_LIMITS.groups,
    additionalProperties: livenessGroup,
  }),
});
export type LivenessSettingsBody = Infer<typeof livenessSettings>;
// --- asset inventory (inventory/types.ts) ---


const side = oneOf(['inside', 'outside']);
const livenessState = oneOf(['up', 'down', 'unknown', 'off']);
const conversationVerdict = oneOf(['allow', 'monitor', 'deny']);
const inventoryLimit = typed<number>({ type: 'integer', minimum: 1, maximum: 10000, default: 1000 });
const optionalStrings = <K extends string>(keys: readonly K[]) =>
  obj(Object.fromEntries(keys.map((k) => [k, str])) as Record<K, typeof str>, keys);
const assetIdentity = obj({
  lldp: optionalStrings(['systemName', 'systemDescription', 'chassisId', 'portId', 'portDescription', 'managementAddress']),
  dhcp: optionalStrings(['hostName', 'vendorClass']),
  modbus: optionalStrings(['vendorName', 'productCode', 'revision', 'vendorUrl', 'productName', 'modelName', 'unit']),
}, ['lldp', 'dhcp', 'modbus']);
const asset = obj({
  id: int, pair: str, mac: str, vendor: nullable(str), addresses: arr(str), router: bool, vlan: int, side, name: nullable(str),
  identity: assetIdentity, firstSeen: num, lastSeen: num, packets: num, bytes: num, offers: arr(str), uses: arr(str),
  liveness: obj({ state: livenessState, rttMs: nullable(num), checkedAt: nullable(num), changedAt: nullable(num) }),
});
const conversation = obj({
  id: int, pair: str, proto: str, client: str, clientAsset: nullable(int), server: str, serverAsset: nullable(int), port: int,
  service: str, vlan: int, rule: str, verdict: conversationVerdict, flows: num, packets: num, bytes: num, functions: countsByName, units: arr(int),
  protocol: str, firstSeen: num, lastSeen: num,
});

export const assetsQuery = obj({
  pair: typed<string>({ type: 'string', minLength: 1, maxLength: 64 }),
  q: typed<string>({ type: 'string', minLength: 1, maxLength: 100, description: 'substring of the MAC, an address, the name or the vendor' }),
  side,
  liveness: livenessState,
  limit: inventoryLimit,
}, ['pair', 'q', 'side', 'liveness', 'limit']);
export type AssetsQuery = Infer<typeof assetsQuery> & { limit: number };
export const assetsResponse = obj({ assets: arr(asset) });
export const assetParams = obj({ id: typed<number>({ type: 'integer', minimum: 1 }) });
export type AssetParams = Infer<typeof assetParams>;
export const assetResponse = obj({ asset, conversations: arr(conversation) });
export const conversationsQuery = obj({
  pair: typed<string>({ type: 'string', minLength: 1, maxLength: 64 }),
  asset: typed<number>({ type: 'integer', minimum: 1 }),
  address: typed<string>({ type: 'string', minLength: 1, maxLength: 64 }),
  verdict: conversationVerdict,
  since: typed<number>({ type: 'integer', minimum: 0, description: 'epoch ms: last seen at or after' }),
  limit: inventoryLimit,
}, ['pair', 'asset', 'address', 'verdict', 'since', 'limit']);
export type ConversationsQuery = Infer<typeof conversationsQuery> & { limit: number };
export const conversationsResponse = obj({ conversations: arr(conversation) });
export const inventoryStatsResponse = obj({
  assets: int, conversations: int, dropped: num, dbBytes: num, lastFlushAt: nullable(num), lastFlushMs: nullable(num), flushErrors: num,
});
