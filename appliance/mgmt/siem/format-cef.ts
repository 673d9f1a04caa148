// ArcSight CEF (Common Event Format) over syslog, as CEF receivers expect it:
//   <PRI>Mmm dd hh:mm:ss HOSTNAME CEF:0|Gatekeeper|gatekeeper|VERSION|TYPE|NAME|SEVERITY|key=value ...
// Standard CEF keys carry what they mean (src, dst, spt, dpt, proto, act, cnt, start, end, in, out,
// suser, outcome, reason, rt, dvchost, msg); the rest goes into labelled custom fields with a fixed
// meaning across types: cs1 rule, cs2 source groups, cs3 destination groups, cs4 pair; cs5, cs6 and
// cn1-cn3 are labelled per type (docs/siem.md). Times are milliseconds since the epoch.
// CEF's in/out are relative to source → destination: "in" is what the initiator sent.

import { describe, eventName, eventTime, headerToken, objectText, truncateUtf8 } from './describe';
import type { ExportRecord, FormatOptions } from './describe';
import { bsdTimestamp } from './format-rfc3164';
import { cefSeverity, priority } from './severity';

/** Header fields: '\' and '|' are escaped; line breaks are not allowed and become spaces. */
export function escapeHeader(value: string): string {
  return value.replace(/[\\|]/g, (c) => `\\${c}`).replace(/[\r\n]+/g, ' ');
}

/** Extension values: '\' and '=' are escaped, line breaks written as \n and \r. */
export function escapeExtension(value: string): string {
  return value.replace(/[\\=]/g, (c) => `\\${c}`).replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

type Loose = Record<string, unknown>;
type Extension = [string, unknown][];

function millis(iso: unknown): number | undefined {
  const ms = Date.parse(String(iso));
  return Number.isNaN(ms) ? undefined : ms;
}

function list(value: unknown): string | undefined {
  return Array.isArray(value) ? value.join(',') : undefined;
}

function labelled(slot: string, label: string, value: unknown): Extension {
  return value === undefined || value === null || value === '' ? [] : [[`${slot}Label`, label], [slot, value]];
}

function connection(e: Loose): Extension {
  const ports = e.proto === 'tcp' || e.proto === 'udp' || e.proto === 'sctp';
  return [
    ['src', e.src], ...(ports ? [['spt', e.srcPort] as [string, unknown]] : []),
    ['dst', e.dst], ...(ports ? [['dpt', e.dstPort] as [string, unknown]] : []),
    ['proto', typeof e.proto === 'string' ? e.proto.toUpperCase() : undefined],
    ...labelled('cs1', 'rule', e.rule),
    ...labelled('cs2', 'srcGroups', list(e.srcGroups)),
    ...labelled('cs3', 'dstGroups', list(e.dstGroups)),
  ];
}

function typeExtension(e: Loose): Extension {
  const time = millis(e.time);
  switch (e.type) {
    case 'flow.start':
      return [...connection(e), ['act', 'allow'], ...labelled('cs5', 'monitor', e.monitor), ...labelled('cs6', 'vlan', e.vlan)];
    case 'flow.end': {
      const duration = typeof e.durationMs === 'number' ? e.durationMs : undefined;
      return [...connection(e), ['act', 'allow'], ['reason', e.reason],
        ['start', time !== undefined && duration !== undefined ? time - duration : undefined], ['end', time],
        ['in', e.bytesOut], ['out', e.bytesIn],
        ...labelled('cn1', 'durationMs', duration), ...labelled('cn2', 'packetsOut', e.packetsOut),
        ...labelled('cn3', 'packetsIn', e.packetsIn), ...labelled('cs6', 'vlan', e.vlan),
        ...labelled('cs5', 'functions', e.functions && typeof e.functions === 'object' ? objectText(e.functions as Loose) : undefined)];
    }
    case 'ot.violation':
      return [...connection(e), ['act', e.action], ['reason', e.reason], ['cnt', e.count], ['app', e.protocol],
        ['start', millis(e.firstSeen)], ['end', millis(e.lastSeen)],
        ...labelled('cs5', 'function', e.function), ...labelled('cn1', 'unit', e.unit),
        ...labelled('cn2', 'addressFirst', e.addressFirst), ...labelled('cn3', 'addressLast', e.addressLast),
        ...labelled('cs6', 'vlan', e.vlan)];
    case 'spoof.summary':
      return [['src', e.address], ['smac', e.mac], ['act', e.monitor ? 'monitor' : 'drop'], ['app', e.kind], ['cnt', e.count],
        ['in', e.bytes], ['start', millis(e.firstSeen)], ['end', millis(e.lastSeen)],
        ...labelled('cs2', 'srcGroups', list(e.groups)), ...labelled('cs5', 'boundMac', e.boundMac), ...labelled('cs6', 'side', e.side)];
    case 'asset.new':
    case 'asset.changed':
    case 'asset.down':
    case 'asset.up':
      return [['src', e.address || undefined], ['smac', e.mac], ['shost', e.name || undefined], ['reason', e.detail],
        ...labelled('cn1', 'asset', e.asset), ...labelled('cn2', 'rttMs', e.rttMs), ...labelled('cs2', 'vendor', e.vendor || undefined),
        ...labelled('cs5', 'previousMac', e.previousMac), ...labelled('cs6', 'side', e.side)];
    case 'learn.start':
    case 'learn.stop':
      return [['suser', e.author], ['reason', e.detail], ...labelled('cn1', 'durationMs', e.durationMs)];
    case 'deny.summary':
      return [...connection(e), ['act', e.action], ['cnt', e.count], ['in', e.bytes],
        ['start', millis(e.firstSeen)], ['end', millis(e.lastSeen)],
        ...labelled('cs5', 'monitor', e.monitor), ...labelled('cs6', 'vlan', e.vlan)];
    case 'link.up':
    case 'link.down':
      return [...labelled('cs5', 'port', e.port), ...labelled('cs6', 'side', e.side)];
    case 'dataplane.start':
    case 'dataplane.stop':
    case 'dataplane.connected':
    case 'dataplane.disconnected':
      return [['dpid', e.pid], ['reason', e.detail]];
    case 'events.dropped':
      return [['cnt', e.count]];
    case 'policy.applied':
    case 'policy.refused':
    case 'policy.rollback':
      return [['suser', e.author], ['reason', Array.isArray(e.errors) ? e.errors.join('; ') : e.comment],
        ...labelled('cn1', 'version', e.version), ...labelled('cs5', 'policyHash', e.policyHash), ...labelled('cs6', 'mode', e.mode)];
    case 'mode.change':
      return [['suser', e.author], ...labelled('cs5', 'from', e.from), ...labelled('cs6', 'to', e.to)];
    case 'auth.login':
    case 'auth.login_failed':
    case 'auth.lockout':
    case 'auth.logout':
    case 'admin.change':
      return [['suser', e.user], ['src', e.from], ['act', e.action ?? String(e.type).replace('auth.', '')],
        ['outcome', e.type === 'auth.login_failed' || e.type === 'auth.lockout' ? 'failure' : 'success']];
    case 'counters.snapshot':
      return [...labelled('cn1', 'rxPackets', e.rxPackets), ...labelled('cn2', 'txPackets', e.txPackets),
        ...labelled('cn3', 'dropped', e.dropped), ...labelled('cs5', 'flowsActive', e.flowsActive),
        ...labelled('cs6', 'generation', e.generation)];
    case 'test':
      return labelled('cs5', 'target', e.target);
    default:
      return [];
  }
}

export function formatCef(record: ExportRecord, options: FormatOptions): string {
  const e = record as unknown as Loose;
  const time = eventTime(record);
  const header = `<${priority(record.severity)}>${bsdTimestamp(time)} ${headerToken(options.hostname, 255)} ` +
    `CEF:0|Gatekeeper|gatekeeper|${escapeHeader(options.version)}|${escapeHeader(String(record.type))}|` +
    `${escapeHeader(eventName(String(record.type)))}|${cefSeverity(record.severity)}|`;
  const extension: Extension = [
    ['rt', time.getTime()], ['dvchost', options.hostname], ...labelled('cs4', 'pair', e.pair),
    ...typeExtension(e), ['msg', describe(record)],
  ];
  const pairs = extension
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([key, value]) => `${key}=${escapeExtension(String(value))}`);
  // Too long: the sentence (last) goes first, then fields from the end.
  while (pairs.length > 1 && Buffer.byteLength(header + pairs.join(' ')) > options.maxBytes) pairs.pop();
  return truncateUtf8(header + pairs.join(' '), options.maxBytes);
}
