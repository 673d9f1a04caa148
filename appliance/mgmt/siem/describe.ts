// What every exported line says, whatever the format: a stable short name per event type, a
// plain-English sentence an analyst understands without looking anything up, and the event's
// fields as ordered key/value text. Events arrive over IPC, so nothing here trusts their shape:
// a missing or odd field prints as "?" instead of throwing.

import type { GatekeeperEvent, Severity } from '../../ipc/events';

/** The message "send a test message" produces (not an appliance event, so not in events.ts). */
export interface TestEvent {
  type: 'test';
  time: string;
  severity: Severity;
  target: string;
}

export type ExportRecord = GatekeeperEvent | TestEvent;

/** Short human name per type: CEF's Name header field and the docs' headings. */
export const eventNames: Record<ExportRecord['type'], string> = {
  'flow.start': 'Flow allowed',
  'flow.end': 'Flow ended',
  'deny.summary': 'Traffic denied',
  'ot.violation': 'Industrial protocol violation',
  'spoof.summary': 'Spoofed source address',
  'asset.new': 'New asset',
  'asset.changed': 'Asset changed',
  'asset.down': 'Asset down',
  'asset.up': 'Asset up',
  'learn.start': 'Learning started',
  'learn.stop': 'Learning stopped',
  'link.up': 'Link up',
  'link.down': 'Link down',
  'dataplane.start': 'Dataplane started',
  'dataplane.stop': 'Dataplane stopped',
  'dataplane.connected': 'Dataplane connected',
  'dataplane.disconnected': 'Dataplane disconnected',
  'bypass.on': 'Bypass on',
  'bypass.off': 'Bypass off',
  'events.dropped': 'Events dropped',
  'policy.applied': 'Policy applied',
  'policy.refused': 'Policy refused',
  'policy.rollback': 'Policy rolled back',
  'mode.change': 'Mode changed',
  'auth.login': 'Login',
  'auth.login_failed': 'Login failed',
  'auth.lockout': 'Account locked out',
  'auth.logout': 'Logout',
  'admin.change': 'Configuration changed',
  'counters.snapshot': 'Counters',
  test: 'Test message',
};

export function eventName(type: string): string {
  return (eventNames as Record<string, string | undefined>)[type] ?? type;
}

type Loose = Record<string, unknown>;

function text(value: unknown): string {
  if (value === undefined || value === null || value === '') return '?';
  return String(value);
}

function groups(value: unknown): string {
  return Array.isArray(value) && value.length > 0 ? ` (${value.join(', ')})` : '';
}

const portProtocols = new Set(['tcp', 'udp', 'sctp']);

/** "198.18.1.100:502", "[2001:2::1]:502", or "198.18.1.1 icmp type 8" for ICMP. */
function endpoint(address: unknown, port: unknown, proto: unknown, withPort: boolean): string {
  const a = text(address);
  if (!withPort) return a;
  if (portProtocols.has(String(proto))) return a.includes(':') ? `[${a}]:${text(port)}` : `${a}:${text(port)}`;
  if (proto === 'icmp' || proto === 'icmpv6') return `${a} type ${text(port)}`;
  return a;
}

/** "tcp 198.18.1.10:51234 (hmi) -> 198.18.1.100:502 (plc)"; the source port only when asked. */
function connection(e: Loose, withSourcePort: boolean): string {
  const vlan = typeof e.vlan === 'number' && e.vlan > 0 ? ` on vlan ${e.vlan}` : '';
  return `${text(e.proto)} ${endpoint(e.src, e.srcPort, e.proto, withSourcePort)}${groups(e.srcGroups)} -> ` +
    `${endpoint(e.dst, e.dstPort, e.proto, true)}${groups(e.dstGroups)}${vlan}`;
}

/** 12 s, 1.5 s, 3 min 20 s, 2 h 5 min. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '? s';
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function plural(n: unknown, one: string, many = `${one}s`): string {
  return `${text(n)} ${n === 1 ? one : many}`;
}

function pairText(e: Loose): string {
  return e.pair ? ` on pair ${text(e.pair)}` : '';
}

/** One sentence, no line breaks. */
export function describe(record: ExportRecord): string {
  const e = record as unknown as Loose;
  const sentence = describeLoose(e);
  return sentence.replace(/[\r\n]+/g, ' ');
}

function describeLoose(e: Loose): string {
  switch (e.type) {
    case 'flow.start':
      return `${e.monitor ? 'Allowed (monitor mode)' : 'Allowed'} ${connection(e, true)} by rule ${text(e.rule)}${pairText(e)}`;
    case 'deny.summary': {
      const verb = e.monitor ? 'Would have denied (monitor mode)' : e.action === 'reject' ? 'Rejected' : 'Denied';
      const span = Date.parse(String(e.lastSeen)) - Date.parse(String(e.firstSeen));
      return `${verb} ${plural(e.count, 'packet')} ${connection(e, false)} by rule ${text(e.rule)} in ${duration(span)}${pairText(e)}`;
    }
    case 'ot.violation': {
      const verb = e.monitor ? 'Would have refused (monitor mode)' : { reset: 'Refused and reset', exception: 'Refused with an exception',
        drop: 'Dropped' }[String(e.action)] ?? 'Refused';
      const fn = e.function ? `${text(e.function)}` : 'a broken stream';
      const unit = typeof e.unit === 'number' && e.unit >= 0 ? ` unit ${e.unit}` : '';
      const addresses = typeof e.addressFirst === 'number'
        ? ` address${e.addressFirst === e.addressLast ? ` ${e.addressFirst}` : `es ${e.addressFirst}-${text(e.addressLast)}`}` : '';
      const span = Date.parse(String(e.lastSeen)) - Date.parse(String(e.firstSeen));
      return `${verb} ${plural(e.count, `${text(e.protocol)} message`)} (${fn}${unit}${addresses}: ${text(e.reason)}) ${connection(e, false)}` +
        ` by rule ${text(e.rule)} in ${duration(span)}${pairText(e)}`;
    }
    case 'spoof.summary': {
      const verb = e.monitor ? 'Would have dropped (monitor mode)' : 'Dropped';
      const what = e.kind === 'arp' ? 'ARP packet' : 'packet';
      const span = Date.parse(String(e.lastSeen)) - Date.parse(String(e.firstSeen));
      return `${verb} ${plural(e.count, what)} claiming ${text(e.address)}${groups(e.groups)} from MAC ${text(e.mac)} on the ` +
        `${text(e.side)} port: the address is bound to ${text(e.boundMac)}; in ${duration(span)}${pairText(e)}`;
    }
    case 'asset.new':
    case 'asset.changed':
    case 'asset.down':
    case 'asset.up': {
      const who = `${e.name ? `${text(e.name)} ` : ''}(${[e.address, e.mac].filter(Boolean).map(text).join(', ')}${e.vendor ? `, ${text(e.vendor)}` : ''})`;
      const where = `on the ${text(e.side)} port${e.vlan ? ` VLAN ${text(e.vlan)}` : ''}${pairText(e)}`;
      if (e.type === 'asset.new') return `New asset ${who} ${where}`;
      if (e.type === 'asset.changed') return `Asset ${who} changed ${where}: ${text(e.detail ?? '')}`;
      if (e.type === 'asset.down') return `Asset ${who} stopped answering probes ${where}`;
      return `Asset ${who} answers probes again${typeof e.rttMs === 'number' ? ` (${e.rttMs} ms)` : ''} ${where}`;
    }
    case 'learn.start':
      return `Learning started by ${text(e.author)}${typeof e.durationMs === 'number' ? ` for ${duration(e.durationMs)}` : ''}${pairText(e)}`;
    case 'learn.stop':
      return `Learning stopped${e.detail ? ` (${text(e.detail)})` : ''}${pairText(e)}`;
    case 'flow.end': {
      const functions = e.functions && typeof e.functions === 'object'
        ? `; requests ${Object.entries(e.functions as Record<string, unknown>).map(([name, n]) => `${name} ${text(n)}`).join(', ')}` : '';
      return `Flow ended (${text(e.reason)}) ${connection(e, true)} rule ${text(e.rule)} after ${duration(Number(e.durationMs))}: ` +
        `${plural(e.packetsOut, 'packet')} / ${plural(e.bytesOut, 'byte')} out, ${plural(e.packetsIn, 'packet')} / ${plural(e.bytesIn, 'byte')} in` +
        `${functions}${pairText(e)}`;
    }
    case 'link.up':
    case 'link.down':
      return `Link ${e.type === 'link.up' ? 'up' : 'down'} on ${text(e.side)} port ${text(e.port)}${pairText(e)}`;
    case 'dataplane.start':
    case 'dataplane.stop':
    case 'dataplane.connected':
    case 'dataplane.disconnected': {
      const what = { 'dataplane.start': 'started', 'dataplane.stop': 'stopped', 'dataplane.connected': 'connected to management',
        'dataplane.disconnected': 'disconnected from management' }[e.type];
      const pid = e.pid !== undefined ? ` (pid ${text(e.pid)})` : '';
      const detail = e.detail ? `: ${text(e.detail)}` : '';
      return `Dataplane${pairText(e).replace(' on pair', ' for pair')} ${what}${pid}${detail}`;
    }
    case 'bypass.on':
      return `BYPASS: pair ${text(e.pair)} is bridged by the kernel without enforcement: ${text(e.reason)}`;
    case 'bypass.off':
      return `Bypass ended on pair ${text(e.pair)} after ${duration(Number(e.durationMs))}: enforcing again` +
        ` (bypass began ${text(e.since ?? '?')}: ${text(e.reason)})`;
    case 'events.dropped':
      return `Dataplane${pairText(e).replace(' on pair', ' for pair')} dropped ${plural(e.count, 'event')} while management was unreachable`;
    case 'policy.applied': {
      const mode = e.mode ? ` in ${text(e.mode)} mode` : '';
      const comment = e.comment ? `: ${text(e.comment)}` : '';
      return `Policy version ${text(e.version)} applied by ${text(e.author)}${mode}${comment}`;
    }
    case 'policy.refused': {
      const errors = Array.isArray(e.errors) ? e.errors : [];
      const first = errors.length > 0 ? `, first: ${text(errors[0])}` : '';
      return `Policy refused (submitted by ${text(e.author)}) with ${plural(errors.length, 'error')}${first}; the running policy stays`;
    }
    case 'policy.rollback':
      return `Policy rolled back to version ${text(e.version)} by ${text(e.author)}${e.comment ? `: ${text(e.comment)}` : ''}`;
    case 'mode.change':
      return `Mode changed from ${text(e.from)} to ${text(e.to)} by ${text(e.author)}`;
    case 'auth.login':
      return `User ${text(e.user)} logged in from ${text(e.from)}`;
    case 'auth.login_failed':
      return `Failed login for user ${text(e.user)} from ${text(e.from)}`;
    case 'auth.lockout':
      return `User ${text(e.user)} locked out after repeated failed logins from ${text(e.from)}`;
    case 'auth.logout':
      return `User ${text(e.user)} logged out from ${text(e.from)}`;
    case 'admin.change':
      return `User ${text(e.user)} from ${text(e.from)} changed the configuration: ${text(e.action)}`;
    case 'counters.snapshot':
      return `Counters${pairText(e).replace(' on pair', ' for pair')}: ${text(e.rxPackets)} packets received, ${text(e.txPackets)} sent, ` +
        `${text(e.dropped)} dropped, ${text(e.flowsActive)} active flows`;
    case 'test':
      return `Test message from the gatekeeper to syslog target ${text(e.target)}`;
    default:
      return `Event ${text(e.type)}`;
  }
}

/** Keys every line carries in its header, not among the fields. */
const headerKeys = new Set(['type', 'time', 'severity']);

/**
 * The event's own fields in their order, as text: arrays joined with ",", counts by name (flow.end's
 * functions) as "name:count,...", other objects as JSON, absent values left out. RFC 5424 structured
 * data, the RFC 3164 key=value tail and CEF are built from this.
 */
export function eventFields(record: ExportRecord): [string, string][] {
  const fields: [string, string][] = [];
  for (const [key, value] of Object.entries(record as unknown as Loose)) {
    if (headerKeys.has(key) || value === undefined || value === null) continue;
    if (Array.isArray(value)) fields.push([key, value.map(String).join(',')]);
    else if (typeof value === 'object') fields.push([key, objectText(value as Loose)]);
    else fields.push([key, String(value)]);
  }
  return fields;
}

/** {"read-holding-registers": 6} as "read-holding-registers:6"; anything else as JSON. */
export function objectText(value: Loose): string {
  const entries = Object.entries(value);
  return entries.every(([, n]) => typeof n === 'number')
    ? entries.map(([name, n]) => `${name}:${n}`).join(',')
    : JSON.stringify(value);
}

/** Cuts a string to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(value: string, maxBytes: number): string {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no encoding at all.
  if (value.length * 3 <= maxBytes) return value;
  const bytes = Buffer.from(value);
  if (bytes.length <= maxBytes) return value;
  let end = Math.max(0, maxBytes);
  // A cut before a continuation byte (10xxxxxx) splits a character: step back to its lead byte.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** What every formatter needs besides the record. */
export interface FormatOptions {
  /** This appliance's host name as the SIEM should show it. */
  hostname: string;
  /** Software version (CEF's Device Version). */
  version: string;
  /** Longest line in bytes; longer records lose fields/text from the end, marked as truncated. */
  maxBytes: number;
}

/** Printable US-ASCII without spaces (RFC 5424 PRINTUSASCII), at most `max` characters, "-" if empty. */
export function headerToken(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean.length > 0 ? clean : '-';
}

/** The event's time as ISO 8601 UTC with milliseconds; the current time if it is not a valid date. */
export function eventTime(record: ExportRecord): Date {
  const time = new Date(String(record.time));
  return Number.isNaN(time.getTime()) ? new Date() : time;
}
