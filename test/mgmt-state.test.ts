// Management state: atomic writes, crash recovery, policy history and rollback, the apply
// transaction's failure path, the event store, and a restart that keeps everything.

import { chownSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import * as fs from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { GatekeeperEvent } from '../appliance/ipc/events';
import { EventLog } from '../appliance/mgmt/events-log';
import { writeFileAtomic } from '../appliance/wire/atomic-file';
import { AUDIT_MEMORY_DIFF_CHARS, StateStore } from '../appliance/mgmt/state/store';
import { labPolicyPath } from '../appliance/paths';
import { FakeHub, seedUsers, startTestServer, tempStateDir, USERS } from './lib/mgmt-fixture';

const policyV1 = readFileSync(labPolicyPath, 'utf8');
const policyV2 = policyV1.replace('service: tcp/8081', 'service: tcp/8082');
const monitorPolicy = policyV1.replace('mode: enforce', 'mode: monitor');
const [admin, operator] = USERS;

/** The last line of a file too big to read whole. */
function lastLine(path: string): string {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(Math.min(size, 1 << 20));
  readSync(fd, buf, 0, buf.length, size - buf.length);
  closeSync(fd);
  const lines = buf.toString('utf8').trimEnd().split('\n');
  return lines[lines.length - 1];
}

function collectWarnings() {
  const warnings: string[] = [];
  return { warnings, log: { warn: (_obj: object, msg: string) => void warnings.push(msg) } };
}

t.test('atomic write replaces the whole file and leaves no temp file', async (t) => {
  const dir = tempStateDir(t);
  const path = join(dir, 'f.json');
  writeFileAtomic(path, 'old');
  writeFileAtomic(path, 'new content');
  t.equal(readFileSync(path, 'utf8'), 'new content');
  t.same(readdirSync(dir), ['f.json'], 'no temp file left');
  t.equal(statSync(path).mode & 0o777, 0o600, 'private by default');
});

t.test('the first audit line also fsyncs the directory, so the new file survives a power cut', async (t) => {
  const dir = tempStateDir(t);
  const synced: string[] = [];
  const { appendLineDurable } = t.mockRequire('../appliance/mgmt/state/atomic', {
    'node:fs': { ...fs, fsyncSync: (fd: number) => {
      synced.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
      fs.fsyncSync(fd);
    } },
  }) as typeof import('../appliance/mgmt/state/atomic');
  const path = join(dir, 'audit.jsonl');
  appendLineDurable(path, '{"action":"one"}');
  t.same(synced, [path, dir], 'file, then directory');
  synced.length = 0;
  appendLineDurable(path, '{"action":"two"}');
  t.same(synced, [path], 'later appends only the file');
});

t.test('files written by root belong to the owner of the state directory', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const dir = tempStateDir(t);
  chownSync(dir, 65534, 65534);
  const store = StateStore.open(dir, collectWarnings().log);
  store.saveUsers([]);
  store.appendAudit({ time: new Date().toISOString(), user: 'root (command line)', from: 'local', action: 'x', detail: '' });
  for (const name of ['users.json', 'audit.jsonl', 'policies']) {
    t.equal(statSync(join(dir, name)).uid, 65534, `${name} stays readable by the service's user`);
  }
});

t.test('start-up recovers from a crash: stray temps, torn audit line, version never made active', async (t) => {
  const dir = tempStateDir(t);
  const store = StateStore.open(dir, collectWarnings().log);
  const v1 = store.commitPolicy({ text: policyV1, hash: 'h1', mode: 'enforce', author: 'a', comment: 'first' });
  store.appendAudit({ time: new Date().toISOString(), user: 'a', from: 'here', action: 'one', detail: '' });
  store.appendAudit({ time: new Date().toISOString(), user: 'a', from: 'here', action: 'two', detail: '' });

  // A crash mid-write of each kind:
  writeFileSync(join(dir, '.users.json.999.tmp'), '{"users": [');                  // users.json temp before rename
  writeFileSync(join(dir, 'policies', '.2.json.999.tmp'), '{"version"');         // a version file temp
  writeFileSync(join(dir, 'policies', '2.json'), JSON.stringify({ ...v1, version: 2, text: 'never active' })); // before active.json
  appendFileSync(join(dir, 'audit.jsonl'), '{"time":"2026-01-01T00:00:00Z","user":"a","fr');           // torn append

  const { warnings, log } = collectWarnings();
  const after = StateStore.open(dir, log);
  t.equal(after.activePolicy()?.version, 1, 'the last committed version is active');
  t.same(after.policyHistory().map((p) => p.version), [1], 'the version that was never made active is gone');
  t.notOk(existsSync(join(dir, 'policies', '2.json')));
  t.same(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'stray temp files removed');
  t.same(readdirSync(join(dir, 'policies')).filter((n) => n.endsWith('.tmp')), []);
  t.same(after.recentAudit(10).map((e) => e.action), ['two', 'one'], 'complete audit entries kept, torn one skipped');
  t.ok(warnings.some((w) => /torn/.test(w)) && warnings.some((w) => /temp/.test(w)) && warnings.some((w) => /never made active/.test(w)),
    `each repair is reported: ${warnings.join('; ')}`);
  after.appendAudit({ time: new Date().toISOString(), user: 'a', from: 'here', action: 'three', detail: '' });
  const lines = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n');
  t.same(lines.map((l) => JSON.parse(l).action), ['one', 'two', 'three'], 'appends after the repair are on their own line');
  t.equal(after.nextPolicyVersion(), 2);
});

t.test('a damaged line inside the audit log is skipped with a warning', async (t) => {
  const dir = tempStateDir(t);
  writeFileSync(join(dir, 'audit.jsonl'), '{"action":"a"}\ngarbage\n{"action":"b"}\n');
  const { warnings, log } = collectWarnings();
  const store = StateStore.open(dir, log);
  t.same(store.recentAudit(5).map((e) => e.action), ['b', 'a']);
  t.ok(warnings.some((w) => /unreadable audit/.test(w)));
});

t.test('an audit log too big for one string: only its tail is read at start; big diffs are cut in memory', async (t) => {
  const dir = tempStateDir(t);
  const path = join(dir, 'audit.jsonl');
  // 600 MiB (sparse, so it costs no disk) of an old line, then recent entries.
  writeFileSync(path, '');
  truncateSync(path, 600 * 1024 * 1024);
  const entry = (action: string, diff?: string) => JSON.stringify({ time: new Date().toISOString(), user: 'u', from: '-', action, detail: '', diff });
  appendFileSync(path, `\n${entry('recent')}\n${entry('big', 'x'.repeat(AUDIT_MEMORY_DIFF_CHARS * 3))}\n`);
  const { warnings, log } = collectWarnings();
  const store = StateStore.open(dir, log);
  t.same(store.recentAudit(5).map((e) => e.action), ['big', 'recent']);
  t.same(warnings, [], 'the partial first line of the tail is dropped without a warning');
  const big = store.recentAudit(1)[0];
  t.ok(big.diff && big.diff.length < AUDIT_MEMORY_DIFF_CHARS + 100, `diff cut in memory (${big.diff?.length} chars)`);
  store.appendAudit({ time: new Date().toISOString(), user: 'u', from: '-', action: 'new', detail: '', diff: 'y'.repeat(AUDIT_MEMORY_DIFF_CHARS * 2) });
  t.ok((store.recentAudit(1)[0].diff ?? '').length < AUDIT_MEMORY_DIFF_CHARS + 100, 'also for new entries');
  const last = lastLine(path);
  t.equal(JSON.parse(last).diff.length, AUDIT_MEMORY_DIFF_CHARS * 2, 'the file keeps the whole diff');
});

t.test('apply, history, diff, dry-run and rollback', async (t) => {
  const s = await startTestServer(t);
  const op = await s.login(operator.name, operator.password);
  t.equal((await s.call(op, 'GET', '/api/v1/policy')).status, 404, 'no policy before the first apply');

  const first = await s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV1, comment: 'initial' });
  t.same(first.json, { version: 1, pairs: [{ pair: 'pair0', generation: 2 }] });
  t.equal(s.hub.applied[0].source, 'policy v1', 'the dataplanes see which version it is');
  t.equal(s.hub.active?.text, policyV1, 'the hub knows the active policy');

  const diff = (await s.call(op, 'POST', '/api/v1/policy/diff', { text: policyV2 })).json;
  t.match(diff.diff, /-    service: tcp\/8081\n\+    service: tcp\/8082/);
  t.equal(diff.added, 1);
  t.equal(diff.removed, 1);
  const dry = await s.call(op, 'POST', '/api/v1/policy/dry-run', { text: policyV2 });
  t.same(dry.json, { ok: true, observed: 1, changes: [] });
  t.same(s.hub.dryRuns[0], { active: policyV1, candidate: policyV2 }, 'dry-run compares the active policy with the candidate');
  const dryBad = (await s.call(op, 'POST', '/api/v1/policy/dry-run', { text: 'rules: 3' })).json;
  t.equal(dryBad.ok, false);
  t.ok(dryBad.errors.length > 0);
  const validated = (await s.call(op, 'POST', '/api/v1/policy/validate', { text: policyV1 })).json;
  t.equal(validated.ok, true);
  t.equal(validated.stats.rules, 3, 'the lab policy has three rules');

  t.equal((await s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV2, comment: 'move reject' })).json.version, 2);
  const toMonitor = await s.call(op, 'POST', '/api/v1/policy/apply', { text: monitorPolicy });
  t.equal(toMonitor.json.version, 3);
  const modeChange = s.sink.published.find((e) => e.type === 'mode.change');
  t.match(modeChange, { from: 'enforce', to: 'monitor', author: operator.name }, 'mode change published');

  const history = (await s.call(op, 'GET', '/api/v1/policy/history')).json.versions;
  t.same(history.map((v: { version: number; active: boolean }) => [v.version, v.active]), [[3, true], [2, false], [1, false]]);
  t.equal(history[1].comment, 'move reject');
  t.equal(history[1].author, operator.name);
  const v1 = (await s.call(op, 'GET', '/api/v1/policy/history/1')).json;
  t.equal(v1.text, policyV1);
  t.equal(v1.active, false);
  t.equal((await s.call(op, 'GET', '/api/v1/policy/history/9')).status, 404);

  const rollback = await s.call(op, 'POST', '/api/v1/policy/rollback', { version: 1 });
  t.equal(rollback.json.version, 4, 'a rollback is a new version');
  const active = (await s.call(op, 'GET', '/api/v1/policy')).json;
  t.equal(active.text, policyV1);
  t.equal(active.comment, 'rollback to v1');
  t.equal(s.hub.applied.at(-1)?.source, 'policy v4');
  t.ok(s.sink.published.some((e) => e.type === 'policy.rollback' && e.version === 4));
  t.equal((await s.call(op, 'POST', '/api/v1/policy/rollback', { version: 99 })).status, 404);

  const status = (await s.call(op, 'GET', '/api/v1/status')).json;
  t.match(status.policy, { version: 4, mode: 'enforce', author: operator.name });
  s.hub.pairStatus.policyHash = active.hash;
  t.equal((await s.call(op, 'GET', '/api/v1/status')).json.pairs[0].policyVersion, 4, 'a pair running a stored version shows it');

  const audit = (await s.call(op, 'GET', '/api/v1/audit')).json.entries;
  const applyEntry = audit.find((e: { action: string; detail: string }) => e.action === 'policy.apply' && e.detail.startsWith('v2'));
  t.match(applyEntry, { user: operator.name, from: '127.0.0.1', detail: 'v2: move reject' });
  t.match(applyEntry.diff, /\+    service: tcp\/8082/, 'the audit entry carries the diff');
});

t.test('a refused apply leaves the old policy active everywhere and is audited', async (t) => {
  const s = await startTestServer(t);
  const op = await s.login(operator.name, operator.password);
  await s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV1 });
  const hashBefore = s.hub.active?.hash;
  s.hub.applyResult = { ok: false, error: 'pair1 refused the policy', details: [{ pair: 'pair1', error: 'policy v2:3:1: bad thing' }] };

  const refused = await s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV2, comment: 'try' });
  t.equal(refused.status, 502);
  t.match(refused.json.error, /old policy is still running/);
  t.same(refused.json.details, [{ pair: 'pair1', error: 'policy v2:3:1: bad thing' }]);
  t.equal((await s.call(op, 'GET', '/api/v1/policy')).json.version, 1, 'version 1 is still active');
  t.same(readdirSync(join(s.stateDir, 'policies')), ['1.json'], 'nothing stored');
  t.equal(s.hub.active?.hash, hashBefore, 'the hub was not told about another policy');
  t.ok(s.sink.published.some((e) => e.type === 'policy.refused'), 'policy.refused published');
  const audit = (await s.call(op, 'GET', '/api/v1/audit')).json.entries;
  t.match(audit[0], { action: 'policy.apply.refused', user: operator.name, detail: /pair1 refused the policy/ });

  // An invalid policy never reaches the dataplanes.
  const applied = s.hub.applied.length;
  t.equal((await s.call(op, 'POST', '/api/v1/policy/apply', { text: 'version: 2' })).status, 400);
  t.equal(s.hub.applied.length, applied);

  // One transaction at a time.
  s.hub.applyResult = { ok: true, pairs: [] };
  let open!: () => void;
  s.hub.applyGate = new Promise((resolve) => (open = resolve));
  const slow = s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV2 });
  while (s.hub.applied.length === applied) await new Promise((r) => setTimeout(r, 5));
  const concurrent = await s.call(op, 'POST', '/api/v1/policy/apply', { text: monitorPolicy });
  t.equal(concurrent.status, 409, 'a second apply while one runs is refused');
  open();
  t.equal((await slow).json.version, 2);
});

t.test('an apply the store cannot save restores the previous policy on the dataplanes and is audited', async (t) => {
  const s = await startTestServer(t);
  const op = await s.login(operator.name, operator.password);
  await s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV1 });
  const v1Hash = s.hub.active?.hash;
  // The dataplanes commit, then storing the version fails (policies/ is no longer a directory).
  rmSync(join(s.stateDir, 'policies'), { recursive: true });
  writeFileSync(join(s.stateDir, 'policies'), '');
  s.hub.setActivePolicy(policyV2, 'what the dataplanes now run');
  const failed = await s.call(op, 'POST', '/api/v1/policy/apply', { text: policyV2, comment: 'try' });
  t.equal(failed.status, 500);
  t.same(failed.json, { error: 'policy could not be stored; the previous policy is being restored' });
  t.equal(s.hub.applied.length, 2, 'the dataplanes had committed it');
  t.equal(s.hub.active?.hash, v1Hash, 'the hub is given the previous policy again');
  t.equal((await s.call(op, 'GET', '/api/v1/policy')).json.version, 1, 'version 1 is still active');
  const audit = (await s.call(op, 'GET', '/api/v1/audit')).json.entries;
  t.match(audit[0], { action: 'policy.apply.failed', user: operator.name, detail: /could not store v2/ });
});

t.test('events: ring, filters, file rotation, reload', async (t) => {
  const dir = tempStateDir(t);
  const ev = (i: number, over: Partial<GatekeeperEvent> = {}): GatekeeperEvent => ({
    type: 'link.up', time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), severity: 'notice', pair: i % 2 ? 'p1' : 'p2',
    port: 'inside0', side: 'inside', ...over } as GatekeeperEvent);
  const log = new EventLog(dir, collectWarnings().log, 4096);
  for (let i = 0; i < 100; i++) log.add(ev(i, i % 10 === 0 ? { type: 'link.down', severity: 'error' } : {}));
  t.ok(existsSync(join(dir, 'events.1.jsonl')), 'rotated');
  t.ok(statSync(join(dir, 'events.jsonl')).size <= 4096 && statSync(join(dir, 'events.1.jsonl')).size <= 4096, 'each file bounded');
  t.equal(log.query({ limit: 1000 }).length, 100);
  t.equal(log.query({ limit: 5 })[0].time, ev(99).time, 'newest first');
  t.same(log.query({ limit: 100, types: ['link.down'] }).length, 10);
  t.same(log.query({ limit: 100, minSeverity: 'error' }).length, 10, 'minSeverity keeps the more severe');
  t.same(log.query({ limit: 100, pair: 'p1' }).length, 50);
  t.same(log.query({ limit: 100, before: ev(10).time }).map((e) => e.time), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => ev(i).time));
  log.close();
  appendFileSync(join(dir, 'events.jsonl'), '{"type":"link.up","ti');
  const { warnings, log: warn } = collectWarnings();
  const reloaded = new EventLog(dir, warn, 4096);
  const kept = reloaded.query({ limit: 1000 });
  t.ok(kept.length > 10 && kept.length <= 100, `reloaded ${kept.length} events from both files`);
  t.equal(kept[0].time, ev(99).time);
  t.ok(warnings.some((w) => /torn/.test(w)));
  reloaded.close();
});

t.test('a restart keeps users, policies, settings and events', async (t) => {
  const stateDir = tempStateDir(t);
  await seedUsers(stateDir);
  const first = await startTestServer(t, { stateDir });
  const a = await first.login(admin.name, admin.password);
  t.equal((await first.call(a, 'POST', '/api/v1/users', { name: 'newbie', role: 'operator', password: 'newbie-password-1' })).status, 201);
  t.equal((await first.call(a, 'POST', '/api/v1/policy/apply', { text: policyV1, comment: 'keep me' })).status, 200);
  const target = { name: 'siem', enabled: true, host: '198.18.0.5', port: 6514, transport: 'tls', format: 'rfc5424', minSeverity: 'info',
    types: [], tls: { cert: 'CERT PEM', key: 'KEY PEM', serverName: 'siem.example' } };
  const put = await first.call(a, 'PUT', '/api/v1/settings/syslog', { targets: [target] });
  t.equal(put.status, 200, JSON.stringify(put.json));
  t.same(put.json.targets[0].tls, { serverName: 'siem.example', hasKey: true, hasCert: true }, 'the key is never returned');
  first.hub.emit({ type: 'link.down', time: new Date().toISOString(), severity: 'error', pair: 'pair0', port: 'inside0', side: 'inside' });
  t.ok(first.sink.published.some((e) => e.type === 'link.down'), 'dataplane events go to the SIEM export');
  await first.app.close();

  const hub = new FakeHub();
  const second = await startTestServer(t, { stateDir, hub });
  t.equal(hub.active?.text, policyV1, 'the stored active policy is handed to the hub at start');
  t.same(second.sink.targets.map((x) => x.name), ['siem'], 'the exporter is configured at start');
  t.equal(second.sink.targets[0].tls?.key, 'KEY PEM', 'the exporter gets the stored key');
  const n = await second.login('newbie', 'newbie-password-1');
  t.equal((await second.call(n, 'GET', '/api/v1/policy')).json.comment, 'keep me');
  const events = (await second.call(n, 'GET', '/api/v1/events?type=link.down,policy.applied')).json.events;
  t.same(events.map((e: { type: string }) => e.type).sort(), ['link.down', 'policy.applied']);
  const kept = await second.call(a, 'GET', '/api/v1/status');
  t.equal(kept.status, 401, 'sessions do not survive a restart (kept in memory only)');
  const a2 = await second.login(admin.name, admin.password);
  const keepKey = { ...target, tls: { serverName: 'siem.example', hasKey: true, hasCert: true } };
  t.equal((await second.call(a2, 'PUT', '/api/v1/settings/syslog', { targets: [keepKey] })).status, 200);
  t.equal(second.sink.targets[0].tls?.key, 'KEY PEM', 'hasKey: true keeps the stored key');
  const stored = JSON.parse(readFileSync(join(stateDir, 'settings.json'), 'utf8'));
  t.equal(stored.syslog.targets[0].tls.key, 'KEY PEM');
});

t.test('initial policy is stored once, as version 1 by system', async (t) => {
  const stateDir = tempStateDir(t);
  mkdirSync(stateDir, { recursive: true });
  await seedUsers(stateDir);
  const s = await startTestServer(t, { stateDir, initialPolicy: { text: policyV1, file: 'lab.yaml' } });
  const a = await s.login(admin.name, admin.password);
  t.match((await s.call(a, 'GET', '/api/v1/policy')).json, { version: 1, author: 'system', text: policyV1 });
  await s.app.close();
  const again = await startTestServer(t, { stateDir, initialPolicy: { text: policyV2, file: 'other.yaml' } });
  const a2 = await again.login(admin.name, admin.password);
  t.equal((await again.call(a2, 'GET', '/api/v1/policy')).json.text, policyV1, 'ignored once a policy is stored');
  await t.rejects(startTestServer(t, { stateDir: tempStateDir(t), initialPolicy: { text: 'rules: 1', file: 'bad.yaml' } }),
    /initial policy refused/);
});
