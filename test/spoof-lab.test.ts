// address@MAC bindings against real hosts: a third namespace, the attacker, sits on the server's
// segment (a macvlan on the server's veth, so its frames reach the gatekeeper's inside port like the
// server's) and claims the server's address from its own MAC, with ping (IP) and with raw ARP frames
// (ARP spoofing, sent with Python's AF_PACKET). First under a policy without the binding (the control:
// the client receives the spoofed pings and its ARP cache is poisoned), then after a reload that binds
// the server's address to its MAC: the spoofed packets are dropped and counted as spoofed_source,
// the client's cache keeps the server's MAC, and real traffic still flows. Last, with a test
// management peer on the dataplane's socket: the spoof.summary event arrives with the claimed address,
// the attacker's MAC and the bound MAC.

import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GatekeeperEvent, SpoofSummaryEvent } from '../appliance/ipc/events';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import { Lab } from '../appliance/lab/lab';
import { labAddresses as A, labUnavailable, sleep, startLab } from './lib/lab-fixture';

const policy = (server: string) => `version: 1
default: deny
groups:
  client: [${A.client4}]
  server: [${server}]
rules:
  - name: client-to-server
    from: client
    to: server
    service: [ping, tcp/8080]
    action: allow
  - name: server-pings-client
    from: server
    to: client
    service: ping
    action: allow
`;

/** Echo requests the client's stack received (its namespace's /proc/net/snmp). */
function echoesReceived(run: (argv: string[]) => { stdout: string }): number {
  const lines = run(['cat', '/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Icmp:'));
  const names = lines[0].split(/\s+/);
  return Number(lines[1].split(/\s+/)[names.indexOf('InEchos')]);
}

/** Python: send `count` ARP requests claiming `ip` from this interface's MAC, to everyone, `gap` seconds apart. */
const arpSpoofer = `
import socket, sys, time
dev, ip, target, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
mac = bytes.fromhex(open('/sys/class/net/%s/address' % dev).read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
arp = bytes([0, 1, 8, 0, 6, 4, 0, 1]) + mac + socket.inet_aton(ip) + bytes(6) + socket.inet_aton(target)
for i in range(count):
    s.send(b'\\xff' * 6 + mac + b'\\x08\\x06' + arp + bytes(18))
    time.sleep(0.3)
`;

/**
 * A third namespace on the server's segment: a macvlan on the server's veth, holding the server's
 * address, that knows the client's MAC (its own ARP would be spoofing too). Removed by teardown.
 */
function addAttacker(t: Test, lab: Lab) {
  const attacker = `gk-${lab.id}-attacker`;
  const inAttacker = (argv: string[]) => spawnSync('ip', ['netns', 'exec', attacker, ...argv], { encoding: 'utf8', timeout: 20_000 });
  const must = (argv: string[]) => {
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  };
  t.teardown(() => {
    spawnSync('ip', ['netns', 'pids', attacker], { encoding: 'utf8' }).stdout?.split('\n').filter(Boolean).forEach((pid) => spawnSync('kill', ['-9', pid]));
    spawnSync('ip', ['netns', 'del', attacker]);
  });
  must(['ip', 'netns', 'add', attacker]);
  must(['ip', '-n', lab.server, 'link', 'add', 'link', 'eth0', 'name', 'atk0', 'type', 'macvlan', 'mode', 'bridge']);
  must(['ip', '-n', lab.server, 'link', 'set', 'atk0', 'netns', attacker]);
  must(['ip', '-n', attacker, 'addr', 'add', `${A.server4}/24`, 'dev', 'atk0']);
  must(['ip', '-n', attacker, 'link', 'set', 'atk0', 'up']);
  must(['ip', '-n', attacker, 'neigh', 'replace', A.client4, 'lladdr', lab.mac(lab.client), 'dev', 'atk0', 'nud', 'permanent']);
  return {
    mac: inAttacker(['cat', '/sys/class/net/atk0/address']).stdout.trim(),
    pings: (n: number) => inAttacker(['ping', '-c', String(n), '-i', '0.2', '-W', '1', A.client4]),
    arp: (n: number) => inAttacker(['python3', '-c', arpSpoofer, 'atk0', A.server4, A.client4, String(n)]),
  };
}

t.test('spoofing the server address from another namespace', { skip: labUnavailable() }, async (t) => {
  const lab = await startLab(t, policy(A.server4));
  const attacker = addAttacker(t, lab.lab);
  const serverMac = lab.lab.mac(lab.lab.server);
  t.not(attacker.mac, serverMac, 'the attacker has a MAC of its own');
  const clientCacheOfServer = () => lab.client(['ip', 'neigh', 'show', A.server4]).stdout;
  const resetClientCache = () => lab.client(['ip', 'neigh', 'replace', A.server4, 'lladdr', serverMac, 'dev', 'eth0', 'nud', 'stale']);
  const spoofed = async () => {
    const ports = (await lab.lab.freshStats()).ports;
    return { inside: ports.inside.dropped.spoofed_source, outside: ports.outside.dropped.spoofed_source };
  };

  t.test('control, no binding: the spoofed pings reach the client and the spoofed ARP poisons its cache', async (t) => {
    resetClientCache();
    const before = echoesReceived(lab.client);
    attacker.pings(5);
    t.ok(echoesReceived(lab.client) - before >= 5, `the client received the attacker's pings (${echoesReceived(lab.client) - before})`);
    const arp = attacker.arp(6);
    t.equal(arp.status, 0, arp.stderr);
    t.match(clientCacheOfServer(), new RegExp(`lladdr ${attacker.mac}`), 'the client now sends the server\'s traffic to the attacker');
    t.same(await spoofed(), { inside: 0, outside: 0 }, 'nothing counted as spoofed');
  });

  t.test('bound: the spoofed packets are dropped and counted, the real ones pass', async (t) => {
    const reloaded = await lab.reload(policy(`${A.server4}@${serverMac}`));
    t.equal(reloaded.generation, 2, 'the policy with the binding runs');
    resetClientCache();
    t.equal(lab.client(['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]).status, 0, 'the client reaches the real server');
    const before = echoesReceived(lab.client);
    const beforeCount = await spoofed();
    attacker.pings(5);
    t.equal(echoesReceived(lab.client) - before, 0, 'no spoofed ping reached the client');
    const arp = attacker.arp(6);
    t.equal(arp.status, 0, arp.stderr);
    t.match(clientCacheOfServer(), new RegExp(`lladdr ${serverMac}`), 'the client\'s cache keeps the server\'s MAC');
    await sleep(1100);
    const after = await spoofed();
    t.ok(after.inside - beforeCount.inside >= 11, `5 pings and 6 ARP requests counted as spoofed_source on the inside port (${after.inside - beforeCount.inside})`);
    t.equal(after.outside, 0, 'nothing on the outside port');
    const server = lab.server(['ping', '-c', '2', '-i', '0.2', '-W', '2', A.client4]);
    t.equal(server.status, 0, `the real server still pings the client: ${server.stdout}`);
    lab.client(['ip', 'neigh', 'flush', 'dev', 'eth0']);
    const fresh = lab.client(['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]);
    t.equal(fresh.status, 0, 'after a flush the client resolves the server by ARP again');
    t.match(clientCacheOfServer(), new RegExp(`lladdr ${serverMac}`), 'and learns the real MAC');
    await sleep(1100);
    t.ok((await spoofed()).inside > after.inside, 'the attacker\'s kernel answered the client\'s ARP request for the server too: dropped');
  });
});

t.test('the spoof.summary event reaches management', { skip: labUnavailable() }, async (t) => {
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'gk-spoof-lab-'));
  const sockets = new Set<Socket>();
  const events: GatekeeperEvent[] = [];
  // A test management peer: answers hello, keeps the events.
  const peer = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const reader = new LineReader<Record<string, unknown>>((m) => {
      if (m.type === 'hello') socket.write(encodeMessage({ type: 'welcome', version: 1 }));
      if (m.type === 'events') events.push(...(m.events as GatekeeperEvent[]));
    }, () => socket.destroy());
    socket.on('data', (chunk) => reader.push(chunk));
  });
  t.teardown(async () => {
    lab.destroy();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => peer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  const socketPath = join(dir, 'mgmt.sock');
  await new Promise<void>((resolve) => peer.listen(socketPath, resolve));
  lab.create();
  const serverMac = lab.mac(lab.server);
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, policy(`${A.server4}@${serverMac}`));
  await lab.startDataplane(policyPath, 15_000, socketPath);
  const attacker = addAttacker(t, lab);
  attacker.pings(3);
  attacker.arp(2);
  // Summaries are drained every 10 s.
  const deadline = Date.now() + 15_000;
  const spoofs = () => events.filter((e) => e.type === 'spoof.summary') as SpoofSummaryEvent[];
  while (Date.now() < deadline && !(spoofs().some((e) => e.kind === 'ip') && spoofs().some((e) => e.kind === 'arp'))) await sleep(200);
  const ip = spoofs().find((e) => e.kind === 'ip');
  const arp = spoofs().find((e) => e.kind === 'arp');
  t.match(ip, { address: A.server4, groups: ['server'], mac: attacker.mac, boundMac: serverMac, side: 'inside', monitor: false, severity: 'warning' },
    'the spoofed pings: claimed address, the attacker\'s MAC, the bound MAC');
  t.ok(ip !== undefined && ip.count >= 3, `counted (${ip?.count})`);
  t.match(arp, { address: A.server4, mac: attacker.mac, boundMac: serverMac, side: 'inside' }, 'the spoofed ARP');
  t.ok(arp !== undefined && arp.count >= 2, `counted (${arp?.count})`);
});
