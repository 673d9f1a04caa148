// Disk full: management's state directory on a small tmpfs that a filler file fills up. Changes
// through the API fail with 507 naming the file and ENOSPC, the previous state files stay intact
// (no temp file, no partial line), the active policy stays active (in the store and on the hub
// double), logins still work, the SIEM spool of a target that is down stops growing and counts
// what it drops, and nothing crashes; once the filler is gone, everything works again. Needs root
// (mount); the tmpfs is always unmounted at the end.

import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, fstatSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import t, { type Test } from 'tap';
import type { GatekeeperEvent } from '../appliance/ipc/events';
import { buildServer } from '../appliance/mgmt/server';
import { EventExporter } from '../appliance/mgmt/siem/exporter';
import { Spool } from '../appliance/mgmt/siem/spool';
import { appendLineDurable, StateWriteError } from '../appliance/mgmt/state/atomic';
import { labPolicyPath } from '../appliance/paths';
import { writeFileAtomic } from '../appliance/wire/atomic-file';
import { FakeHub, freePort, seedUsers, USERS, type Login } from './lib/mgmt-fixture';

const policyV1 = readFileSync(labPolicyPath, 'utf8');
const policyV2 = policyV1.replace('service: tcp/8081', 'service: tcp/8082');
const [admin, operator] = USERS;
const PAGE = 4096;

/**
 * A 2 MiB tmpfs at a fresh directory, unmounted (and removed) in teardown, after `close` (whatever
 * still has files open on it).
 */
function smallDisk(t: Test, close: () => Promise<void> = async () => undefined): string {
  const dir = mkdtempSync(join(tmpdir(), 'gk-diskfull-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dir]);
  t.teardown(async () => {
    await close();
    try {
      execFileSync('umount', [dir]);
    } catch {
      execFileSync('umount', ['-l', dir]); // something still holds it open: detach it anyway
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the disk with `file` until a write fails with ENOSPC; returns the open fd. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x55);
  for (;;) {
    try {
      writeSync(fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      return fd;
    }
  }
}

const isTemp = (name: string) => name.endsWith('.tmp');

t.test('a write that only partly fits leaves no partial file or line', { skip: process.getuid?.() !== 0 && 'needs root (mount)' }, async (t) => {
  let spool: Spool | undefined;
  const disk = smallDisk(t, async () => {
    spool?.close();
    await new Promise((r) => setTimeout(r, 200)); // its last fsync runs in the background
  });
  const audit = join(disk, 'audit.jsonl');
  // One page less 50 bytes: the next line starts in this page and cannot finish.
  const lines = `${'{"n":1}\n'.repeat((PAGE - 50) / 8)}`.slice(0, PAGE - 50 - 1) + '\n';
  writeFileSync(audit, lines);
  const target = join(disk, 'settings.json');
  writeFileAtomic(target, 'old settings\n');
  spool = new Spool(join(disk, 'spool'), 1 << 20, () => undefined);
  for (let i = 0; i < 10; i++) spool.push(`before ${i}`);
  spool.flush();

  const filler = fill(join(disk, 'filler'));
  let appendError: unknown;
  try {
    appendLineDurable(audit, `{"line":"${'x'.repeat(200)}"}`);
  } catch (err) {
    appendError = err;
  }
  t.type(appendError, StateWriteError, 'the append fails');
  t.equal((appendError as StateWriteError).code, 'ENOSPC', 'with ENOSPC');
  t.equal(readFileSync(audit, 'utf8'), lines, 'and the audit file is as it was: no partial line');

  // Exactly one free page: a 3-page file gets one page written, then ENOSPC.
  ftruncateSync(filler, fstatSync(filler).size - PAGE);
  let thrown: unknown;
  try {
    writeFileAtomic(target, 'n'.repeat(3 * PAGE));
  } catch (err) {
    thrown = err;
  }
  t.equal((thrown as NodeJS.ErrnoException | undefined)?.code, 'ENOSPC', 'the atomic write fails with ENOSPC, not a short file');
  t.equal(readFileSync(target, 'utf8'), 'old settings\n', 'the previous file is intact');
  t.same(readdirSync(disk).filter(isTemp), [], 'no temp file left');

  // The spool's segment has room for part of the next chunk only.
  for (let i = 0; i < 200; i++) spool.push(`after ${i} ${'y'.repeat(100)}`);
  spool.flush();
  const [segment] = readdirSync(join(disk, 'spool'));
  const text = readFileSync(join(disk, 'spool', segment), 'utf8');
  t.ok(text.endsWith('\n'), 'the segment ends on a whole line');
  t.equal(text.split('\n').length - 1, spool.records, 'and holds exactly the lines it counts');
  t.equal(spool.droppedDiskFull + spool.records, 210, 'every line is either spooled or counted as dropped for the full disk');
  t.ok(spool.diskFull && spool.droppedDiskFull > 0, `${spool.droppedDiskFull} lines dropped, the spool says the disk is full`);
  closeSync(filler);
});

t.test('a full state disk: clear errors, state intact, spool stops and resumes', { skip: process.getuid?.() !== 0 && 'needs root (mount)' }, async (t) => {
  let app: FastifyInstance | undefined;
  let exporter: EventExporter | undefined;
  const dir = smallDisk(t, async () => {
    await app?.close();
    await exporter?.close();
    await new Promise((r) => setTimeout(r, 200)); // the spool's last fsync runs in the background
  });
  await seedUsers(dir);
  const log: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(line) });
  const hub = new FakeHub();
  exporter = new EventExporter({ stateDir: dir, hostname: 'gk-test', version: '0.1.0', log: logger });
  const server = await buildServer({ stateDir: dir, http: true, hub, events: exporter, log: logger });
  app = server;
  await server.ready();

  const call = async (as: Login | undefined, method: string, url: string, body?: unknown) => {
    const headers = as ? { cookie: as.cookie, 'x-csrf-token': as.csrfToken } : {};
    const res = await server.inject({ method: method as 'GET', url, headers, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, json: res.headers['content-type']?.toString().startsWith('application/json') ? res.json() : res.body };
  };
  const login = async (user: { name: string; password: string }) => {
    const res = await server.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: user.name, password: user.password } });
    t.equal(res.statusCode, 200, `${user.name} logs in`);
    return { cookie: String(res.headers['set-cookie']).split(';')[0], csrfToken: (res.json() as { csrfToken: string }).csrfToken };
  };
  let n = 0;
  const emit = (count: number) => {
    for (let i = 0; i < count; i++) {
      hub.emit({ type: 'link.up', time: new Date().toISOString(), severity: 'notice', pair: 'pair0', port: `inside${n++}`, side: 'inside' } as GatekeeperEvent);
    }
  };
  const spoolStatus = async (as: Login) => (await call(as, 'GET', '/api/v1/settings/syslog/status')).json.targets[0];
  const flushed = () => new Promise((r) => setTimeout(r, 1500)); // the spool writes once a second
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');

  const adm = await login(admin);
  t.equal((await call(adm, 'POST', '/api/v1/policy/apply', { text: policyV1 })).status, 200, 'v1 applied');
  const v1Hash = hub.active?.hash;
  // The SIEM is down: nothing listens on the port, so events spool.
  const siem = { name: 'siem', enabled: true, host: '127.0.0.1', port: await freePort(), transport: 'tcp', format: 'rfc5424',
    minSeverity: 'info', types: [] };
  t.equal((await call(adm, 'PUT', '/api/v1/settings/syslog', { targets: [siem] })).status, 200, 'SIEM target set');
  emit(50);
  await flushed();
  const spooling = await spoolStatus(adm);
  t.ok(spooling.spoolBytes > 0 && spooling.spoolDiskFull === false, `spooling (${spooling.spoolBytes} bytes)`);

  const before = { settings: read('settings.json'), users: read('users.json'), active: read('active.json') };
  const filler = join(dir, 'filler');
  // The disk fills while an apply waits for the dataplanes: they commit, management cannot store it.
  let open!: () => void;
  hub.applyGate = new Promise((resolve) => (open = resolve));
  const racing = call(adm, 'POST', '/api/v1/policy/apply', { text: policyV2 });
  while (hub.applied.length < 2) await new Promise((r) => setTimeout(r, 5));
  closeSync(fill(filler));
  open();
  const raced = await racing;
  hub.applyGate = null;
  t.equal(raced.status, 507, 'an apply that cannot be stored: 507');
  t.equal(raced.json.error, 'policy could not be stored, could not write 2.json in the state directory: the disk is full (ENOSPC); ' +
    'the previous policy is being restored; free space on the state disk and try again');
  t.equal(hub.active?.hash, v1Hash, 'and the dataplanes are given v1 again');

  const settings = await call(adm, 'PUT', '/api/v1/settings/session', { sessionTimeoutMin: 45 });
  t.equal(settings.status, 507, 'a settings change: 507 Insufficient Storage');
  t.same(settings.json, { error: 'could not write settings.json in the state directory: the disk is full (ENOSPC); free space on the state disk and try again' });
  const user = await call(adm, 'POST', '/api/v1/users', { name: 'newbie', role: 'viewer', password: 'newbie-password-1' });
  t.equal(user.status, 507, 'a user add: 507');
  t.match(user.json.error, /^could not write users\.json in the state directory: the disk is full \(ENOSPC\)/);
  const asked = hub.applied.length;
  const apply = await call(adm, 'POST', '/api/v1/policy/apply', { text: policyV2 });
  t.equal(apply.status, 507, 'a policy apply on the full disk: 507');
  t.equal(apply.json.error, 'could not write 2.json in the state directory: the disk is full (ENOSPC); free space on the state disk and try again');
  t.equal(hub.applied.length, asked, 'refused before any dataplane is asked: the running policy is untouched');

  t.same({ settings: read('settings.json'), users: read('users.json'), active: read('active.json') }, before, 'the state files are as they were');
  t.same(readdirSync(dir).filter(isTemp), [], 'no temp file left');
  t.same(readdirSync(join(dir, 'policies')), ['1.json'], 'no half-stored version');
  const active = (await call(adm, 'GET', '/api/v1/policy')).json;
  t.match(active, { version: 1, text: policyV1 }, 'the API still shows v1 as active');
  t.equal(hub.active?.hash, v1Hash, 'and the hub still has v1');
  t.equal((await call(adm, 'GET', '/api/v1/settings')).json.sessionTimeoutMin, 30, 'the refused setting is not half applied');
  const op = await login(operator);
  t.ok(log.some((l) => l.includes('not written: the state disk is full')), 'a login on the full disk works, its records only logged');

  // The SIEM spool stops growing at ENOSPC and counts the dropped events.
  emit(2000);
  await flushed();
  const full1 = await spoolStatus(op);
  t.equal(full1.spoolDiskFull, true, 'the spool says the disk is full');
  t.ok(full1.droppedDiskFull > 0, `${full1.droppedDiskFull} events dropped for the full disk`);
  emit(1000);
  await flushed();
  const full2 = await spoolStatus(op);
  t.equal(full2.spoolBytes, full1.spoolBytes, `the spool stopped growing (${full2.spoolBytes} bytes)`);
  t.equal(full2.droppedDiskFull - full1.droppedDiskFull, 1000, 'every further event is counted as dropped');
  t.equal(full2.droppedFromSpool, 0, 'none counted as dropped for the spool bound');
  t.equal(log.filter((l) => l.includes('syslog spool: the disk is full')).length, 1, 'one log line, not one per event');
  const metrics = (await call(adm, 'GET', '/metrics')).json as string;
  t.match(metrics, /gatekeeper_mgmt_state_write_errors_total\{code="ENOSPC"\} 4\n/, 'the four refused changes are counted');
  t.match(metrics, /gatekeeper_mgmt_event_store_errors_total [1-9]\d*\n/, 'events the event log could not store are counted');
  t.equal(log.filter((l) => l.includes('could not store an event')).length, 1, 'and logged once');
  t.equal(log.filter((l) => l.includes('local event log write failed')).length, 1, 'the local event log says so once');

  // Room again: everything works, and the spool resumes.
  rmSync(filler);
  t.equal((await call(adm, 'PUT', '/api/v1/settings/session', { sessionTimeoutMin: 45 })).status, 200, 'the settings change now works');
  t.match(JSON.parse(read('settings.json')), { sessionTimeoutMin: 45 });
  t.equal((await call(adm, 'POST', '/api/v1/users', { name: 'newbie', role: 'viewer', password: 'newbie-password-1' })).status, 201,
    'so does the user add');
  t.match((await call(adm, 'POST', '/api/v1/policy/apply', { text: policyV2 })).json, { version: 2 }, 'and the apply');
  t.equal(hub.active?.text, policyV2, 'v2 runs');
  emit(50);
  await flushed();
  const resumed = await spoolStatus(adm);
  t.equal(resumed.spoolDiskFull, false, 'the spool writes again');
  t.ok(resumed.spoolBytes > full2.spoolBytes, `and grows again (${resumed.spoolBytes} bytes)`);
  t.equal(resumed.droppedDiskFull, full2.droppedDiskFull, 'nothing more dropped');
  t.ok(log.some((l) => l.includes('spooling resumed')), 'and says so');
  t.ok(log.some((l) => l.includes('events are stored again')), 'the event log too');
  t.ok(log.some((l) => l.includes('local event log written again')), 'and the local event log');
  for (const line of read('audit.jsonl').trimEnd().split('\n')) JSON.parse(line); // throws on a torn line
  t.pass('every audit line is whole');
});
