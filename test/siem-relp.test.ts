// Event export over RELP to a real receiver, Debian's rsyslogd with imrelp: events arrive in order
// and none is lost across a receiver that is killed mid-stream (what it had not acknowledged is sent
// again, nothing else: only lines it wrote but never acknowledged can repeat, at most one window) and
// once across a management restart; a peer that does not
// speak RELP is an error, not a hang.

import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { GatekeeperEvent } from '../appliance/ipc/events';
import { EventExporter } from '../appliance/mgmt/siem/exporter';
import { RELP_WINDOW, RelpParser } from '../appliance/mgmt/siem/transport-relp';
import type { SyslogTarget } from '../appliance/mgmt/state/settings';
import { freePort, parse5424, Rsyslog, sleep, until } from './lib/rsyslog';

const log = pino({ level: 'error' });

function deny(seq: number): GatekeeperEvent {
  return {
    type: 'deny.summary', time: new Date().toISOString(), severity: 'warning', pair: 'cell1',
    src: '198.18.1.10', srcPort: 0, srcGroups: ['hmi'], dst: '198.18.1.100', dstPort: 502, dstGroups: ['plc'], proto: 'tcp', vlan: 0,
    rule: 'default-deny', action: 'deny', monitor: false, count: seq, bytes: 64 * seq,
    firstSeen: new Date(Date.now() - 10_000).toISOString(), lastSeen: new Date().toISOString(),
  };
}

const relpTarget = (port: number): SyslogTarget => ({
  name: 'relp', enabled: true, host: '127.0.0.1', port, transport: 'relp', format: 'rfc5424', minSeverity: 'debug', types: [],
});

function counts(lines: string[]): number[] {
  return lines.map(parse5424).filter((p) => p.msgId === 'deny.summary').map((p) => Number(p.sd.get('gk@32473')!.get('count')));
}

function stateDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gk-siem-relp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function receiver(t: Test): Promise<Rsyslog> {
  const rsyslog = new Rsyslog([{ name: 'relp', kind: 'relp', port: await freePort() }]);
  t.teardown(() => rsyslog.destroy());
  await rsyslog.start();
  return rsyslog;
}

function exporter(t: Test, dir: string): EventExporter {
  const exp = new EventExporter({ stateDir: dir, hostname: 'gk-test', version: '0.1.0', log });
  t.teardown(() => exp.close());
  return exp;
}

t.test('the parser reads rsyslog answers split anywhere and refuses garbage', async (t) => {
  const stream = Buffer.from('1 rsp 6 200 OK\n2 rsp 6 200 OK\n0 serverclose 0\n');
  for (let cut = 0; cut <= stream.length; cut++) {
    const parser = new RelpParser();
    const frames = [...parser.push(stream.subarray(0, cut)), ...parser.push(stream.subarray(cut))];
    t.same(frames.map((f) => `${f.txnr} ${f.command} ${f.data}`), ['1 rsp 200 OK', '2 rsp 200 OK', '0 serverclose '], `cut at ${cut}`);
  }
  t.throws(() => new RelpParser().push(Buffer.from('HTTP/1.1 400 Bad Request\r\n')), /malformed/);
  t.throws(() => new RelpParser().push(Buffer.from('1 rsp 2 OKX')), /trailer/);
});

t.test('receiver killed while lines are in flight: every event arrives, in order; only the unacknowledged window can repeat', async (t) => {
  const rsyslog = await receiver(t);
  const exp = exporter(t, stateDir(t));
  exp.configure([relpTarget(rsyslog.port('relp'))]);
  const total = 3000;
  // Publishing goes on while the receiver stops, so some lines are written but not yet acknowledged.
  const publishing = (async () => {
    for (let seq = 0; seq < total; seq++) {
      exp.publish(deny(seq + 1));
      if (seq % 50 === 49) await sleep(10);
    }
  })();
  await rsyslog.waitForLines('relp', 800);
  await rsyslog.kill();
  await publishing;
  await until(() => !exp.status()[0].connected, 5000);
  t.notOk(exp.status()[0].connected, 'status shows the target down');
  t.ok(exp.status()[0].spooled > 0, `spooled while down: ${exp.status()[0].spooled}`);
  await sleep(1500);
  await rsyslog.start();
  t.ok(await until(() => counts(rsyslog.lines('relp')).includes(total), 40_000), 'the last event arrived');
  await sleep(1000);
  const received = counts(rsyslog.lines('relp'));
  // SIGKILL can land after rsyslog wrote a line and before its acknowledgement left: those lines, at
  // most one RELP window, are sent again (a management restart, below, repeats none). Nothing is lost and
  // nothing outside that window repeats.
  const firsts = received.filter((n, i) => received.indexOf(n) === i);
  t.same(firsts, Array.from({ length: total }, (_, i) => i + 1), 'every event, in order of first arrival');
  const repeated = received.length - firsts.length;
  t.ok(repeated <= RELP_WINDOW, `repeated at most the unacknowledged window (${repeated} of at most ${RELP_WINDOW})`);
  t.equal(exp.status()[0].sent, total, 'sent counts acknowledged events');
  t.equal(exp.status()[0].spooled, 0);
});

t.test('a management restart sends what was not acknowledged, once', async (t) => {
  const rsyslog = await receiver(t);
  const dir = stateDir(t);
  const first = new EventExporter({ stateDir: dir, hostname: 'gk-test', version: '0.1.0', log });
  first.configure([relpTarget(rsyslog.port('relp'))]);
  for (let seq = 1; seq <= 500; seq++) first.publish(deny(seq));
  await first.close();
  const second = exporter(t, dir);
  second.configure([relpTarget(rsyslog.port('relp'))]);
  t.ok(await until(() => counts(rsyslog.lines('relp')).includes(500), 20_000), 'the last event arrived');
  await sleep(1000);
  t.same(counts(rsyslog.lines('relp')), Array.from({ length: 500 }, (_, i) => i + 1), 'each event once, in order');
});

t.test('a receiver that does not answer RELP is reported, not waited on forever', async (t) => {
  const silent = createServer((socket) => socket.on('data', () => undefined));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => silent.close());
  const port = (silent.address() as { port: number }).port;
  const garbage = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
  t.teardown(() => garbage.close());
  const exp = exporter(t, stateDir(t));
  exp.configure([{ ...relpTarget((garbage.address() as { port: number }).port), name: 'garbage' }]);
  exp.publish(deny(1));
  t.ok(await until(() => /RELP|closed/.test(exp.status()[0].lastError ?? ''), 5000), `a non-RELP answer is an error: ${exp.status()[0].lastError}`);
  t.notOk(exp.status()[0].connected);
  t.equal(exp.status()[0].spooled, 1, 'the event waits in the spool');
  t.ok(port > 0);
});
