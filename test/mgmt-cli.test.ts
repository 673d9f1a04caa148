// The CLI side of management: `gatekeeper user ...` on a state directory, and a real
// `gatekeeper mgmt --http` process (test/lib/mgmt-fixture.ts) that the created admin logs in to.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Lab, labAddresses, sleep } from '../appliance/lab/lab';
import { labPolicyPath } from '../appliance/paths';
import { labUnavailable } from './lib/lab-fixture';
import { ADMIN, runCli, startMgmt, tempStateDir, type Login, type RunningMgmt } from './lib/mgmt-fixture';

t.test('gatekeeper user add / list / passwd / remove', async (t) => {
  const dir = tempStateDir(t);
  const short = runCli(['user', 'add', 'root1', '--role', 'admin', '--state-dir', dir], 'short\n');
  t.equal(short.status, 2, 'a short password is refused');
  t.match(short.stderr, /at least 12 characters/);
  t.equal(runCli(['user', 'add', 'root1', '--role', 'superuser', '--state-dir', dir], 'long-enough-password\n').status, 1 ,
    'an unknown role is refused');

  const pwFile = join(dir, 'pw');
  writeFileSync(pwFile, 'from-a-file-password\n');
  const added = runCli(['user', 'add', 'root1', '--role', 'admin', '--state-dir', dir, '--password-file', pwFile]);
  t.equal(added.status, 0, added.stderr);
  t.equal(runCli(['user', 'add', 'root1', '--role', 'viewer', '--state-dir', dir], 'another-password-1\n').status, 2, 'no duplicates');
  t.equal(runCli(['user', 'add', 'watcher', '--role', 'viewer', '--state-dir', dir], 'watcher-password-1\n').status, 0);
  const list = runCli(['user', 'list', '--state-dir', dir]);
  t.match(list.stdout, /^root1\tadmin\t.*\nwatcher\tviewer\t/);
  t.notOk(readFileSync(join(dir, 'users.json'), 'utf8').includes('from-a-file-password'), 'only the hash is stored');

  const last = runCli(['user', 'remove', 'root1', '--state-dir', dir]);
  t.equal(last.status, 2, 'the last admin cannot be removed');
  t.match(last.stderr, /last admin/);
  t.equal(runCli(['user', 'passwd', 'watcher', '--state-dir', dir], 'changed-password-1\n').status, 0);
  t.equal(runCli(['user', 'remove', 'watcher', '--state-dir', dir]).status, 0);
  t.equal(runCli(['user', 'remove', 'watcher', '--state-dir', dir]).status, 2, 'removing twice fails');
  const audit = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).action);
  t.same(audit, ['user.add', 'user.add', 'user.passwd', 'user.remove'], 'command-line changes are audited');
});

t.test('gatekeeper user leaves the running service\'s in-flight writes alone (no crash recovery)', async (t) => {
  const dir = tempStateDir(t);
  mkdirSync(join(dir, 'policies'));
  // The service is mid-apply: version 2 written, active.json not yet; a temp file not yet renamed.
  writeFileSync(join(dir, 'active.json'), '{"version":1}\n');
  writeFileSync(join(dir, 'policies', '1.json'), JSON.stringify({ version: 1, text: 'v1' }));
  writeFileSync(join(dir, 'policies', '2.json'), JSON.stringify({ version: 2, text: 'v2' }));
  writeFileSync(join(dir, '.settings.json.123.tmp'), '{}');
  const added = runCli(['user', 'add', 'root1', '--role', 'admin', '--state-dir', dir], 'long-enough-password\n');
  t.equal(added.status, 0, added.stderr);
  t.ok(existsSync(join(dir, 'policies', '2.json')), 'the version being applied is kept');
  t.ok(existsSync(join(dir, '.settings.json.123.tmp')), 'the temp file is kept');
  t.equal(added.stderr, '', 'no repair warnings');
});

t.test('a real gatekeeper mgmt process: login, status, apply, users added on the box while it runs', async (t) => {
  const mgmt = await startMgmt(t, { initialPolicy: readFileSync(labPolicyPath, 'utf8') });
  const admin = await mgmt.login();
  const status = await mgmt.api(admin, 'GET', '/api/v1/status');
  t.equal(status.status, 200);
  t.match(status.body, { policy: { version: 1, author: 'system' }, pairs: [] });
  t.equal((await mgmt.api(admin, 'GET', '/api/v1/auth/session')).status, 200);
  t.equal((await fetch(`${mgmt.url}/api/v1/status`)).status, 401, 'anonymous refused');
  const headers = (await fetch(`${mgmt.url}/api/v1/auth/setup`)).headers;
  t.match(headers.get('content-security-policy'), /default-src 'self'/);

  // With no dataplane connected, an apply has nobody to refuse it.
  const apply = await mgmt.api(admin, 'POST', '/api/v1/policy/apply',
    { text: readFileSync(labPolicyPath, 'utf8').replace('tcp/8081', 'tcp/8082'), comment: 'cli test' });
  t.equal(apply.status, 200, JSON.stringify(apply.body));
  t.match(apply.body, { version: 2 });

  // `gatekeeper user add` on the box is seen by the running service at once.
  t.equal(runCli(['user', 'add', 'late', '--role', 'viewer', '--state-dir', mgmt.stateDir], 'late-user-password\n').status, 0);
  const late = await mgmt.login({ name: 'late', password: 'late-user-password' });
  t.equal((await mgmt.api(late, 'GET', '/api/v1/policy')).status, 200);
  t.equal((await mgmt.api(late, 'POST', '/api/v1/policy/apply', { text: 'x' })).status, 403, 'a viewer cannot apply');
  t.ok(mgmt.log.some((l) => /"msg":"Server listening/.test(l)), 'the service logs as JSON');
  t.notOk(mgmt.log.some((l) => /setupToken/.test(l)), 'no setup token once an admin exists');
  await mgmt.stop();
  t.pass(`stopped cleanly (admin ${ADMIN.name})`);
});

/** Polls an API call until `done` accepts its body. */
async function until(mgmt: RunningMgmt, as: Login, path: string, done: (body: any) => boolean, timeoutMs = 15_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await mgmt.api(as, 'GET', path);
    if (r.status === 200 && done(r.body)) return r.body;
    if (Date.now() > deadline) throw new Error(`${path} never got there: ${JSON.stringify(r.body).slice(0, 2000)}`);
    await sleep(200);
  }
}

t.test('a real dataplane in a lab, managed through the API', { skip: labUnavailable() }, async (t) => {
  const policy = readFileSync(labPolicyPath, 'utf8');
  const mgmt = await startMgmt(t, { initialPolicy: policy });
  const admin = await mgmt.login();
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  const policyPath = join(lab.dir, 'policy.yaml');
  writeFileSync(policyPath, policy);
  await lab.startDataplane(policyPath, 15_000, mgmt.socketPath);
  const ping = () => lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '1', labAddresses.server4]).status;

  // Connected comes with the hello, the counters (and the link state) with the first stats just after.
  const status = await until(mgmt, admin, '/api/v1/status', (b) => b.pairs.length === 1 && b.pairs[0].connected &&
    b.pairs[0].ports.inside.link !== 'unknown');
  const pair = status.pairs[0];
  t.equal(pair.policyVersion, 1, 'the pair runs stored version 1 (same hash)');
  t.equal(pair.ports.inside.link, 'up');
  t.equal(ping(), 0, 'ping is allowed');
  const flows = await until(mgmt, admin, `/api/v1/flows?address=${labAddresses.server4}`, (b) => b.flows.length > 0);
  t.match(flows.flows[0], { pair: pair.pair, proto: 'icmp', rule: 'client-ping-server', verdict: 'allow' });

  const noPing = policy.replace(/  - name: client-ping-server[\s\S]*?log: true\n/, '');
  const dry = await mgmt.api(admin, 'POST', '/api/v1/policy/dry-run', { text: noPing });
  t.equal(dry.status, 200, JSON.stringify(dry.body));
  t.match(dry.body, { ok: true, changes: [{ proto: 'icmp', before: { rule: 'client-ping-server', action: 'allow' }, after: { action: 'deny' } }] },
    'the dry-run finds the ping flow that would be cut');
  const started = Date.now();
  const applied = await mgmt.api(admin, 'POST', '/api/v1/policy/apply', { text: noPing, comment: 'no more ping' });
  t.comment(`apply through the API to one dataplane: ${Date.now() - started} ms`);
  t.equal(applied.status, 200, JSON.stringify(applied.body));
  t.match(applied.body, { version: 2, pairs: [{ pair: pair.pair, generation: 2 }] }, 'the dataplane acknowledged generation 2');
  t.not(ping(), 0, 'ping is now dropped');
  t.equal(readFileSync(policyPath, 'utf8'), noPing, 'the dataplane stored the committed policy');
  const after = await until(mgmt, admin, '/api/v1/status', (b) => b.pairs[0].policyVersion === 2);
  t.equal(after.pairs[0].generation, 2);
  const history = await until(mgmt, admin, `/api/v1/status/history?pair=${encodeURIComponent(pair.pair)}&seconds=60`, (b) => b.points.length > 1);
  t.ok(history.points.every((p: { t: number }) => p.t > Date.now() - 120_000));
  const events = (await mgmt.api(admin, 'GET', '/api/v1/events?type=dataplane.connected,policy.applied')).body as { events: { type: string }[] };
  t.same(new Set(events.events.map((e: { type: string }) => e.type)), new Set(['dataplane.connected', 'policy.applied']));
  const metrics = await mgmt.api(admin, 'GET', '/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.body, /gatekeeper_mgmt_logins_total/);
});
