// The gatekeeper between real Linux hosts (network namespaces), driven with real tools, once with
// the hosts' default offloads (partial checksums, TSO/GSO super-frames) and once with them off.

import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { hostOffloadSetups, labAddresses as A, labUnavailable, sleep, startLab, type HostOffloads, type RunningLab } from './lib/lab-fixture';
import { frame } from './lib/frames';

const policy = (extraRules = '') => `version: 1
mode: enforce
default: deny
groups:
  client: [${A.client4}, "${A.client6}", 198.18.2.10]
  server: [${A.server4}, "${A.server6}", 198.18.2.100]
services:
  allowed-tcp: [tcp/8080, tcp/5201]
rules:
  - name: client-pings-server
    from: client
    to: server
    service: ping
    action: allow
  - name: client-tcp
    from: client
    to: server
    service: allowed-tcp
    action: allow
  - name: client-udp
    from: client
    to: server
    service: udp/5353
    action: allow
  - name: client-rejected
    from: client
    to: server
    service: tcp/8081
    action: reject
${extraRules}`;

for (const offloads of hostOffloadSetups) t.test(`lab, host offloads ${offloads}`, { skip: labUnavailable() }, (t) => labTests(t, offloads));

async function labTests(t: Test, offloads: HostOffloads): Promise<void> {
  const lab = await startLab(t, policy(), offloads);

  t.test('ICMP: client pings the server (IPv4), ARP resolves through the bridge', async (t) => {
    const r = lab.client(['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]);
    t.equal(r.status, 0, r.stdout + r.stderr);
    const neigh = lab.client(['ip', 'neigh', 'show', A.server4]).stdout;
    t.match(neigh, /lladdr [0-9a-f:]{17}/, 'ARP entry learned across the appliance');
  });

  t.test('ICMP: the protected server may not ping out', async (t) => {
    const r = lab.server(['ping', '-c', '1', '-W', '1', A.client4]);
    t.not(r.status, 0, 'no reply');
  });

  t.test('IPv6: neighbour discovery works, ping and TCP pass', async (t) => {
    const ping = lab.client(['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', A.server6]);
    t.equal(ping.status, 0, ping.stdout + ping.stderr);
    const srv = lab.lab.spawn(lab.lab.server, ['sh', '-c', 'printf from-server6 | nc -6 -N -l 8080']);
    await waitListening(lab, 8080);
    const r = lab.client(['sh', '-c', `printf from-client6 | nc -6 -N -w 3 ${A.server6} 8080`]);
    t.equal(r.stdout, 'from-server6', 'server data reached the client over IPv6');
    srv.kill();
  });

  t.test('TCP: allowed connection carries data both ways', async (t) => {
    const srv = lab.lab.spawn(lab.lab.server, ['sh', '-c', 'printf from-server | nc -N -l 8080']);
    let received = '';
    srv.stdout?.on('data', (d: Buffer) => (received += d.toString()));
    await waitListening(lab, 8080);
    const r = lab.client(['sh', '-c', `printf from-client | nc -N -w 3 ${A.server4} 8080`]);
    t.equal(r.stdout, 'from-server', 'client received the server data');
    await sleep(200);
    t.equal(received, 'from-client', 'server received the client data');
  });

  t.test('UDP: allowed datagram and its reply pass', async (t) => {
    const echo = `import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('${A.server4}',5353));d,a=s.recvfrom(100);s.sendto(d.upper(),a)`;
    const srv = lab.lab.spawn(lab.lab.server, ['python3', '-c', echo]);
    await sleep(300);
    const ask = `import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.sendto(b'hello',('${A.server4}',5353));print(s.recvfrom(100)[0].decode())`;
    const r = lab.client(['python3', '-c', ask]);
    t.equal(r.stdout.trim(), 'HELLO', r.stderr);
    srv.kill();
  });

  t.test('TCP: a denied connection times out, a rejected one is refused at once', async (t) => {
    const listeners = [9999, 8081].map((p) => lab.lab.spawn(lab.lab.server, ['nc', '-lk', String(p)]));
    await waitListening(lab, 9999);
    const before = lab.lab.stats().ports.outside.dropped.policy;
    const denied = lab.client(['nc', '-z', '-w', '2', A.server4, '9999']);
    t.not(denied.status, 0, 'denied connection fails');
    t.ok(denied.ms >= 1800, `it timed out (${denied.ms} ms), nothing answered`);
    const rejected = lab.client(['nc', '-vz', '-w', '5', A.server4, '8081']);
    t.not(rejected.status, 0, 'rejected connection fails');
    t.match(rejected.stderr, /refused/i, 'with connection refused');
    t.ok(rejected.ms < 1500, `at once (${rejected.ms} ms)`);
    const stats = await lab.lab.freshStats();
    t.ok(stats.ports.outside.dropped.policy > before, 'drops counted by policy');
    t.ok(stats.ports.outside.rejects_sent >= 1, 'RST sent');
    listeners.forEach((l) => l.kill());
  });

  t.test('TCP: an unsolicited connection from the protected side does not pass', async (t) => {
    const listener = lab.lab.spawn(lab.lab.client, ['nc', '-l', '8080']);
    await sleep(200);
    const r = lab.server(['nc', '-z', '-w', '2', A.client4, '8080']);
    t.not(r.status, 0, 'server cannot open a connection to the client');
    listener.kill();
  });

  t.test('802.1Q: tagged traffic is bridged both ways and filtered', async (t) => {
    // This kernel has no 8021q module for VLAN interfaces, so the hosts send tagged frames from a
    // packet socket and tcpdump on the far host shows what crossed the appliance.
    const clientMac = macBytes(lab.lab.mac(lab.lab.client));
    const serverMac = macBytes(lab.lab.mac(lab.lab.server));
    const fromClient = (dport: number, flags: string) => frame({ src: VLAN_CLIENT, dst: VLAN_SERVER, proto: 'tcp', vlan: 100,
      sport: 41000, dport, flags, srcMac: clientMac, dstMac: serverMac });
    const fromServer = frame({ src: VLAN_SERVER, dst: VLAN_CLIENT, proto: 'tcp', vlan: 100, sport: 8080, dport: 41000,
      flags: 'SA', srcMac: serverMac, dstMac: clientMac });
    const atServer = captureTagged(lab, lab.lab.server);
    const atClient = captureTagged(lab, lab.lab.client);
    await sleep(1000);
    inject(lab, lab.lab.client, fromClient(8080, 'S'));
    inject(lab, lab.lab.client, fromClient(9999, 'S'));
    await sleep(200);
    inject(lab, lab.lab.server, fromServer);
    const server = await atServer;
    const client = await atClient;
    t.match(server, /vlan 100.*\.41000 > [\d.]+\.8080: Flags \[S\]/, 'allowed tagged SYN reached the server');
    t.notMatch(server, /\.9999:/, 'denied tagged SYN did not');
    t.match(client, /vlan 100.*\.8080 > [\d.]+\.41000: Flags \[S\.\]/, 'tagged reply reached the client');
  });

  t.test('reload during an iperf3 run drops nothing of the allowed flow', async (t) => {
    const srv = lab.lab.spawn(lab.lab.server, ['iperf3', '-s', '-1', '-B', A.server4]);
    await waitListening(lab, 5201);
    const before = await lab.lab.freshStats();
    const client = lab.lab.spawn(lab.lab.client, ['iperf3', '-c', A.server4, '-t', '4', '-J']);
    // Listened for at once: on a busy box the reload below can outlast the 4 s run.
    const clientDone = new Promise((r) => client.once('exit', r));
    let json = '';
    client.stdout?.on('data', (d: Buffer) => (json += d.toString()));
    await sleep(1500);
    const reloaded = await lab.reload(policy(`  - name: added-during-test
    from: client
    to: server
    service: tcp/9000
    action: allow
`));
    t.equal(reloaded.generation, before.generation + 1, 'new generation running');
    await clientDone;
    srv.kill();
    const result = JSON.parse(json) as { error?: string; end: { sum_sent: { bytes: number } } };
    t.notOk(result.error, 'iperf3 completed');
    t.ok(result.end.sum_sent.bytes > 1_000_000, `data flowed (${result.end.sum_sent.bytes} bytes)`);
    const after = await lab.lab.freshStats();
    for (const reason of ['policy', 'flow_cut', 'tcp_no_flow', 'wrong_port'] as const) {
      const dropped = after.ports.outside.dropped[reason] + after.ports.inside.dropped[reason] -
        before.ports.outside.dropped[reason] - before.ports.inside.dropped[reason];
      t.equal(dropped, 0, `no ${reason} drops during the run`);
    }
  });

  t.test('reload that removes a rule cuts its live flows', async (t) => {
    const srv = lab.lab.spawn(lab.lab.server, ['nc', '-l', '8080']);
    await waitListening(lab, 8080);
    const conn = lab.lab.spawn(lab.lab.client, ['sh', '-c', `(printf a; sleep 1.5; printf b) | nc -w 2 ${A.server4} 8080`]);
    const connDone = new Promise((r) => conn.once('exit', r));
    await sleep(500);
    const cutPolicy = policy().replace('allowed-tcp: [tcp/8080, tcp/5201]', 'allowed-tcp: [tcp/5201]');
    await lab.reload(cutPolicy);
    await connDone;
    const stats = await lab.lab.freshStats();
    t.ok(stats.flows.cut >= 1, `flow cut (${stats.flows.cut})`);
    srv.kill();
    await lab.reload(policy());
  });

  t.test('a malformed policy is refused and the old one keeps working', async (t) => {
    const before = lab.lab.stats();
    const logBefore = lab.lab.dataplaneLog.length;
    const stats = await lab.reload('version: 1\nrules:\n  - name: x\n    from: nowhere\n    action: allow\n   bad: indent\n');
    t.equal(stats.generation, before.generation, 'generation unchanged');
    t.equal(stats.policyHash, before.policyHash, 'same policy running');
    const log = lab.lab.dataplaneLog.slice(logBefore).join('\n');
    t.match(log, /policy\.yaml:\d+:\d+: /, 'error reported as file:line:col');
    t.match(log, /reload refused/, 'refusal logged');
    const ping = lab.client(['ping', '-c', '1', '-W', '2', A.server4]);
    t.equal(ping.status, 0, 'allowed traffic still passes');
  });

  t.test('teardown leaves nothing behind', async (t) => {
    const names = [lab.lab.client, lab.lab.server, lab.lab.appliance];
    lab.lab.destroy();
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const n of names) t.notMatch(list, n, `${n} removed`);
    const dp = lab.dataplane;
    if (dp.exitCode === null && dp.signalCode === null) await new Promise((r) => dp.once('exit', r));
    t.pass('dataplane stopped');
  });
}

const VLAN_CLIENT = '198.18.2.10';
const VLAN_SERVER = '198.18.2.100';

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

/** Send one raw frame out of a host's eth0. */
function inject(lab: RunningLab, ns: string, bytes: Buffer): void {
  const send = 'import socket,sys;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(("eth0",0));s.send(bytes.fromhex(sys.argv[1]))';
  const r = lab.lab.exec(ns, ['python3', '-c', send, bytes.toString('hex')]);
  if (r.status !== 0) throw new Error(`inject failed: ${r.stderr}`);
}

/** tcpdump's view of tagged frames arriving at a host during the next three seconds. */
function captureTagged(lab: RunningLab, ns: string): Promise<string> {
  const dump = lab.lab.spawn(ns, ['timeout', '6', 'tcpdump', '-nn', '-e', '-l', '-Q', 'in', '-i', 'eth0', 'vlan']);
  let out = '';
  dump.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => dump.on('exit', () => resolve(out)));
}

async function waitListening(lab: RunningLab, port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = lab.server(['ss', '-Hltn', `sport = :${port}`]);
    if (r.stdout.trim() !== '') return;
    await sleep(50);
  }
}
