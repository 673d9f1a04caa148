// Issue 4 end to end with every part real: a dataplane in a namespace lab, the management process it
// reports to, and rsyslog as the SIEM. A denied flood must reach the SIEM as a handful of
// summaries whose counts add up, and an allowed, logged connection as flow.start / flow.end lines
// that name the groups on both sides.

import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labAddresses, sleep } from '../appliance/lab/lab';
import { labPolicyPath } from '../appliance/paths';
import { labUnavailable } from './lib/lab-fixture';
import { startMgmt } from './lib/mgmt-fixture';
import { freePort, parse5424, Rsyslog } from './lib/rsyslog';

const FLOOD = 2000;

t.test('dataplane → management → rsyslog', { skip: labUnavailable() }, async (t) => {
  const policy = readFileSync(labPolicyPath, 'utf8');
  const rsyslog = new Rsyslog([{ name: 'siem', kind: 'tcp', port: await freePort() }]);
  t.teardown(() => rsyslog.destroy());
  await rsyslog.start();

  const mgmt = await startMgmt(t, { initialPolicy: policy });
  const admin = await mgmt.login();
  const put = await mgmt.api(admin, 'PUT', '/api/v1/settings/syslog', {
    targets: [{ name: 'siem', enabled: true, host: '127.0.0.1', port: rsyslog.port('siem'), transport: 'tcp', format: 'rfc5424',
      minSeverity: 'debug', types: [] }],
  });
  t.equal(put.status, 200, `syslog target saved: ${JSON.stringify(put.body)}`);

  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  const policyPath = join(lab.dir, 'policy.yaml');
  writeFileSync(policyPath, policy);
  await lab.startDataplane(policyPath, undefined, mgmt.socketPath);
  lab.spawn(lab.server, ['nc', '-lk', labAddresses.server4, '8080']);
  await sleep(300);

  // The protected asset may not open connections: a ping flood from the server side is denied.
  const flood = lab.exec(lab.server, ['ping', '-q', '-c', String(FLOOD), '-i', '0.001', '-W', '1', labAddresses.client4], 30_000);
  t.match(flood.stdout, new RegExp(`${FLOOD} packets transmitted, 0 received`), 'the flood was sent and nothing came back');
  const connect = lab.exec(lab.client, ['nc', '-vz', '-w', '3', labAddresses.server4, '8080'], 10_000);
  t.equal(connect.status, 0, `an allowed, logged connection succeeds ${connect.stderr}`);

  const parsed = () => rsyslog.lines('siem').map(parse5424);
  const denied = () => parsed().filter((m) => m.msgId === 'deny.summary' && m.msg.includes(labAddresses.client4));
  const deniedCount = () => denied().reduce((n, m) => n + Number(paramOf(m.sd, 'count')), 0);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (deniedCount() < FLOOD || !parsed().some((m) => m.msgId === 'flow.end'))) await sleep(250);

  const summaries = denied();
  t.ok(summaries.length >= 1 && summaries.length <= 4, `the flood is ${summaries.length} summary line(s), not ${FLOOD}`);
  t.equal(deniedCount(), FLOOD, 'their counts add up to the packets denied');
  t.equal(paramOf(summaries[0].sd, 'srcGroups'), 'server', 'the source is named by its group');
  t.equal(paramOf(summaries[0].sd, 'dstGroups'), 'client', 'and so is the destination');

  const start = parsed().find((m) => m.msgId === 'flow.start');
  const end = parsed().find((m) => m.msgId === 'flow.end');
  t.ok(start, 'flow.start received');
  t.ok(end, 'flow.end received');
  if (start) t.match(start.msg, /client-test-services/, `flow.start names the rule: ${start.msg}`);
  if (end) t.equal(paramOf(end.sd, 'rule'), 'client-test-services');
  t.ok(parsed().every((m) => m.appName === 'gatekeeper'), 'every line is the gatekeeper\'s');
});

/** A parameter from whichever SD element carries it (names are documented in docs/siem.md). */
function paramOf(sd: Map<string, Map<string, string>>, name: string): string | undefined {
  for (const params of sd.values()) if (params.has(name)) return params.get(name);
  return undefined;
}
