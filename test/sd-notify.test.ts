// sd_notify messages checked on a real Unix datagram socket standing in for systemd's $NOTIFY_SOCKET
// (systemd is not PID 1 on the test machines, so the manager's side is played by a Python receiver).

import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { notifyCounters, notifyReady, notifyStatus, notifyStopping, startWatchdog, watchdogIntervalMs } from '../appliance/sd-notify';

// Prints every datagram as a JSON string, one per line; the fds systemd-notify passes with BARRIER=1
// are closed when read, which is what releases its barrier.
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("listening"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

interface Receiver {
  path: string;
  /** Every message but the BARRIER=1 that systemd-notify sends after each one. */
  messages: string[];
  waitFor(count: number, timeoutMs?: number): Promise<void>;
}

const toolsMissing = ['python3', 'systemd-notify'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startReceiver(t: Test): Promise<Receiver> {
  const dir = mkdtempSync(join(tmpdir(), 'gk-notify-'));
  const path = join(dir, 'notify.sock');
  const child = spawn('python3', ['-u', '-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const savedSocket = process.env.NOTIFY_SOCKET;
  t.teardown(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    if (savedSocket === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = savedSocket;
  });
  const messages: string[] = [];
  let listening: () => void = () => {};
  const started = new Promise<void>((resolve) => { listening = resolve; });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const text = JSON.parse(line) as string;
    if (text === 'listening') listening();
    else if (text !== 'BARRIER=1') messages.push(text);
  });
  await started;
  process.env.NOTIFY_SOCKET = path;
  return {
    path,
    messages,
    async waitFor(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count && Date.now() < deadline) await sleep(20);
    },
  };
}

/** Kill this process's notification helper (the shell that runs systemd-notify); false if none ran. */
function killHelper(): boolean {
  const pids = spawnSync('pgrep', ['-P', String(process.pid), '-f', 'systemd-notify'],
    { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } }).stdout
    .split('\n').filter(Boolean);
  for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
  return pids.length > 0;
}

/** Set these environment variables for the rest of the test; the old values come back at its end. */
function withEnv(t: Test, vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  t.teardown(() => apply(saved));
}

t.test('watchdog interval follows sd_watchdog_enabled(3)', async (t) => {
  const pid = String(process.pid);
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '20000000' }), 10_000, 'half of WatchdogSec=20s');
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '20000000', WATCHDOG_PID: pid }), 10_000, 'for this process');
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '20000000', WATCHDOG_PID: '1' }), undefined, 'for another process');
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '20000000' }), undefined, 'no socket');
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x' }), undefined, 'watchdog off');
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '0' }), undefined, 'zero');
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '-5' }), undefined, 'negative');
  t.equal(watchdogIntervalMs({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '10s' }), undefined, 'not a number');
});

t.test('without NOTIFY_SOCKET nothing is sent and nothing fails', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: undefined, WATCHDOG_USEC: '100000' });
  const before = { ...notifyCounters };
  notifyReady('ready');
  notifyStatus('status');
  notifyStopping();
  let asked = 0;
  const stop = startWatchdog(() => { asked++; return true; });
  await sleep(300);
  stop();
  t.same(notifyCounters, before, 'no message attempted');
  t.equal(asked, 0, 'the watchdog timer never ran');
});

t.test('with systemd-notify and a receiver', { skip: toolsMissing && `needs ${toolsMissing}` }, async (t) => {
  t.test('ready, status and stopping arrive in order, one line each', async (t) => {
    const receiver = await startReceiver(t);
    const sentBefore = notifyCounters.sent;
    const started = process.hrtime.bigint();
    notifyReady('forwarding: 3 rules');
    notifyStatus('reloaded\ngeneration 2');
    notifyStopping();
    const callMs = Number(process.hrtime.bigint() - started) / 1e6;
    // The first call also starts the helper (one fork of this process).
    t.ok(callMs < 100, `the calls return at once (${callMs.toFixed(2)} ms for three)`);
    await receiver.waitFor(3);
    t.same(receiver.messages, ['READY=1\nSTATUS=forwarding: 3 rules', 'STATUS=reloaded generation 2', 'STOPPING=1']);
    // The receiver may read the last message before systemd-notify has reported back.
    for (let i = 0; i < 100 && notifyCounters.sent - sentBefore < 3; i++) await sleep(20);
    t.equal(notifyCounters.sent - sentBefore, 3, 'three counted as sent');
  });

  t.test('the watchdog pings at half WATCHDOG_USEC only while healthy', async (t) => {
    const receiver = await startReceiver(t);
    withEnv(t, { WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) });
    let health: 'healthy' | 'unhealthy' | 'throws' = 'healthy';
    const stop = startWatchdog(() => {
      if (health === 'throws') throw new Error('health check broke');
      return health === 'healthy';
    });
    t.teardown(stop);
    const pings = () => receiver.messages.filter((m) => m === 'WATCHDOG=1').length;

    await sleep(1050);
    const healthyPings = pings();
    // A ping every 100 ms, each through a short systemd-notify: about 10 in a second.
    t.ok(healthyPings >= 4 && healthyPings <= 11, `${healthyPings} pings in 1 s while healthy`);

    health = 'unhealthy';
    await sleep(150); // a ping already on its way may still arrive
    const atUnhealthy = pings();
    await sleep(600);
    t.equal(pings(), atUnhealthy, 'no ping while unhealthy');

    health = 'throws';
    await sleep(400);
    t.equal(pings(), atUnhealthy, 'a health check that throws counts as unhealthy');

    health = 'healthy';
    await sleep(400);
    t.ok(pings() > atUnhealthy, 'pings resume when healthy again');

    stop();
    await sleep(150);
    const atStop = pings();
    await sleep(400);
    t.equal(pings(), atStop, 'no ping after stop()');
  });

  t.test('a watchdog meant for another process (WATCHDOG_PID) stays off', async (t) => {
    const receiver = await startReceiver(t);
    withEnv(t, { WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) });
    const stop = startWatchdog(() => true);
    t.teardown(stop);
    await sleep(500);
    t.same(receiver.messages, []);
  });

  t.test('a burst keeps its order; past the queue limit messages are dropped and counted', async (t) => {
    const receiver = await startReceiver(t);
    const dropped = notifyCounters.dropped;
    for (let i = 0; i < 40; i++) notifyStatus(`step ${i}`);
    // One in flight plus 32 waiting are kept.
    t.equal(notifyCounters.dropped - dropped, 7, '7 dropped');
    await receiver.waitFor(33, 15_000);
    t.same(receiver.messages, Array.from({ length: 33 }, (_, i) => `STATUS=step ${i}`));
  });

  t.test('failures are counted, never thrown; a helper that dies is replaced', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'gk-notify-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const waitForFailure = async (before: number) => {
      for (let i = 0; i < 100 && notifyCounters.failed === before; i++) await sleep(20);
      return notifyCounters.failed - before;
    };

    withEnv(t, { NOTIFY_SOCKET: join(dir, 'nobody-listens.sock') });
    let failed = notifyCounters.failed;
    notifyReady('ready');
    t.equal(await waitForFailure(failed), 1, 'a socket nobody listens on');

    // A new helper (the old one killed) started where no systemd-notify is on the PATH.
    killHelper();
    withEnv(t, { PATH: dir });
    failed = notifyCounters.failed;
    t.doesNotThrow(() => notifyStatus('no systemd-notify on PATH'));
    t.equal(await waitForFailure(failed), 1, 'systemd-notify missing');
    killHelper();
  });

  t.test('after the helper is killed, messages go through a new one', async (t) => {
    const receiver = await startReceiver(t);
    notifyStatus('before');
    await receiver.waitFor(1);
    t.ok(killHelper(), 'helper killed');
    await sleep(100);
    notifyStatus('after');
    await receiver.waitFor(2);
    t.same(receiver.messages, ['STATUS=before', 'STATUS=after']);
  });
});
