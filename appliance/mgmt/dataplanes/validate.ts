// Shape checks for what a dataplane sends: the framing only guarantees a JSON object with a string
// `type`, and the rest of management trusts the fields it reads, so every message is checked here
// before anything uses it.

import { severityNames, type EventType, type GatekeeperEvent } from '../../ipc/events';
import type { DataplaneMessage, FlowRecord } from '../../ipc/messages';

type Fields = Record<string, unknown>;

const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isString = (v: unknown): v is string => typeof v === 'string';
const areStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

function hasCounts(o: unknown, names: readonly string[]): boolean {
  return isObject(o) && names.every((n) => isCount(o[n]));
}

function isCountMap(o: unknown): boolean {
  return isObject(o) && Object.values(o).every(isCount);
}

const PORT_FIELDS = ['rx_packets', 'rx_bytes', 'tx_packets', 'tx_bytes'] as const;

function isPortStats(p: unknown): boolean {
  return isObject(p) && isString(p.name) && isString(p.link) && hasCounts(p, PORT_FIELDS) && isCountMap(p.dropped);
}

function isRuleStats(r: unknown): boolean {
  return isObject(r) && isString(r.name) && isString(r.action) && hasCounts(r, ['packets', 'bytes', 'flows']);
}

function isStats(s: unknown): boolean {
  return (
    isObject(s) &&
    hasCounts(s, ['pid', 'uptimeMs', 'generation']) &&
    isString(s.policyHash) &&
    (s.mode === 'enforce' || s.mode === 'monitor') &&
    isObject(s.ports) &&
    isPortStats(s.ports.inside) &&
    isPortStats(s.ports.outside) &&
    hasCounts(s.flows, ['active', 'capacity', 'created', 'evicted']) &&
    Array.isArray(s.rules) &&
    s.rules.every(isRuleStats)
  );
}

function isFlowRecord(f: unknown): f is FlowRecord {
  return (
    isObject(f) &&
    isString(f.proto) &&
    isString(f.src) &&
    isString(f.dst) &&
    isString(f.rule) &&
    isString(f.verdict) &&
    isString(f.state) &&
    isString(f.initiatorSide) &&
    hasCounts(f, ['srcPort', 'dstPort', 'vlan', 'packetsOut', 'packetsIn', 'bytesOut', 'bytesIn', 'firstSeen', 'lastSeen'])
  );
}

/**
 * What a dataplane may report. Management's own events (policy, audit, connection state, and
 * events.dropped, which the hub derives from a batch's `dropped` count) never come from a dataplane:
 * one that sends them is not believed.
 */
const dataplaneEventTypes: readonly EventType[] = [
  'flow.start', 'flow.end', 'deny.summary', 'link.up', 'link.down', 'dataplane.start', 'dataplane.stop', 'counters.snapshot',
];

/**
 * Largest event kept, as JSON. Events are stored, listed and exported whole; real ones are a few
 * hundred bytes, so a bigger one is a misbehaving dataplane.
 */
const MAX_EVENT_BYTES = 8192;

/**
 * A dataplane event type with a readable time and a known severity (an unknown one would pass
 * every minSeverity filter), at most MAX_EVENT_BYTES as JSON; the fields of the types management
 * reads are checked too.
 */
export function isDataplaneEvent(e: unknown): e is GatekeeperEvent {
  if (!isObject(e) || !isString(e.time) || Number.isNaN(Date.parse(e.time))) return false;
  if (!(dataplaneEventTypes as readonly unknown[]).includes(e.type) || !(severityNames as readonly unknown[]).includes(e.severity)) return false;
  if (Buffer.byteLength(JSON.stringify(e)) > MAX_EVENT_BYTES) return false;
  if (e.type === 'deny.summary' || e.type === 'flow.start') {
    return (
      isString(e.src) &&
      isString(e.dst) &&
      isString(e.proto) &&
      isString(e.rule) &&
      (e.type === 'deny.summary' ? e.action === 'deny' || e.action === 'reject' : e.action === 'allow') &&
      areStrings(e.srcGroups) &&
      areStrings(e.dstGroups) &&
      hasCounts(e, e.type === 'deny.summary' ? ['srcPort', 'dstPort', 'vlan', 'count'] : ['srcPort', 'dstPort', 'vlan'])
    );
  }
  return true;
}

/**
 * Null when `m` is a well-formed dataplane message, else what is wrong with it. Events inside an
 * `events` message are checked one by one by the caller (a bad event is skipped, not fatal).
 */
export function messageProblem(m: Fields): string | null {
  const ok = (valid: boolean) => (valid ? null : `malformed ${String(m.type)} message`);
  switch (m.type as DataplaneMessage['type']) {
    case 'hello':
      return ok(
        isCount(m.version) && isString(m.pair) && m.pair !== '' && isString(m.inside) && isString(m.outside) &&
          hasCounts(m, ['pid', 'generation', 'startedAt']) && isString(m.policyHash),
      );
    case 'stats':
      return ok(isStats(m.stats));
    case 'events':
      return ok(Array.isArray(m.events) && isCount(m.dropped));
    case 'policy.prepared':
      return ok(isCount(m.requestId) && typeof m.ok === 'boolean' && areStrings(m.errors));
    case 'policy.committed':
      return ok(hasCounts(m, ['requestId', 'generation']) && isString(m.policyHash));
    case 'flows':
      return ok(hasCounts(m, ['requestId', 'matched', 'total']) && Array.isArray(m.flows) && m.flows.every(isFlowRecord));
    case 'error':
      return ok(isString(m.message) && (m.requestId === undefined || isCount(m.requestId)));
    default:
      return `unknown message type ${JSON.stringify(m.type)}`;
  }
}
