// The local event log: pino JSON lines, batched writes, rotation bounded by total size.

import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { GatekeeperEvent } from '../appliance/ipc/events';
import { EventExporter } from '../appliance/mgmt/siem/exporter';
import { LocalLog } from '../appliance/mgmt/siem/local-log';
import { Spool } from '../appliance/mgmt/siem/spool';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gk-siem-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function login(i: number): GatekeeperEvent {
  return { type: 'auth.login', time: new Date(Date.UTC(2026, 2, 1, 10, 0, 0, i)).toISOString(), severity: 'info', user: `user${i}`, from: '198.18.0.5' };
}

t.test('every event is a JSON line with its fields, level and sentence', async (t) => {
  const dir = tempDir(t);
  const exporter = new EventExporter({ stateDir: dir, hostname: 'gk', version: '0.1.0', log: pino({ level: 'silent' }) });
  exporter.publish(login(1));
  exporter.publish({ type: 'link.down', time: '2026-03-01T10:00:00.000Z', severity: 'error', pair: 'cell1', port: 'eth2', side: 'outside' });
  t.notOk(readdirSync(join(dir, 'log')).some((f) => statSync(join(dir, 'log', f)).size > 0), 'nothing written yet: writes are batched');
  await exporter.close();
  const lines = readFileSync(exporter.localLogPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.length, 2);
  t.match(lines[0], { level: 'info', type: 'auth.login', user: 'user1', from: '198.18.0.5', msg: 'User user1 logged in from 198.18.0.5' });
  t.match(lines[1], { level: 'error', type: 'link.down', severity: 'error', msg: 'Link down on outside port eth2 on pair cell1' });
});

t.test('rotation keeps the files under the total bound', async (t) => {
  const dir = tempDir(t);
  const maxBytes = 64 * 1024;
  const log = new LocalLog(dir, { maxBytes, files: 4 }, (err) => t.fail(err.message));
  for (let i = 0; i < 5000; i++) {
    log.write(login(i));
    if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  log.close();
  const files = readdirSync(join(dir, 'log')).sort();
  t.same(files, ['events.log', 'events.log.1', 'events.log.2', 'events.log.3'], 'current file and 3 rotated ones, no more');
  const sizes = files.map((f) => statSync(join(dir, 'log', f)).size);
  const total = sizes.reduce((a, b) => a + b, 0);
  t.ok(total <= maxBytes * 1.1, `total ${total} bytes within ${maxBytes} (+ one batch)`);
  const last = readFileSync(join(dir, 'log', 'events.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(last[last.length - 1].user, 'user4999', 'the newest event is in the current file');
  const oldest = readFileSync(join(dir, 'log', 'events.log.3'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.ok(Number(oldest[0].user.slice(4)) > 0, 'the oldest events went first');
  t.ok(oldest.every((e, i) => i === 0 || Number(e.user.slice(4)) === Number(oldest[i - 1].user.slice(4)) + 1), 'in order');
});

t.test('the local log and the SIEM spool are private: directories 0700, files 0600', async (t) => {
  const dir = tempDir(t);
  const mode = (path: string) => statSync(path).mode & 0o777;
  const log = new LocalLog(dir, {}, (err) => t.fail(err.message));
  log.write(login(1));
  log.close();
  t.equal(mode(join(dir, 'log')), 0o700, 'log directory');
  t.equal(mode(join(dir, 'log', 'events.log')), 0o600, 'log file');

  const spoolDir = join(dir, 'siem-spool', 'target');
  const spool = new Spool(spoolDir, 1 << 20, (err) => t.fail(err.message));
  spool.push('<13>1 one');
  spool.flush();
  spool.requeue(['<13>1 again']);
  spool.close();
  t.equal(mode(join(dir, 'siem-spool')), 0o700, 'spool directory');
  t.equal(mode(spoolDir), 0o700, 'target spool directory');
  const segments = readdirSync(spoolDir);
  t.equal(segments.length, 2, 'an appended and a requeued segment');
  for (const name of segments) t.equal(mode(join(spoolDir, name)), 0o600, `segment ${name}`);
});
