// JSON schemas of the management API: every route validates its input and serializes its output
// through these (fastify + ajv), and @fastify/swagger turns them into /api/v1/openapi.json.
// Bodies reject unknown properties (additionalProperties: false) so a typo is a 400, not ignored.

import { eventTypes, severityNames } from '../ipc/events';
import { PASSWORD_MIN_LENGTH } from './auth/passwords';
import { roles } from './auth/roles';

type Schema = Record<string, unknown>;

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;
const nullable = (s: Schema): Schema => ({ ...s, nullable: true });

/** An object whose listed properties are all required, nothing else allowed. */
export function obj(properties: Record<string, Schema>, optional: string[] = []): Schema {
  return {
    type: 'object',
    properties,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    additionalProperties: false,
  };
}

const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });

export const USER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$';
const userName = { type: 'string', pattern: USER_NAME_PATTERN };
const role = { type: 'string', enum: [...roles] };
const newPassword = { type: 'string', minLength: PASSWORD_MIN_LENGTH, maxLength: 1024 };
/** 1 MiB is far above any real policy and bounds what validation and diff have to chew. */
const policyText = { type: 'string', minLength: 1, maxLength: 1024 * 1024 };
const comment = { type: 'string', maxLength: 1000 };
const severity = { type: 'string', enum: [...severityNames] };

export const errorSchema = obj(
  { error: str, details: arr({ type: 'object', additionalProperties: true }), retryAfterS: int },
  ['details', 'retryAfterS'],
);

/** Response schemas: the success codes given, and the error shape for every 4xx/5xx. */
export function responses(ok: Record<number, Schema>): Record<string, Schema> {
  return { ...ok, '4xx': errorSchema, '5xx': errorSchema };
}

export const noContent: Schema = { type: 'null', description: 'no content' };

// --- auth ---

export const userRef = obj({ name: str, role });
export const loginBody = obj({ username: { type: 'string', minLength: 1, maxLength: 64 }, password: { type: 'string', maxLength: 1024 } });
export const sessionResponse = obj({ user: userRef, csrfToken: str });
export const setupNeededResponse = obj({ needed: bool });
export const setupBody = obj({ token: { type: 'string', minLength: 1, maxLength: 200 }, username: userName, password: newPassword });
export const passwordBody = obj({ current: { type: 'string', maxLength: 1024 }, password: newPassword });

// --- status and traffic ---

const portStatus = obj({
  name: str, link: str, rxPackets: num, rxBytes: num, txPackets: num, txBytes: num, dropped: num,
  droppedByReason: { type: 'object', additionalProperties: num }, rxPps: num, rxBps: num,
});
const pairStatus = obj({
  pair: str, connected: bool, pid: int, generation: int, policyHash: str, policyVersion: nullable(int),
  mode: { type: 'string', enum: ['enforce', 'monitor'] }, uptimeMs: num, lastSeen: num,
  ports: obj({ inside: portStatus, outside: portStatus }),
  flows: obj({ active: num, capacity: num, created: num, evicted: num }),
  rates: obj({ allowedPps: num, deniedPps: num, rxPps: num, rxBps: num }),
});
const policySummary = obj({
  version: int, hash: str, mode: str, appliedAt: str, author: str, comment: str,
});
export const statusResponse = obj({ version: str, uptimeMs: num, policy: nullable(policySummary), pairs: arr(pairStatus) });

export const historyQuery = obj({ pair: { type: 'string', minLength: 1 }, seconds: { type: 'integer', minimum: 1, maximum: 900, default: 300 } }, ['seconds']);
export const historyResponse = obj({
  pair: str,
  points: arr(obj({ t: num, rxPps: num, rxBps: num, allowedPps: num, deniedPps: num })),
});

export const deniedTopQuery = obj({ limit: { type: 'integer', minimum: 1, maximum: 1000, default: 10 } }, ['limit']);
export const deniedTopResponse = obj({
  entries: arr(obj({
    pair: str, src: str, srcGroups: arr(str), dst: str, dstGroups: arr(str), proto: str, dstPort: int,
    rule: str, action: { type: 'string', enum: ['deny', 'reject'] }, count: num, lastSeen: str,
  })),
});

const verdict = { type: 'string', enum: ['allow', 'monitor'] };
export const flowsQuery = obj({
  pair: { type: 'string', minLength: 1 },
  address: { type: 'string', minLength: 1, maxLength: 64 },
  port: { type: 'integer', minimum: 0, maximum: 65535 },
  rule: { type: 'string', minLength: 1 },
  verdict,
  limit: { type: 'integer', minimum: 1, maximum: 10000, default: 200 },
}, ['pair', 'address', 'port', 'rule', 'verdict', 'limit']);
const flowRecord = obj({
  pair: str, proto: str, src: str, srcPort: int, dst: str, dstPort: int, vlan: int, rule: str, verdict,
  state: { type: 'string', enum: ['opening', 'established', 'closing', 'none'] },
  initiatorSide: { type: 'string', enum: ['inside', 'outside'] },
  packetsOut: num, packetsIn: num, bytesOut: num, bytesIn: num, firstSeen: num, lastSeen: num,
});
export const flowsResponse = obj({ flows: arr(flowRecord), matched: int, total: int });

// --- policy ---

const diagnostic = obj({ line: int, col: int, message: str });
export const policyResponse = obj({
  version: int, text: str, hash: str, mode: str, author: str, comment: str, appliedAt: str,
});
export const policyTextBody = obj({ text: policyText });
export const validateResponse = obj({
  ok: bool, errors: arr(diagnostic), warnings: arr(diagnostic),
  stats: obj({
    rules: int, groups: int, services: int, srcIntervals: int, dstIntervals: int, bitsets: int, tableBytes: int, compileMs: num,
  }),
}, ['stats']);
export const diffResponse = obj({ diff: str, added: int, removed: int });
const verdictRef = obj({ rule: str, action: str });
export const dryRunResponse = obj({
  ok: bool, errors: arr(diagnostic), observed: int,
  changes: arr(obj({ pair: str, proto: str, src: str, srcPort: int, dst: str, dstPort: int, before: verdictRef, after: verdictRef })),
}, ['errors']);
export const applyBody = obj({ text: policyText, comment }, ['comment']);
export const applyResponse = obj({ version: int, pairs: arr(obj({ pair: str, generation: int })) });
export const historyListResponse = obj({
  versions: arr(obj({ version: int, author: str, comment: str, appliedAt: str, hash: str, mode: str, active: bool })),
});
export const versionParams = obj({ version: { type: 'integer', minimum: 1 } });
export const versionResponse = obj({
  version: int, text: str, hash: str, mode: str, author: str, comment: str, appliedAt: str, active: bool,
});
export const rollbackBody = obj({ version: { type: 'integer', minimum: 1 }, comment }, ['comment']);

// --- events and audit ---

export const eventsQuery = obj({
  type: { type: 'string', minLength: 1, maxLength: 1000, description: 'event types, comma separated' },
  minSeverity: severity,
  pair: { type: 'string', minLength: 1 },
  limit: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
  before: { type: 'string', format: 'date-time' },
}, ['type', 'minSeverity', 'pair', 'limit', 'before']);
/** GatekeeperEvent (appliance/events.ts): a union of many shapes, documented in docs/siem.md. */
export const eventsResponse = obj({ events: arr({ type: 'object', additionalProperties: true }) });
export const auditQuery = obj({ limit: { type: 'integer', minimum: 1, maximum: 10000, default: 100 } }, ['limit']);
export const auditResponse = obj({
  entries: arr(obj({ time: str, user: str, from: str, action: str, detail: str, diff: str }, ['diff'])),
});

// --- users ---

export const usersResponse = obj({ users: arr(obj({ name: str, role, createdAt: str, lastLoginAt: nullable(str) })) });
export const userBody = obj({ name: userName, role, password: newPassword });
export const userNameParams = obj({ name: userName });
export const userPatchBody = { ...obj({ role, password: newPassword }, ['role', 'password']), minProperties: 1 };
export const userResponse = obj({ user: obj({ name: str, role, createdAt: str, lastLoginAt: nullable(str) }) });

// --- settings ---

const pem = { type: 'string', minLength: 1, maxLength: 65536 };
const host = { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_-]+$' };
const targetCommon = {
  name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' },
  enabled: bool,
  host,
  port: { type: 'integer', minimum: 1, maximum: 65535 },
  transport: { type: 'string', enum: ['udp', 'tcp', 'tls'] },
  format: { type: 'string', enum: ['rfc5424', 'rfc3164', 'cef'] },
  minSeverity: severity,
  types: arr({ type: 'string', enum: [...eventTypes] }, { uniqueItems: true }),
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
export const syslogResponse = obj({ targets: arr(syslogTargetOut) });
export const syslogTestBody = obj({ target: { type: 'string', minLength: 1 } });
export const syslogTestResponse = obj({ ok: bool, error: str }, ['error']);
export const syslogStatusResponse = obj({
  targets: arr(obj({
    name: str, connected: bool, sent: num, spooled: num, spoolBytes: num, droppedFromSpool: num, filtered: num,
    droppedOverload: num, lastError: str, lastErrorAt: str,
  }, ['droppedOverload', 'lastError', 'lastErrorAt'])),
});
/** null removes the token. */
export const metricsTokenBody = obj({ token: { type: 'string', minLength: 16, maxLength: 256, nullable: true } });
export const sessionSettingsBody = obj({ sessionTimeoutMin: { type: 'integer', minimum: 1, maximum: 720 } });
export const sessionSettingsResponse = obj({ sessionTimeoutMin: int });
