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
    for (let i = 0; i < 200 && !/is running/.test(out); i++) await sleep(50);
    const client = /namespace (gk-[0-9a-f]{6}-client)/.exec(out)?.[1];
    const server = /namespace (gk-[0-9a-f]{6}-server)/.exec(out)?.[1];
    if (!client || !server) throw new Error(`lab did not start:\n${out}`);
    return { client, server };
  };
  return { child, ready, exited, output: () => out };
}

function namespaces(): string {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
}

t.test('gatekeeper lab', { skip: labUnavailable() }, async (t) => {
  t.test('runs, forwards allowed traffic, shows counters, and cleans up after --for', async (t) => {
    const lab = startLab(['--for', '6']);
    t.teardown(() => {
      lab.child.kill('SIGKILL');
    });
    const { client } = await lab.ready();
    t.match(lab.output(), /kill -HUP \d+/, 'tells how to reload');
    const ping = spawnSync('ip', ['netns', 'exec', client, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '198.18.1.100'], { encoding: 'utf8' });
    t.equal(ping.status, 0, 'the printed ping works');
    const refused = spawnSync('ip', ['netns', 'exec', client, 'nc', '-vz', '-w', '3', '198.18.1.100', '8081'], { encoding: 'utf8' });
    t.match(refused.stderr, /refused/, 'the printed reject example is refused');
    const code = await lab.exited;
    t.equal(code, 0, 'exits 0 after --for');
    t.match(lab.output(), /forwarded [1-9]\d* .*client-ping-server/, 'live counters with the rule that matched');
    t.notMatch(namespaces(), client, 'namespaces removed');
  });

  t.test('Ctrl-C (SIGINT) removes everything', async (t) => {
    const lab = startLab([]);
    const { client, server } = await lab.ready();
    lab.child.kill('SIGINT');
    t.equal(await lab.exited, 0);
    const list = namespaces();
    t.notMatch(list, client);
    t.notMatch(list, server);
  });
});
