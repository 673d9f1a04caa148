// Fail-open and fail-closed with real hosts: a dataplane killed with SIGKILL hands its ports to the
// kernel bridge (fail-open) or leaves them cut (fail-closed); a returning dataplane takes them back and
// enforces again. Gaps are measured from a ping stream through the box (timestamps of the replies).

import t from 'tap';
import type { Test } from 'tap';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labAddresses as A } from '../appliance/lab/lab';
import { cliPath, dataplaneNodeFlags } from '../appliance/paths';
import { labUnavailable } from './lib/lab-fixture';
import { setTimeout as sleep } from 'node:timers/promises';

const POLICY = `
version: 1
mode: enforce
groups:
  client: { members: ['${A.client4}'] }
  server: { members: ['${A.server4}'] }
rules:
  - name: ping
    from: client
    to: server
    service: icmp/echo-request
    action: allow
default: deny
`;

const skip = labUnavailable() || (spawnSync('sh', ['-c', 'command -v nft']).status !== 0 && 'needs nft');

const logs = new WeakMap<ChildProcess, string[]>();

function startDataplane(lab: Lab, policy: string, fail: 'open' | 'closed', extra: string[] = []): ChildProcess {
  rmSync(lab.statsFile, { force: true });
  const child = lab.spawn(lab.appliance, [process.execPath, ...dataplaneNodeFlags, cliPath, 'run', '--inside', lab.insidePort, '--outside', lab.outsidePort,
    '--policy', policy, '--name', `lab-${lab.id}`, '--stats-file', lab.statsFile, '--fail', fail, ...extra]);
  const lines: string[] = [];
  logs.set(child, lines);
  child.stderr?.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
  return child;
}

async function forwarding(lab: Lab, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!existsSync(lab.statsFile)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`dataplane did not start (exit ${child.exitCode}): ${(logs.get(child) ?? []).join('')}`);
    }
    await sleep(50);
  }
}

/** A lab, always destroyed, with POLICY written in its scratch directory. */
function policyLab(t: Test): { lab: Lab; policy: string } {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  const policy = join(lab.dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  return { lab, policy };
}

/** A ping stream client → server every 10 ms; returns a function that stops it and gives reply times (ms). */
function pingStream(lab: Lab): () => Promise<number[]> {
  const child = lab.spawn(lab.client, ['ping', '-D', '-n', '-i', '0.01', '-W', '1', A.server4]);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  return async () => {
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
    return [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
  };
}

/** Longest silence between replies in [from, to] (ms since the epoch), counting from `from`. */
function longestGap(replies: number[], from: number, to: number): number {
  let last = from;
  let gap = 0;
  for (const at of replies) {
    if (at < from || at > to) continue;
    gap = Math.max(gap, at - last);
    last = at;
  }
  return Math.max(gap, to - last);
}

/** Can the client open a TCP connection to the server's port 2323 (which the policy denies)? */
function deniedServiceAnswers(lab: Lab): boolean {
  const r = lab.exec(lab.client, ['sh', '-c', `echo hi | nc -w 1 -N ${A.server4} 2323`], 5000);
  return r.status === 0 && r.stdout.includes('ok');
}

t.test('fail-open: SIGKILL bridges the ports in the kernel; a new dataplane takes them back', { skip }, async (t) => {
  const { lab, policy } = policyLab(t);
  lab.spawn(lab.server, ['sh', '-c', 'while true; do echo ok | nc -l -N 2323; done']);
  // The record lives in the stats file's directory: the lab's scratch directory.
  const since = join(lab.dir, 'bypass-since');

  let dataplane = startDataplane(lab, policy, 'open');
  await forwarding(lab, dataplane);
  await sleep(300);
  const bridges = lab.exec(lab.appliance, ['ip', '-o', 'link', 'show', 'type', 'bridge']).stdout;
  t.match(bridges, /gkbyp/, 'the ports sit in a kernel bridge');
  t.notOk(deniedServiceAnswers(lab), 'while the dataplane runs, the kernel bridge forwards nothing: a denied service stays denied');

  const stop = pingStream(lab);
  await sleep(500);
  const killedAt = Date.now();
  dataplane.kill('SIGKILL');
  await sleep(1500);
  t.ok(deniedServiceAnswers(lab), 'in bypass the kernel bridges everything (the denied service answers)');
  t.ok(existsSync(since), 'the guard wrote down when bypass began');
  const bypassAt = Number(readFileSync(since, 'utf8'));
  t.ok(bypassAt - killedAt < 1000, `bypass began ${bypassAt - killedAt} ms after the kill`);

  const restartAt = Date.now();
  dataplane = startDataplane(lab, policy, 'open');
  await forwarding(lab, dataplane);
  await sleep(1000);
  const replies = await stop();
  const takeover = longestGap(replies, killedAt, restartAt);
  const handBack = longestGap(replies, restartAt, Date.now() - 200);
  t.comment(`bypass takeover gap ${takeover.toFixed(0)} ms, hand-back gap ${handBack.toFixed(0)} ms (ping every 10 ms)`);
  t.ok(takeover < 1000, `allowed traffic resumes within 1 s of the kill (${takeover.toFixed(0)} ms)`);
  t.ok(handBack < 1000, `the returning dataplane forwards within 1 s (${handBack.toFixed(0)} ms)`);
  t.notOk(existsSync(since), 'the returning dataplane took the bypass record');
  t.notOk(deniedServiceAnswers(lab), 'the returning dataplane enforces again');
  t.match(lab.exec(lab.appliance, ['nft', 'list', 'tables']).stdout, /gatekeeper_bypass_/, 'the block is back');
});

t.test('fail-closed: no bridge, and a dead dataplane forwards nothing', { skip }, async (t) => {
  const { lab, policy } = policyLab(t);
  // A fail-open run first leaves its bridge behind; the fail-closed start must remove it.
  let dataplane = startDataplane(lab, policy, 'open');
  await forwarding(lab, dataplane);
  dataplane.kill('SIGKILL');
  await sleep(300);
  dataplane = startDataplane(lab, policy, 'closed');
  await forwarding(lab, dataplane);
  t.equal(lab.exec(lab.appliance, ['ip', '-o', 'link', 'show', 'type', 'bridge']).stdout.trim(), '', 'no bridge is left');
  t.equal(lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '1', A.server4]).status, 0, 'allowed traffic passes');
  dataplane.kill('SIGKILL');
  await sleep(300);
  t.not(lab.exec(lab.client, ['ping', '-c', '3', '-i', '0.2', '-W', '1', A.server4]).status, 0, 'nothing passes while it is down');
});

t.test('link-fault pass-through: a cut on one side is seen on the other, and healed with it', { skip }, async (t) => {
  const { lab, policy } = policyLab(t);
  const dataplane = startDataplane(lab, policy, 'closed', ['--link-fault-pass-through']);
  await forwarding(lab, dataplane);
  const carrier = () => lab.exec(lab.client, ['cat', '/sys/class/net/eth0/carrier']).stdout.trim();
  const until = async (want: string) => {
    const deadline = Date.now() + 3000;
    while (carrier() !== want && Date.now() < deadline) await sleep(20);
    return carrier();
  };
  t.equal(await until('1'), '1', 'the client has carrier');
  const cutAt = Date.now();
  lab.exec(lab.server, ['ip', 'link', 'set', 'eth0', 'down']); // the asset's cable is pulled
  t.equal(await until('0'), '0', `the client (switch side) sees the cut too (${Date.now() - cutAt} ms)`);
  lab.exec(lab.server, ['ip', 'link', 'set', 'eth0', 'up']);
  t.equal(await until('1'), '1', 'and the carrier comes back with the asset\'s');
  t.equal(lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '1', A.server4]).status, 0, 'traffic flows again');
});
