// `gatekeeper lab` as a person uses it: starts, works with real tools, removes everything on exit.

import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { cliPath } from '../appliance/paths';
import { labUnavailable, sleep } from './lib/lab-fixture';

function startLab(args: string[]) {
  const child = spawn(process.execPath, [cliPath, 'lab', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ready = async (): Promise<{ client: string; server: string }> => {
    // Management and the dataplane both start first: allow for a loaded machine.
    for (let i = 0; i < 600 && !/is running/.test(out) && child.exitCode === null; i++) await sleep(50);
    const client = /namespace (gk-[0-9a-f]{6}-client)/.exec(out)?.[1];
    const server = /namespace (gk-[0-9a-f]{6}-server)/.exec(out)?.[1];
    if (!client || !server) throw new Error(`lab did not start:\n${out}`);
    return { client, server };
  };
  /** Ctrl-C as a person would (the lab cleans up after itself); SIGKILL only if it hangs. */
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, ready, exited, stop, output: () => out };
}

function namespaces(): string {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
}

t.test('gatekeeper lab', { skip: labUnavailable() }, async (t) => {
  t.test('runs, forwards allowed traffic, shows counters, and cleans up after --for', async (t) => {
    const lab = startLab(['--for', '8', '--listen', '127.0.0.1:18443']);
    t.teardown(lab.stop);
    const { client } = await lab.ready();
    t.match(lab.output(), /kill -HUP \d+/, 'tells how to reload');
    const ui = /Web UI: (http:\/\/\S+)\s+user (\S+)\s+password (\S+)/.exec(lab.output());
    t.ok(ui, 'prints the web UI address and the admin login');
    if (ui) {
      const login = await fetch(`${ui[1]}/api/v1/auth/login`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: ui[2], password: ui[3] }),
      });
      t.equal(login.status, 200, 'the printed admin password logs in');
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
      let pairs: { connected: boolean }[] = [];
      for (let i = 0; i < 40 && !pairs.some((p) => p.connected); i++) {
        const status = await fetch(`${ui[1]}/api/v1/status`, { headers: { cookie } });
        pairs = ((await status.json()) as { pairs: { connected: boolean }[] }).pairs;
        if (!pairs.some((p) => p.connected)) await sleep(100);
      }
      t.ok(pairs.some((p) => p.connected), 'the lab dataplane is connected to management');
    }
    const ping = spawnSync('ip', ['netns', 'exec', client, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '198.18.1.100'], { encoding: 'utf8' });
    t.equal(ping.status, 0, 'the printed ping works');
    for (const address of ['198.18.1.100', '2001:2:0:1::100']) {
      const allowed = spawnSync('ip', ['netns', 'exec', client, 'nc', '-vz', '-w', '3', address, '8080'], { encoding: 'utf8' });
      t.equal(allowed.status, 0, `the printed allowed example connects to ${address}: ${allowed.stderr}`);
    }
    const refused = spawnSync('ip', ['netns', 'exec', client, 'nc', '-vz', '-w', '3', '198.18.1.100', '8081'], { encoding: 'utf8' });
    t.match(refused.stderr, /refused/, 'the printed reject example is refused');
    const code = await lab.exited;
    t.equal(code, 0, 'exits 0 after --for');
    t.match(lab.output(), /forwarded [1-9]\d* .*client-ping-server/, 'live counters with the rule that matched');
    t.notMatch(namespaces(), client, 'namespaces removed');
  });

  t.test('Ctrl-C (SIGINT) removes everything', async (t) => {
    const lab = startLab(['--listen', '127.0.0.1:18444']);
    t.teardown(lab.stop);
    const { client, server } = await lab.ready();
    lab.child.kill('SIGINT');
    t.equal(await lab.exited, 0);
    const list = namespaces();
    t.notMatch(list, client);
    t.notMatch(list, server);
  });
});
