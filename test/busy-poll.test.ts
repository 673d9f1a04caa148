// Busy polling of the batched ports ($GATEKEEPER_BUSY_POLL_US, port/port.ts): the setting is parsed
// strictly (a typo must not silently change how the dataplane runs), and while the event loop polls
// the rings it still runs its timers and signals: under a steady ping the stats file keeps being
// rewritten every second and SIGTERM stops the dataplane at once. A pause in polling backs it off
// only when another task was given the CPU (busyPoll.backoffs), not when the host held it
// (busyPoll.stalls). (What busy polling gains is measured by bench/wire.ts, not here.) A dataplane
// started without its Node.js flags (paths.ts) warns at start.

import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Lab } from '../appliance/lab/lab';
import { BUSY_POLL_ENV, BUSY_POLL_MICROS, busyPollMicros } from '../appliance/dataplane/port/port';
import { batchPortAddonPath } from '../appliance/dataplane/port/batch-port';
import { labAddresses as A, labUnavailable, sleep, startLab } from './lib/lab-fixture';
import { FAST_PATH_ENV } from '../appliance/dataplane/port/fast-path';

// Busy polling serves the frames the engine sees: with the kernel fast path the pings here would
// reach it only until their flow is answered, so these dataplanes run without it.
process.env[FAST_PATH_ENV] = 'off';

t.test('the setting: off, whole microseconds up to 1 s, else a clear error', async (t) => {
  t.equal(busyPollMicros(undefined), BUSY_POLL_MICROS, 'unset: the default');
  t.equal(busyPollMicros(''), BUSY_POLL_MICROS, 'empty: the default');
  t.equal(busyPollMicros('off'), -1);
  t.equal(busyPollMicros('0'), 0);
  t.equal(busyPollMicros('1000000'), 1_000_000);
  for (const bad of ['-1', '1000001', '2.5', 'abc', '10ms', 'OFF']) {
    t.throws(() => busyPollMicros(bad), new RegExp(`${BUSY_POLL_ENV} must be off or a whole number`), `refused: ${bad}`);
  }
});

const POLICY = `
version: 1
default: deny
groups:
  client: ['${A.client4}']
  server: ['${A.server4}']
rules:
  - name: ping
    from: client
    to: server
    service: ping
    action: allow
`;

const skip = labUnavailable() || (existsSync(batchPortAddonPath) ? false : 'batched addon not built');

t.test('polling for 1 s after each frame: timers and signals still run', { skip }, async (t) => {
  const previous = process.env[BUSY_POLL_ENV];
  process.env[BUSY_POLL_ENV] = '1000000'; // the lab's dataplane inherits it
  const { lab, dataplane, client } = await startLab(t, POLICY).finally(() => {
    if (previous === undefined) delete process.env[BUSY_POLL_ENV];
    else process.env[BUSY_POLL_ENV] = previous;
  });
  t.match(lab.dataplaneLog.join('\n'), /"io":"batched"/, 'the ports run the batched I/O');
  // 4 s of pings every 20 ms: the rings never stay empty for 1 s, so the loop polls all along.
  const pinger = lab.spawn(lab.client, ['ping', '-n', '-i', '0.02', '-c', '200', '-W', '1', A.server4]);
  const writes = new Set<string>();
  const until = Date.now() + 3500;
  while (Date.now() < until) {
    writes.add(readFileSync(lab.statsFile, 'utf8'));
    await sleep(100);
  }
  t.ok(writes.size >= 3, `the stats file was rewritten ${writes.size - 1} times in 3.5 s of polling`);
  const last = JSON.parse([...writes].pop()!) as { ports: { outside: { rx_packets: number }; inside: { forwarded: number } } };
  t.ok(last.ports.outside.rx_packets >= 100, `pings were received meanwhile (${last.ports.outside.rx_packets})`);
  const stopped = Date.now();
  const exited = new Promise((resolve) => dataplane.once('exit', resolve));
  dataplane.kill('SIGTERM');
  await Promise.race([exited, sleep(3000)]);
  t.ok(dataplane.exitCode !== null || dataplane.signalCode !== null, `SIGTERM stopped it in ${Date.now() - stopped} ms`);
  pinger.kill();
  const ping = client(['ping', '-n', '-c', '1', '-W', '1', A.server4]);
  t.not(ping.status, 0, 'nothing forwards once it stopped (fail-closed default)');
});

t.test('a pause in polling: another task given the CPU backs polling off, a pause with none (the host) does not', { skip }, async (t) => {
  const { lab, dataplane } = await startLab(t, POLICY);
  const pid = dataplane.pid!;
  // Pings every 10 ms keep the ports polling (20 ms after each frame) all through the test (up to 40 s).
  const pinger = lab.spawn(lab.client, ['ping', '-n', '-i', '0.01', '-c', '4000', '-W', '1', A.server4]);
  t.teardown(() => pinger.kill());
  const busyPoll = async () => {
    const stats = await lab.freshStats();
    if (stats.busyPoll === undefined) throw new Error('no busyPoll counters in the stats');
    return stats.busyPoll;
  };
  await sleep(300);

  // SIGSTOP holds the whole process still: a pause like a host taking the vCPU, with no other task
  // given the CPU (being stopped is a voluntary switch, not a preemption).
  // Most stops land in the polling loop and are seen (not those during a frame or a warm pass, nor
  // while preemption by other tasks on the box made it back off): each seen one is a stall, where
  // before it backed off. On a busy box fewer are seen, so it stops until 5 were, with the event
  // loop's thread at nice -20 meanwhile so that other tests' tasks rarely preempt it.
  spawnSync('renice', ['-n', '-20', '-p', String(pid)]);
  const before = await busyPoll();
  let stops = 0;
  let stalls = 0;
  const deadline = Date.now() + 15_000;
  while (stalls < 5 && Date.now() < deadline) {
    for (let i = 0; i < 10; i++, stops++) {
      process.kill(pid, 'SIGSTOP');
      await sleep(5);
      process.kill(pid, 'SIGCONT');
      await sleep(60);
    }
    stalls = (await busyPoll()).stalls - before.stalls;
  }
  t.ok(stalls >= 5, `${stalls} stalls counted over ${stops} stops`);
  spawnSync('renice', ['-n', '0', '-p', String(pid)]);

  // A busy loop at nice -20 pinned to the dataplane's CPU: the scheduler preempts the poller, which
  // backs off.
  spawnSync('taskset', ['-a', '-p', '-c', '0', String(pid)]);
  const hog = spawn('nice', ['-n', '-20', 'taskset', '-c', '0', process.execPath, '-e', 'for (;;) {}'], { stdio: 'ignore' });
  t.teardown(() => hog.kill('SIGKILL'));
  const hogStart = await busyPoll();
  await sleep(3000);
  const hogEnd = await busyPoll();
  hog.kill('SIGKILL');
  t.ok(hogEnd.backoffs - hogStart.backoffs >= 1, `polling backed off ${hogEnd.backoffs - hogStart.backoffs} times beside a busy task on its CPU`);
  const ping = lab.exec(lab.client, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '1', A.server4]);
  t.equal(ping.status, 0, 'and forwards on');
});

t.test('started without its Node.js flags, the dataplane says so; with them it does not', { skip }, async (t) => {
  const { lab } = await startLab(t, POLICY);
  const warning = /node was started without --no-memory-reducer/;
  t.notMatch(lab.dataplaneLog.join('\n'), warning, 'the lab starts it with dataplaneNodeFlags: no warning');
  const bare = new Lab();
  t.teardown(() => bare.destroy());
  bare.create();
  const policyPath = join(bare.dir, 'policy.yaml');
  writeFileSync(policyPath, POLICY);
  await bare.startDataplane(policyPath, undefined, undefined, []);
  t.match(bare.dataplaneLog.join('\n'), warning, 'plain `node gatekeeper.js run`: a warning naming the flag');
});

t.test('a bad setting stops the start with the reason, it does not fall back', { skip }, async (t) => {
  const previous = process.env[BUSY_POLL_ENV];
  process.env[BUSY_POLL_ENV] = '10ms';
  try {
    await t.rejects(startLab(t, POLICY), new RegExp(`${BUSY_POLL_ENV} must be off or a whole number`));
  } finally {
    if (previous === undefined) delete process.env[BUSY_POLL_ENV];
    else process.env[BUSY_POLL_ENV] = previous;
  }
});
