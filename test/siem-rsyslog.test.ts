// Event export against a real SIEM receiver: Debian's rsyslogd on loopback (UDP, TCP with octet
// counting, TLS with a CA-verified server and a client certificate). Lines are read back from
// rsyslog's files and parsed with the test's own RFC 5424 / CEF parsers.

import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { GatekeeperEvent, Severity } from '../appliance/ipc/events';
import { EventExporter } from '../appliance/mgmt/siem/exporter';
import type { SyslogTarget } from '../appliance/mgmt/state/settings';
import { freePort, makeTlsFiles, parse3164, parse5424, parseCef, Rsyslog, sleep, until } from './lib/rsyslog';
import type { Input, TlsFiles } from './lib/rsyslog';

const log = pino({ level: 'error' });
const tlsFiles: TlsFiles = makeTlsFiles();
t.teardown(() => rmSync(tlsFiles.dir, { recursive: true, force: true }));

/** A deny summary whose count is its sequence number, so order and loss are visible. */
function deny(seq: number, rule = 'default-deny', severity: Severity = 'warning'): GatekeeperEvent {
  return {
    type: 'deny.summary', time: new Date().toISOString(), severity, pair: 'cell1',
    src: '198.18.1.10', srcPort: 0, srcGroups: ['hmi'], dst: '198.18.1.100', dstPort: 502, dstGroups: ['plc'], proto: 'tcp', vlan: 0,
    rule, action: 'deny', monitor: false, count: seq, bytes: 64 * seq,
    firstSeen: new Date(Date.now() - 10_000).toISOString(), lastSeen: new Date().toISOString(),
  };
}

function target(name: string, port: number, transport: SyslogTarget['transport'], extra: Partial<SyslogTarget> = {}): SyslogTarget {
  return {
    name, enabled: true, host: '127.0.0.1', port, transport, format: 'rfc5424', minSeverity: 'debug', types: [],
    ...(transport === 'tls' ? {
      tls: { ca: readFileSync(tlsFiles.caCert, 'utf8'), cert: readFileSync(tlsFiles.clientCert, 'utf8'),
        key: readFileSync(tlsFiles.clientKey, 'utf8'), serverName: 'localhost' },
    } : {}),
    ...extra,
  };
}

function stateDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gk-siem-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function receiver(t: Test, kinds: [string, Input['kind']][]): Promise<Rsyslog> {
  const inputs: Input[] = [];
  for (const [name, kind] of kinds) inputs.push({ name, kind, port: await freePort() });
  const rsyslog = new Rsyslog(inputs, tlsFiles);
  t.teardown(() => rsyslog.destroy());
  await rsyslog.start();
  return rsyslog;
}

function exporter(t: Test, dir: string, maxSpoolBytes?: number): EventExporter {
  const exp = new EventExporter({ stateDir: dir, hostname: 'gk-test', version: '0.1.0', log, maxSpoolBytes });
  t.teardown(() => exp.close());
  return exp;
}

/** The gk@32473 count field of each RFC 5424 line with the given MSGID. */
function counts(lines: string[], type = 'deny.summary'): number[] {
  return lines.map(parse5424).filter((p) => p.msgId === type).map((p) => Number(p.sd.get('gk@32473')!.get('count')));
}

t.test('UDP, TCP and TLS deliver RFC 5424, and CEF and RFC 3164 targets, with the right fields', async (t) => {
  const rsyslog = await receiver(t, [['udp', 'udp'], ['tcp', 'tcp'], ['tls', 'tls'], ['cef', 'tcp'], ['bsd', 'udp']]);
  const exp = exporter(t, stateDir(t));
  exp.configure([
    target('udp', rsyslog.port('udp'), 'udp'),
    target('tcp', rsyslog.port('tcp'), 'tcp'),
    target('tls', rsyslog.port('tls'), 'tls'),
    target('cef', rsyslog.port('cef'), 'tcp', { format: 'cef' }),
    target('bsd', rsyslog.port('bsd'), 'udp', { format: 'rfc3164' }),
  ]);
  for (let i = 1; i <= 20; i++) exp.publish(deny(i));
  for (const name of ['udp', 'tcp', 'tls']) {
    const lines = await rsyslog.waitForLines(name, 20);
    t.same(counts(lines), Array.from({ length: 20 }, (_, i) => i + 1), `${name}: 20 lines in order`);
    const first = parse5424(lines[0]);
    t.equal(first.pri, 16 * 8 + 4, `${name}: local0.warning`);
    t.equal(first.appName, 'gatekeeper');
    t.equal(first.hostname, 'gk-test');
    t.equal(first.msgId, 'deny.summary');
    const sd = first.sd.get('gk@32473')!;
    t.equal(sd.get('src'), '198.18.1.10');
    t.equal(sd.get('dst'), '198.18.1.100');
    t.equal(sd.get('dstPort'), '502');
    t.equal(sd.get('rule'), 'default-deny');
    t.equal(sd.get('srcGroups'), 'hmi');
    t.match(first.msg, /^Denied 1 packet tcp 198\.18\.1\.10 \(hmi\) -> 198\.18\.1\.100:502 \(plc\) by rule default-deny in 10 s on pair cell1$/);
  }
  const cef = (await rsyslog.waitForLines('cef', 20)).map(parseCef);
  t.same(cef.map((c) => Number(c.ext.get('cnt'))), Array.from({ length: 20 }, (_, i) => i + 1), 'cef: 20 lines in order');
  t.equal(cef[0].signature, 'deny.summary');
  t.equal(cef[0].severity, 6);
  t.equal(cef[0].ext.get('src'), '198.18.1.10');
  t.equal(cef[0].ext.get('dpt'), '502');
  t.equal(cef[0].ext.get('act'), 'deny');
  t.equal(cef[0].ext.get('cs1'), 'default-deny');
  const bsd = (await rsyslog.waitForLines('bsd', 20)).map(parse3164);
  t.same(bsd.map((b) => Number(b.fields.get('count'))), Array.from({ length: 20 }, (_, i) => i + 1), 'rfc3164: 20 lines in order');
  t.equal(bsd[0].pri, 16 * 8 + 4);
  t.equal(bsd[0].fields.get('type'), 'deny.summary');
  t.equal(bsd[0].fields.get('rule'), 'default-deny');
  t.match(bsd[0].message, /^Denied 1 packet tcp 198\.18\.1\.10 \(hmi\) -> 198\.18\.1\.100:502/);
  await until(() => exp.status().every((s) => s.sent === 20), 5000);
  for (const s of exp.status()) {
    t.equal(s.sent, 20, `${s.name} status: sent`);
    t.ok(s.connected, `${s.name} status: connected`);
    t.equal(s.spooled, 0);
  }
});

t.test('filter by severity and by event type', async (t) => {
  const rsyslog = await receiver(t, [['tcp', 'tcp']]);
  const exp = exporter(t, stateDir(t));
  exp.configure([target('tcp', rsyslog.port('tcp'), 'tcp', { minSeverity: 'warning', types: ['deny.summary', 'mode.change'] })]);
  exp.publish(deny(1, 'r', 'info'));  // below warning
  exp.publish(deny(2, 'r', 'error'));  // sent
  exp.publish({ type: 'auth.login_failed', time: new Date().toISOString(), severity: 'warning', user: 'x', from: '198.18.0.9' }); // type not chosen
  exp.publish({ type: 'mode.change', time: new Date().toISOString(), severity: 'warning', from: 'monitor', to: 'enforce', author: 'alice' }); // sent
  exp.publish(deny(3, 'r', 'warning'));  // sent
  const lines = await rsyslog.waitForLines('tcp', 3);
  await sleep(300);
  t.same(rsyslog.lines('tcp').map((l) => parse5424(l).msgId), ['deny.summary', 'mode.change', 'deny.summary']);
  t.same(counts(lines), [2, 3]);
  t.equal(exp.status()[0].filtered, 2);
});

t.test('receiver down mid-stream: spooled, then delivered in order on return', async (t) => {
  const rsyslog = await receiver(t, [['tcp', 'tcp']]);
  const exp = exporter(t, stateDir(t));
  exp.configure([target('tcp', rsyslog.port('tcp'), 'tcp')]);
  const total = 3000;
  let seq = 0;
  for (; seq < 1000; seq++) {
    exp.publish(deny(seq + 1));
    if (seq % 100 === 99) await sleep(20);
  }
  await rsyslog.waitForLines('tcp', 1000);
  await rsyslog.stop();
  const publishedWhileUp = seq;
  for (; seq < total; seq++) {
    exp.publish(deny(seq + 1));
    if (seq % 100 === 99) await sleep(20);
  }
  await until(() => !exp.status()[0].connected, 5000);
  const down = exp.status()[0];
  t.notOk(down.connected, 'status shows the target down');
  t.ok(down.spooled >= total - publishedWhileUp, `spooled while down: ${down.spooled}`);
  t.match(down.lastError ?? '', /closed|ECONNREFUSED|ECONNRESET|EPIPE/);
  await sleep(1500); // let the spool reach the disk
  await rsyslog.start();
  // Duplicates make the line count useless as a finish line: wait for the last event instead.
  await until(() => counts(rsyslog.lines('tcp')).includes(total), 40_000);
  await sleep(500);
  const received = counts(rsyslog.lines('tcp'));
  const seen = new Set<number>();
  const firstOccurrences: number[] = [];
  const duplicates: number[] = [];
  for (const c of received) {
    if (seen.has(c)) duplicates.push(c);
    else { seen.add(c); firstOccurrences.push(c); }
  }
  t.same(firstOccurrences, Array.from({ length: total }, (_, i) => i + 1), 'every event arrived, in order');
  t.ok(duplicates.every((d) => d <= publishedWhileUp), 'only lines written before the loss were sent twice (the resend window)');
  t.equal(exp.status()[0].droppedFromSpool, 0);
  t.comment(`duplicates after the outage: ${duplicates.length} (resend window); status ${JSON.stringify(exp.status()[0])}`);
});

t.test('a tiny spool drops the oldest and counts them; a restart of management keeps the spool', async (t) => {
  const port = await freePort(); // nothing listens yet
  const dir = stateDir(t);
  const first = new EventExporter({ stateDir: dir, hostname: 'gk-test', version: '0.1.0', log, maxSpoolBytes: 32 * 1024 });
  first.configure([target('tcp', port, 'tcp')]);
  const total = 2000;
  for (let i = 1; i <= total; i++) first.publish(deny(i));
  await sleep(1200);
  const before = first.status()[0];
  t.ok(before.droppedFromSpool > 0, `oldest dropped: ${before.droppedFromSpool}`);
  t.ok(before.spoolBytes <= 32 * 1024, `spool within its bound: ${before.spoolBytes} bytes`);
  t.equal(before.spooled + before.droppedFromSpool, total, 'every event is either spooled or counted as dropped');
  await first.close();

  // Management restarts: a new exporter on the same state directory picks the spool up.
  const rsyslog = new Rsyslog([{ name: 'tcp', kind: 'tcp', port }]);
  t.teardown(() => rsyslog.destroy());
  await rsyslog.start();
  const second = exporter(t, dir, 32 * 1024);
  second.configure([target('tcp', port, 'tcp')]);
  t.equal(second.status()[0].spooled, before.spooled, 'the spool survived the restart');
  await until(() => second.status()[0].spooled === 0, 10_000);
  const received = counts(await rsyslog.waitForLines('tcp', before.spooled));
  t.same(received, Array.from({ length: before.spooled }, (_, i) => total - before.spooled + i + 1),
    'exactly the newest events arrive, in order, none twice');
});

t.test('send a test message: ok through a live target, a clear error otherwise', async (t) => {
  const rsyslog = await receiver(t, [['udp', 'udp'], ['tcp', 'tcp'], ['tls', 'tls']]);
  const dead = await freePort();
  const exp = exporter(t, stateDir(t));
  const wrongCa = { ...target('tls', rsyslog.port('tls'), 'tls').tls!, ca: readFileSync(tlsFiles.clientCert, 'utf8') };
  exp.configure([
    target('udp', rsyslog.port('udp'), 'udp'),
    target('tcp', rsyslog.port('tcp'), 'tcp'),
    target('tls', rsyslog.port('tls'), 'tls'),
    target('tcp-down', dead, 'tcp'),
    target('udp-down', dead, 'udp'),
    target('tls-wrong-ca', rsyslog.port('tls'), 'tls', { tls: wrongCa }),
    target('tls-wrong-name', rsyslog.port('tls'), 'tls', { tls: { ...wrongCa, ca: readFileSync(tlsFiles.caCert, 'utf8'), serverName: 'plc.example' } }),
  ]);
  for (const name of ['udp', 'tcp', 'tls']) {
    t.same(await exp.sendTest(name), { ok: true }, `${name}: ok`);
    const lines = await rsyslog.waitForLines(name, 1);
    const test = lines.map(parse5424).find((p) => p.msgId === 'test');
    t.ok(test, `${name}: the test line arrived`);
    t.equal(test?.msg, `Test message from the gatekeeper to syslog target ${name}`);
  }
  const tcpDown = await exp.sendTest('tcp-down');
  t.equal(tcpDown.ok, false);
  t.match(tcpDown.error, new RegExp(`TCP 127\\.0\\.0\\.1:${dead}: TCP connection to 127\\.0\\.0\\.1:${dead} failed: .*ECONNREFUSED`));
  const udpDown = await exp.sendTest('udp-down');
  t.equal(udpDown.ok, false);
  t.match(udpDown.error, /ECONNREFUSED/);
  const badCa = await exp.sendTest('tls-wrong-ca');
  t.equal(badCa.ok, false);
  t.match(badCa.error, /TLS connection .* failed: .*(certificate|issuer)/i);
  const badName = await exp.sendTest('tls-wrong-name');
  t.equal(badName.ok, false);
  t.match(badName.error, /plc\.example/);
  t.same(await exp.sendTest('nope'), { ok: false, error: 'no syslog target named nope' });
});

t.test('publish never blocks: a 100k-event burst, every event delivered over TCP in order', async (t) => {
  const rsyslog = await receiver(t, [['tcp', 'tcp']]);
  const exp = exporter(t, stateDir(t));
  exp.configure([target('tcp', rsyslog.port('tcp'), 'tcp')]);
  await until(() => exp.status()[0].connected, 5000);
  const total = 100_000;
  const events = Array.from({ length: total }, (_, i) => deny(i + 1));
  const perCall: number[] = new Array(total);
  const started = process.hrtime.bigint();
  for (let i = 0; i < total; i++) {
    const before = process.hrtime.bigint();
    exp.publish(events[i]);
    perCall[i] = Number(process.hrtime.bigint() - before) / 1000;
  }
  const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
  perCall.sort((a, b) => a - b);
  const p = (q: number) => perCall[Math.min(total - 1, Math.floor(q * total))].toFixed(1);
  t.comment(`publish(): ${(totalMs * 1000 / total).toFixed(1)} µs/call mean, p50 ${p(0.5)} µs, p99 ${p(0.99)} µs, p99.9 ${p(0.999)} µs, max ${perCall[total - 1].toFixed(0)} µs (${totalMs.toFixed(0)} ms for ${total})`);
  // Thresholds leave room for a loaded CI box; a call waiting for a disk flush or the network would
  // take milliseconds every time and fail the p99.
  t.ok(Number(p(0.99)) < 1000, 'p99 per call under 1 ms');
  t.ok(totalMs / total < 500, 'mean under 500 µs');
  const lines = await rsyslog.waitForLines('tcp', total, 60_000);
  const received = counts(lines);
  t.equal(received.length, total, 'all delivered');
  t.ok(received.every((c, i) => c === i + 1), 'in order');
});
