// The three syslog formats for every event type, read back with the test's own parsers (written
// from the RFCs and the CEF spec in test/lib/rsyslog.ts, not from the formatters), so a formatter
// bug shows as a wrong field or a parse error.

import t from 'tap';
import { eventTypes } from '../appliance/ipc/events';
import type { EventType, GatekeeperEvent } from '../appliance/ipc/events';
import { describe, truncateUtf8 } from '../appliance/mgmt/siem/describe';
import type { ExportRecord, FormatOptions } from '../appliance/mgmt/siem/describe';
import { formatCef } from '../appliance/mgmt/siem/format-cef';
import { formatRfc3164 } from '../appliance/mgmt/siem/format-rfc3164';
import { formatRfc5424 } from '../appliance/mgmt/siem/format-rfc5424';
import { atLeast, cefSeverity, priority } from '../appliance/mgmt/siem/severity';
import { parse3164, parse5424, parseCef } from './lib/rsyslog';

const options: FormatOptions = { hostname: 'gk-plant1.example', version: '0.1.0', maxBytes: 8192 };

const flow = {
  src: '198.18.1.10', srcPort: 51234, srcGroups: ['hmi'], dst: '198.18.1.100', dstPort: 502, dstGroups: ['plc', 'line-1'],
  proto: 'tcp', vlan: 0, pair: 'cell1',
};

/** One example of every event type (the test fails when events.ts gains a type without one). */
export const samples: Record<EventType, GatekeeperEvent> = {
  'flow.start': { type: 'flow.start', time: '2026-03-01T10:00:00.000Z', severity: 'info', ...flow, rule: 'hmi-to-plc', action: 'allow', monitor: false },
  'flow.end': { type: 'flow.end', time: '2026-03-01T10:00:12.500Z', severity: 'info', ...flow, rule: 'hmi-to-plc', reason: 'closed',
    durationMs: 12500, packetsOut: 10, packetsIn: 8, bytesOut: 1200, bytesIn: 900, functions: { 'read-holding-registers': 6 } },
  'ot.violation': { type: 'ot.violation', time: '2026-03-01T10:00:10.000Z', severity: 'warning', ...flow, srcPort: 0, protocol: 'modbus',
    rule: 'hmi-reads-plc', reason: 'function_not_allowed', function: 'write-single-register', unit: 1, addressFirst: 40, addressLast: 40,
    action: 'reset', monitor: false, count: 3, firstSeen: '2026-03-01T10:00:01.000Z', lastSeen: '2026-03-01T10:00:09.000Z' },
  'deny.summary': { type: 'deny.summary', time: '2026-03-01T10:00:10.000Z', severity: 'warning', ...flow, srcPort: 0,
    rule: 'default-deny', action: 'deny', monitor: false, count: 1532, bytes: 98048,
    firstSeen: '2026-03-01T10:00:00.000Z', lastSeen: '2026-03-01T10:00:10.000Z' },
  'spoof.summary': { type: 'spoof.summary', time: '2026-03-01T10:00:10.000Z', severity: 'warning', pair: 'cell1', address: '198.18.1.100',
    groups: ['plc', 'line-1'], mac: '02:00:00:00:00:66', boundMac: '02:00:00:00:00:64', kind: 'arp', side: 'outside', monitor: false,
    count: 4, bytes: 240, firstSeen: '2026-03-01T10:00:02.000Z', lastSeen: '2026-03-01T10:00:08.000Z' },
  'asset.new': { type: 'asset.new', time: '2026-03-01T10:00:00.000Z', severity: 'warning', pair: 'cell1', asset: 7, mac: '02:00:00:00:00:66',
    address: '198.18.1.166', name: '', vendor: '', vlan: 0, side: 'outside' },
  'asset.changed': { type: 'asset.changed', time: '2026-03-01T10:00:00.000Z', severity: 'warning', pair: 'cell1', asset: 3, mac: '02:00:00:00:00:66',
    address: '198.18.1.100', name: 'plc-1', vendor: 'Siemens AG', vlan: 0, side: 'inside', previousMac: '02:00:00:00:00:64',
    detail: '198.18.1.100 moved from 02:00:00:00:00:64 to 02:00:00:00:00:66' },
  'asset.down': { type: 'asset.down', time: '2026-03-01T10:00:00.000Z', severity: 'error', pair: 'cell1', asset: 3, mac: '02:00:00:00:00:64',
    address: '198.18.1.100', name: 'plc-1', vendor: 'Siemens AG', vlan: 0, side: 'inside' },
  'asset.up': { type: 'asset.up', time: '2026-03-01T10:00:00.000Z', severity: 'notice', pair: 'cell1', asset: 3, mac: '02:00:00:00:00:64',
    address: '198.18.1.100', name: 'plc-1', vendor: 'Siemens AG', vlan: 0, side: 'inside', rttMs: 0.4 },
  'learn.start': { type: 'learn.start', time: '2026-03-01T10:00:00.000Z', severity: 'notice', pair: 'cell1', author: 'alice', durationMs: 3600000 },
  'learn.stop': { type: 'learn.stop', time: '2026-03-01T11:00:00.000Z', severity: 'notice', pair: 'cell1', author: 'system', detail: 'period over' },
  'link.up': { type: 'link.up', time: '2026-03-01T10:00:00.000Z', severity: 'notice', pair: 'cell1', port: 'eth1', side: 'inside' },
  'link.down': { type: 'link.down', time: '2026-03-01T10:00:00.000Z', severity: 'error', pair: 'cell1', port: 'eth2', side: 'outside' },
  'dataplane.start': { type: 'dataplane.start', time: '2026-03-01T10:00:00.000Z', severity: 'notice', pair: 'cell1', pid: 4242 },
  'dataplane.stop': { type: 'dataplane.stop', time: '2026-03-01T10:00:00.000Z', severity: 'warning', pair: 'cell1', pid: 4242, detail: 'exit code 1' },
  'dataplane.connected': { type: 'dataplane.connected', time: '2026-03-01T10:00:00.000Z', severity: 'info', pair: 'cell1', pid: 4242 },
  'dataplane.disconnected': { type: 'dataplane.disconnected', time: '2026-03-01T10:00:00.000Z', severity: 'warning', pair: 'cell1' },
  'bypass.on': { type: 'bypass.on', time: '2026-03-01T10:00:00.000Z', severity: 'critical', pair: 'cell1',
    reason: 'the dataplane ended (its connection to management closed)' },
  'bypass.off': { type: 'bypass.off', time: '2026-03-01T10:00:02.000Z', severity: 'warning', pair: 'cell1',
    reason: 'exception: boom', since: '2026-03-01T10:00:00.000Z', durationMs: 2000 },
  'events.dropped': { type: 'events.dropped', time: '2026-03-01T10:00:00.000Z', severity: 'warning', pair: 'cell1', count: 42 },
  'policy.applied': { type: 'policy.applied', time: '2026-03-01T10:00:00.000Z', severity: 'notice', version: 7, author: 'alice',
    comment: 'open modbus for line 2', policyHash: 'sha256:9f86d08', mode: 'enforce' },
  'policy.refused': { type: 'policy.refused', time: '2026-03-01T10:00:00.000Z', severity: 'error', author: 'bob',
    errors: ['policy.yaml:12:7: unknown group "plcs"', 'policy.yaml:20:3: duplicate rule name'] },
  'policy.rollback': { type: 'policy.rollback', time: '2026-03-01T10:00:00.000Z', severity: 'warning', version: 6, author: 'alice' },
  'mode.change': { type: 'mode.change', time: '2026-03-01T10:00:00.000Z', severity: 'warning', from: 'monitor', to: 'enforce', author: 'alice' },
  'auth.login': { type: 'auth.login', time: '2026-03-01T10:00:00.000Z', severity: 'info', user: 'alice', from: '198.18.0.5' },
  'auth.login_failed': { type: 'auth.login_failed', time: '2026-03-01T10:00:00.000Z', severity: 'warning', user: 'mallory', from: '198.18.0.66' },
  'auth.lockout': { type: 'auth.lockout', time: '2026-03-01T10:00:00.000Z', severity: 'alert', user: 'mallory', from: '198.18.0.66' },
  'auth.logout': { type: 'auth.logout', time: '2026-03-01T10:00:00.000Z', severity: 'info', user: 'alice', from: '198.18.0.5' },
  'admin.change': { type: 'admin.change', time: '2026-03-01T10:00:00.000Z', severity: 'notice', user: 'alice', from: '198.18.0.5',
    action: 'settings.update syslog' },
  'counters.snapshot': { type: 'counters.snapshot', time: '2026-03-01T10:00:00.000Z', severity: 'info', pair: 'cell1', generation: 3,
    rxPackets: 100000, txPackets: 99000, dropped: 1000, flowsActive: 12 },
};

/** The fields an event must carry in structured data: all but type, time, severity. */
function expectedFields(e: ExportRecord): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(e)) {
    if (k === 'type' || k === 'time' || k === 'severity' || v === undefined) continue;
    out.set(k, Array.isArray(v) ? v.join(',') : typeof v === 'object' && v !== null ? Object.entries(v).map(([name, n]) => `${name}:${n}`).join(',') : String(v));
  }
  return out;
}

// ---- tests ------------------------------------------------------------------------------------

t.test('every event type has a sample', async (t) => {
  t.same(Object.keys(samples).sort(), [...eventTypes].sort());
});

t.test('RFC 5424: header, structured data with every field, sentence', async (t) => {
  for (const event of Object.values(samples)) {
    const line = formatRfc5424(event, options);
    const p = parse5424(line);
    t.equal(p.pri, 16 * 8 + ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug'].indexOf(event.severity), `${event.type} PRI`);
    t.equal(p.version, 1);
    t.equal(p.timestamp, event.time);
    t.equal(p.hostname, 'gk-plant1.example');
    t.equal(p.appName, 'gatekeeper');
    t.equal(p.msgId, event.type);
    t.same([...p.sd.keys()], ['gk@32473'], `${event.type} one SD element`);
    t.same(Object.fromEntries(p.sd.get('gk@32473')!), Object.fromEntries(expectedFields(event)), `${event.type} fields`);
    t.equal(p.msg, describe(event));
    t.notMatch(line, /[\r\n]/);
  }
});

t.test('RFC 3164: header, sentence, key=value tail', async (t) => {
  for (const event of Object.values(samples)) {
    const p = parse3164(formatRfc3164(event, options));
    t.equal(p.pri, priority(event.severity));
    t.equal(p.month, 'Mar');
    t.equal(p.day, ' 1');
    t.equal(p.host, 'gk-plant1', 'no domain in an RFC 3164 host name');
    t.equal(p.tag, 'gatekeeper');
    t.equal(p.message, describe(event));
    t.equal(p.fields.get('type'), event.type);
    t.equal(p.fields.get('time'), event.time);
    for (const [k, v] of expectedFields(event)) t.equal(p.fields.get(k), v, `${event.type} ${k}`);
  }
});

t.test('CEF: header and standard keys', async (t) => {
  for (const event of Object.values(samples)) {
    const p = parseCef(formatCef(event, options));
    t.equal(p.version, 'CEF:0');
    t.same(p.header.slice(0, 3), ['Gatekeeper', 'gatekeeper', '0.1.0']);
    t.equal(p.signature, event.type);
    t.equal(p.severity, cefSeverity(event.severity));
    t.equal(p.ext.get('rt'), String(Date.parse(event.time)));
    t.equal(p.ext.get('msg'), describe(event));
    t.equal(p.ext.get('dvchost'), 'gk-plant1.example');
  }
  const deny = parseCef(formatCef(samples['deny.summary'], options)).ext;
  t.same(Object.fromEntries(deny), {
    rt: String(Date.parse('2026-03-01T10:00:10.000Z')), dvchost: 'gk-plant1.example', cs4Label: 'pair', cs4: 'cell1',
    src: '198.18.1.10', spt: '0', dst: '198.18.1.100', dpt: '502', proto: 'TCP',
    cs1Label: 'rule', cs1: 'default-deny', cs2Label: 'srcGroups', cs2: 'hmi', cs3Label: 'dstGroups', cs3: 'plc,line-1',
    act: 'deny', cnt: '1532', in: '98048', start: String(Date.parse('2026-03-01T10:00:00.000Z')), end: String(Date.parse('2026-03-01T10:00:10.000Z')),
    cs5Label: 'monitor', cs5: 'false', cs6Label: 'vlan', cs6: '0',
    msg: 'Denied 1532 packets tcp 198.18.1.10 (hmi) -> 198.18.1.100:502 (plc, line-1) by rule default-deny in 10 s on pair cell1',
  });
  const end = parseCef(formatCef(samples['flow.end'], options)).ext;
  t.equal(end.get('in'), '1200', 'CEF "in" is what the initiator sent');
  t.equal(end.get('out'), '900');
  t.equal(end.get('start'), String(Date.parse('2026-03-01T10:00:00.000Z')));
  t.equal(end.get('reason'), 'closed');
  const failed = parseCef(formatCef(samples['auth.login_failed'], options)).ext;
  t.equal(failed.get('suser'), 'mallory');
  t.equal(failed.get('src'), '198.18.0.66');
  t.equal(failed.get('outcome'), 'failure');
  const icmp = parseCef(formatCef({ ...samples['deny.summary'], proto: 'icmp', dstPort: 8 } as GatekeeperEvent, options)).ext;
  t.notOk(icmp.has('dpt'), 'no ports for ICMP');
});

t.test('sentences an analyst reads', async (t) => {
  const deny = { ...samples['deny.summary'], dstGroups: ['plc'], pair: undefined } as GatekeeperEvent;
  t.equal(describe(deny), 'Denied 1532 packets tcp 198.18.1.10 (hmi) -> 198.18.1.100:502 (plc) by rule default-deny in 10 s');
  t.equal(describe({ ...deny, action: 'reject' } as GatekeeperEvent), 'Rejected 1532 packets tcp 198.18.1.10 (hmi) -> 198.18.1.100:502 (plc) by rule default-deny in 10 s');
  t.match(describe({ ...deny, monitor: true } as GatekeeperEvent), /^Would have denied \(monitor mode\) 1532 packets/);
  t.equal(describe({ ...deny, src: '2001:2::10', dst: '2001:2::100', srcGroups: [], dstGroups: [] } as GatekeeperEvent),
    'Denied 1532 packets tcp 2001:2::10 -> [2001:2::100]:502 by rule default-deny in 10 s');
  t.equal(describe(samples['flow.end']), 'Flow ended (closed) tcp 198.18.1.10:51234 (hmi) -> 198.18.1.100:502 (plc, line-1) rule hmi-to-plc ' +
    'after 12.5 s: 10 packets / 1200 bytes out, 8 packets / 900 bytes in; requests read-holding-registers 6 on pair cell1');
  t.equal(describe(samples['ot.violation']), 'Refused and reset 3 modbus messages (write-single-register unit 1 address 40: function_not_allowed) ' +
    'tcp 198.18.1.10 (hmi) -> 198.18.1.100:502 (plc, line-1) by rule hmi-reads-plc in 8 s on pair cell1');
  t.equal(describe(samples['spoof.summary']), 'Dropped 4 ARP packets claiming 198.18.1.100 (plc, line-1) from MAC 02:00:00:00:00:66 on the ' +
    'outside port: the address is bound to 02:00:00:00:00:64; in 6 s on pair cell1');
  t.equal(describe({ ...samples['spoof.summary'], kind: 'ip', monitor: true, groups: [], count: 1 } as GatekeeperEvent),
    'Would have dropped (monitor mode) 1 packet claiming 198.18.1.100 from MAC 02:00:00:00:00:66 on the outside port: ' +
    'the address is bound to 02:00:00:00:00:64; in 6 s on pair cell1');
  const spoof = parseCef(formatCef(samples['spoof.summary'], options)).ext;
  t.same([spoof.get('src'), spoof.get('smac'), spoof.get('cs5Label'), spoof.get('cs5'), spoof.get('act'), spoof.get('cnt')],
    ['198.18.1.100', '02:00:00:00:00:66', 'boundMac', '02:00:00:00:00:64', 'drop', '4'], 'CEF: claimed address, real MAC, bound MAC');
  const moved = parseCef(formatCef(samples['asset.changed'], options)).ext;
  t.same([moved.get('src'), moved.get('smac'), moved.get('shost'), moved.get('cs5Label'), moved.get('cs5'), moved.get('cs2')],
    ['198.18.1.100', '02:00:00:00:00:66', 'plc-1', 'previousMac', '02:00:00:00:00:64', 'Siemens AG'], 'CEF: the moved address, its new and previous MAC');
  t.equal(parseCef(formatCef(samples['asset.up'], options)).ext.get('cn2'), '0.4', 'CEF: asset.up carries its round trip');
  t.equal(parseCef(formatCef(samples['learn.stop'], options)).ext.get('suser'), 'system', 'CEF: who ended learning');
  t.equal(describe(samples['policy.refused']), 'Policy refused (submitted by bob) with 2 errors, first: policy.yaml:12:7: unknown group "plcs"; the running policy stays');
  t.equal(describe(samples['auth.lockout']), 'User mallory locked out after repeated failed logins from 198.18.0.66');
  for (const event of Object.values(samples)) t.notMatch(describe(event), /\?|undefined|NaN|\[object/, `${event.type} sentence complete`);
});

t.test('escaping: RFC 5424 SD-PARAM ] " \\, CEF | \\ = and line breaks', async (t) => {
  const nasty = 'a]b"c\\d|e=f\ng';
  const event = { ...samples['flow.start'], rule: nasty, srcGroups: ['x]y', 'q"r'] } as GatekeeperEvent;
  const sd = parse5424(formatRfc5424(event, options)).sd.get('gk@32473')!;
  t.equal(sd.get('rule'), 'a]b"c\\d|e=f g', 'RFC 5424 round trip (line break as space)');
  t.equal(sd.get('srcGroups'), 'x]y,q"r');
  t.match(formatRfc5424(event, options), /rule="a\\]b\\"c\\\\d\|e=f g"/);
  const cef = parseCef(formatCef(event, options));
  t.equal(cef.ext.get('cs1'), nasty, 'CEF extension round trip keeps the line break as \\n');
  t.match(formatCef(event, options), /cs1=a]b"c\\\\d\|e\\=f\\ng /);
  const header = parseCef(formatCef(event, { ...options, version: '1|2\\3' }));
  t.equal(header.deviceVersion, '1|2\\3', 'CEF header escapes | and \\');
  t.equal(header.signature, 'flow.start');
  const bsd = parse3164(formatRfc3164(event, options));
  t.equal(bsd.fields.get('rule'), 'a]b"c\\d|e=f g', 'RFC 3164 quoted value round trip');
});

t.test('length limits: fields dropped from the end, never a broken line', async (t) => {
  const errors = Array.from({ length: 200 }, (_, i) => `policy.yaml:${i + 1}:1: unknown group "g${i}" — ünïcödé`);
  const big = { ...samples['policy.refused'], errors, author: 'ü'.repeat(3000) } as GatekeeperEvent;
  for (const maxBytes of [480, 2048, 8192]) {
    const line = formatRfc5424(big, { ...options, maxBytes });
    t.ok(Buffer.byteLength(line) <= maxBytes, `5424 ${Buffer.byteLength(line)} <= ${maxBytes}`);
    const p = parse5424(line);
    t.equal(p.sd.get('gk@32473')!.get('truncated'), 'true');
    t.notMatch(line, /\ufffd/, 'no split UTF-8 character');
    const cef = formatCef(big, { ...options, maxBytes });
    t.ok(Buffer.byteLength(cef) <= maxBytes, `CEF ${Buffer.byteLength(cef)} <= ${maxBytes}`);
    t.equal(parseCef(cef).signature, 'policy.refused');
    t.notMatch(cef, /\ufffd/);
  }
  const bsd = formatRfc3164(big, { ...options, maxBytes: 8192 });
  t.ok(Buffer.byteLength(bsd) <= 1024, 'RFC 3164 never above 1024 bytes');
  t.equal(parse3164(bsd).fields.get('truncated'), 'true');
  // The sentence itself is cut when even it does not fit; still valid UTF-8 and a valid header.
  t.equal(truncateUtf8('aü', 2), 'a');
  t.equal(truncateUtf8('aü', 3), 'aü');
  t.equal(truncateUtf8('a€b', 3), 'a');
});

t.test('severity mapping', async (t) => {
  t.equal(priority('emergency'), 128);
  t.equal(priority('warning'), 132);
  t.equal(priority('debug'), 135);
  t.same(['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug'].map((s) => cefSeverity(s as never)),
    [10, 9, 8, 7, 6, 4, 3, 1]);
  t.ok(atLeast('error', 'warning'));
  t.ok(atLeast('warning', 'warning'));
  t.notOk(atLeast('info', 'warning'));
});

t.test('bad input never throws and still gives a parseable line', async (t) => {
  const broken = [
    { type: 'deny.summary', time: 'not a date', severity: 'loud' },
    { type: 'flow.end', time: '2026-03-01T10:00:00Z', severity: 'info', srcGroups: 'hmi', durationMs: 'x' },
    { type: 'what.ever', time: 5, severity: 'info', nested: { a: 1 } },
  ] as unknown as ExportRecord[];
  for (const record of broken) {
    t.doesNotThrow(() => parse5424(formatRfc5424(record, options)));
    t.doesNotThrow(() => parse3164(formatRfc3164(record, options)));
    t.doesNotThrow(() => parseCef(formatCef(record, options)));
  }
  t.equal(parse5424(formatRfc5424(broken[0], options)).pri, 16 * 8 + 5, 'unknown severity sent as notice');
});
