// Management's dataplane side with a real dataplane process bridging a namespace lab: the dataplane
// connects to the hub's socket, its denied traffic reaches the hub as events, a dry-run finds the
// flow a candidate would open, and applying the candidate through the hub opens it on the wire.

import t from 'tap';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatekeeperEvent } from '../appliance/ipc/events';
import { Lab } from '../appliance/lab/lab';
import { createDataplaneHub } from '../appliance/mgmt/dataplanes/hub';
import { cliPath, dataplaneNodeFlags } from '../appliance/paths';
import { labAddresses as A, labUnavailable, sleep } from './lib/lab-fixture';

const policy = (extraRules = '') => `version: 1
mode: enforce
default: deny
groups:
  client: [${A.client4}, "${A.client6}"]
  server: [${A.server4}, "${A.server6}"]
rules:
  - name: client-pings-server
    from: client
    to: server
    service: ping
    action: allow
${extraRules}`;

const opened = policy(`  - name: client-test-port
    from: client
    to: server
    service: tcp/9999
    action: allow
`);

async function until(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

t.test('a real dataplane managed through the hub', { skip: labUnavailable() }, async (t) => {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  const logLines: string[] = [];
  const log = {
    info: (f: object, m: string) => logLines.push(`info ${m} ${JSON.stringify(f)}`),
    warn: (f: object, m: string) => logLines.push(`warn ${m} ${JSON.stringify(f)}`),
    error: (f: object, m: string) => logLines.push(`error ${m} ${JSON.stringify(f)}`),
  };
  const hub = createDataplaneHub({ socketPath: join(lab.dir, 'run', 'mgmt.sock'), log });
  t.teardown(() => hub.close());
  const events: GatekeeperEvent[] = [];
  hub.onEvent((e) => events.push(e));
  await hub.listen();

  const active = policy();
  const policyPath = join(lab.dir, 'policy.yaml');
  writeFileSync(policyPath, active);
  const pair = `lab-${lab.id}`;
  const dataplane = lab.spawn(lab.appliance, [process.execPath, ...dataplaneNodeFlags, cliPath, 'run', '--inside', lab.insidePort, '--outside', lab.outsidePort,
    '--policy', policyPath, '--name', pair, '--mgmt-socket', join(lab.dir, 'run', 'mgmt.sock')]);
  const stderr: string[] = [];
  dataplane.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const diagnose = () => `dataplane log:\n${stderr.join('').slice(-4000)}\nhub log:\n${logLines.slice(-20).join('\n')}`;

  await until(() => hub.pairs().some((p) => p.pair === pair && p.connected), 'the dataplane to connect', 15_000).catch((err) => {
    throw new Error(`${(err as Error).message}\n${diagnose()}`);
  });
  t.match(events.find((e) => e.type === 'dataplane.connected'), { pair });
  await until(() => (hub.pairs()[0]?.ports.inside.name ?? '') === lab.insidePort && hub.pairs()[0].lastSeen > 0, 'stats', 5000);

  const server = lab.spawn(lab.server, ['nc', '-lk', '9999']);
  t.teardown(() => server.kill('SIGKILL'));
  await sleep(300);
  const connect = () => lab.exec(lab.client, ['nc', '-z', '-w', '2', A.server4, '9999'], 10_000).status;
  t.not(connect(), 0, 'tcp/9999 is denied by the running policy');

  // The dataplane summarizes denied traffic every 10 s.
  await until(() => events.some((e) => e.type === 'deny.summary' && e.dstPort === 9999), 'a deny.summary for tcp/9999', 15_000);
  t.match(hub.topDenied(5), [{ pair, src: A.client4, dst: A.server4, dstPort: 9999, proto: 'tcp', action: 'deny', srcGroups: ['client'] }]);
  const dry = await hub.dryRun(active, opened);
  t.match(dry.changes, [{ pair, src: A.client4, dst: A.server4, dstPort: 9999, before: { action: 'deny' }, after: { rule: 'client-test-port', action: 'allow' } }],
    'the dry-run finds the denied flow the candidate opens');

  const applyStarted = Date.now();
  const result = await hub.apply(opened, 'policy v2');
  t.comment(`apply (prepare + commit on one dataplane) took ${Date.now() - applyStarted} ms`);
  if (!t.same(result, { ok: true, pairs: [{ pair, generation: 2 }] }, 'the apply commits on the dataplane')) t.comment(diagnose());
  t.match(hub.pairs(), [{ pair, generation: 2, policyHash: createHash('sha256').update(opened).digest('hex') }]);
  t.equal(connect(), 0, 'tcp/9999 is open after the apply');
  const flows = await hub.flows({ port: 9999 }, 10);
  t.match(flows.flows, [{ pair, proto: 'tcp', src: A.client4, dst: A.server4, dstPort: 9999, rule: 'client-test-port', verdict: 'allow' }]);

  const refused = await hub.apply('version: 1\nrules: [', 'policy v3');
  t.match(refused, { ok: false, details: [{ pair, error: /^refused: / }] }, 'a policy the dataplane cannot compile is refused');
  t.equal(connect(), 0, 'and the applied policy keeps running');

  // Stats arrive every second: wait for one taken after the connection above.
  const ruleFlows = new RegExp(`gatekeeper_rule_flows_total\\{pair="${pair}",rule="client-test-port",action="allow"\\} [1-9]`);
  let metrics = await hub.metrics();
  for (let tries = 0; tries < 30 && !ruleFlows.test(metrics); tries++) {
    await sleep(100);
    metrics = await hub.metrics();
  }
  t.match(metrics, ruleFlows);
  t.match(metrics, new RegExp(`gatekeeper_port_rx_packets_total\\{pair="${pair}",port="outside"\\} [1-9]`));
  t.match(metrics, new RegExp(`gatekeeper_policy_generation\\{pair="${pair}"\\} 2`));
});
