// The kernel fast path between real hosts, with their default offloads and with them off: a flow
// the engine decided for good is forwarded by the kernel, and counted exactly as the engine counts
// (rule packets and bytes, port counters); a frame of it the engine would judge differently still
// reaches the engine (another MAC, a malformed header); a TCP connection is taken back at its FIN;
// a policy change cuts an offloaded flow the new policy denies; once the dataplane is killed the
// kernel forwards nothing; and GATEKEEPER_FAST_PATH=off keeps every frame in the engine.

import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { DataplaneStats } from '../appliance/ipc/stats';
import { fastPathSetting } from '../appliance/dataplane/port/fast-path';
import { hostOffloadSetups, labAddresses as A, labUnavailable, sleep, startLab, type HostOffloads, type RunningLab } from './lib/lab-fixture';

const PYTHON = '/usr/bin/python3';
const UDP_PORT = 5353;
const CLIENT_PORT = 40000;
const PAYLOAD = 100;
/** Ethernet, IPv4 and UDP headers and the payload: what each datagram of the exchange is on the wire. */
const FRAME_BYTES = 14 + 20 + 8 + PAYLOAD;
const EXCHANGES = 2000;

const rules = (udp: boolean) => `version: 1
mode: enforce
default: deny
groups:
  client: [${A.client4}, "${A.client6}"]
  server: [${A.server4}, "${A.server6}"]
rules:
  - name: client-tcp
    from: client
    to: server
    service: [tcp/8080, ping]
    action: allow
${udp ? `  - name: client-udp
    from: client
    to: server
    service: udp/${UDP_PORT}
    action: allow
` : ''}`;

t.test('the setting: on (or unset) or off, else a clear error', async (t) => {
  t.equal(fastPathSetting(undefined), 'on');
  t.equal(fastPathSetting(''), 'on');
  t.equal(fastPathSetting('on'), 'on');
  t.equal(fastPathSetting('off'), 'off');
  for (const bad of ['OFF', '0', 'false', 'no']) t.throws(() => fastPathSetting(bad), /GATEKEEPER_FAST_PATH must be on or off/, `refused: ${bad}`);
});

for (const offloads of hostOffloadSetups) {
  t.test(`fast path, host offloads ${offloads}`, { skip: labUnavailable() }, (t) => fastPathTests(t, offloads));
}

t.test('GATEKEEPER_FAST_PATH=off: every frame goes through the engine', { skip: labUnavailable() }, async (t) => {
  process.env.GATEKEEPER_FAST_PATH = 'off';
  t.teardown(() => delete process.env.GATEKEEPER_FAST_PATH);
  const lab = await startLab(t, rules(true));
  startEchoServer(lab);
  await sleep(300);
  const before = await lab.lab.freshStats();
  t.equal(before.fastPath?.state, 'off', 'the stats say it is off');
  const gro = lab.lab.exec(lab.lab.appliance, ['ethtool', '-k', lab.lab.insidePort]).stdout;
  t.match(gro, /generic-receive-offload: on/, 'GRO stays on for the engine');
  t.equal(exchange(lab, 200), 200, 'the exchange works');
  const after = await lab.lab.freshStats();
  t.equal(sumPorts(after, 'fast_path_frames'), 0, 'the kernel forwarded nothing past the engine');
  const forwarded = sumPorts(after, 'forwarded') - sumPorts(before, 'forwarded');
  t.ok(forwarded >= 400 && forwarded <= 420, `the engine forwarded all 400 frames (${forwarded} with the hosts' own)`);
});

async function fastPathTests(t: Test, offloads: HostOffloads): Promise<void> {
  const lab = await startLab(t, rules(true), offloads);
  startEchoServer(lab);
  await sleep(300);
  const clientMac = lab.lab.mac(lab.lab.client);
  const serverMac = lab.lab.mac(lab.lab.server);

  t.test('it is on', async (t) => {
    const stats = await lab.lab.freshStats();
    t.equal(stats.fastPath?.state, 'on', `state ${stats.fastPath?.state} ${stats.fastPath?.reason ?? ''}`);
    t.ok((stats.fastPath?.capacity ?? 0) >= 65536, 'room for 65,536 flows');
    for (const port of [lab.lab.insidePort, lab.lab.outsidePort]) {
      const gro = lab.lab.exec(lab.lab.appliance, ['ethtool', '-k', port]).stdout;
      t.match(gro, /generic-receive-offload: off/, `${port} (veth): GRO off while the fast path runs`);
    }
  });

  t.test(`a UDP exchange of ${EXCHANGES} datagrams each way goes through the kernel, counted exactly`, async (t) => {
    const before = await lab.lab.freshStats();
    t.equal(exchange(lab, EXCHANGES), EXCHANGES, 'every datagram was answered');
    await sleep(300);
    const after = await lab.lab.freshStats();
    const fast = sumPorts(after, 'fast_path_frames') - sumPorts(before, 'fast_path_frames');
    t.ok(fast >= 2 * EXCHANGES - 4, `the kernel forwarded ${fast} of ${2 * EXCHANGES} frames (the engine decided the first of each way)`);
    t.equal(after.fastPath?.flows, 1, 'one flow offloaded');
    const rule = (s: DataplaneStats) => s.rules.find((r) => r.name === 'client-udp') ?? { packets: 0, bytes: 0, flows: 0 };
    t.equal(rule(after).packets - rule(before).packets, 2 * EXCHANGES, 'the rule counted every datagram');
    t.equal(rule(after).bytes - rule(before).bytes, 2 * EXCHANGES * FRAME_BYTES, 'and every byte');
    t.equal(rule(after).flows - rule(before).flows, 1, 'as one flow');
    // Beside the exchange the hosts send a few frames of their own (ARP, neighbour discovery).
    const about = (n: number) => n >= EXCHANGES && n <= EXCHANGES + 10;
    for (const side of ['outside', 'inside'] as const) {
      const rx = after.ports[side].rx_packets - before.ports[side].rx_packets;
      const forwarded = after.ports[side].forwarded - before.ports[side].forwarded;
      const rxBytes = after.ports[side].rx_bytes - before.ports[side].rx_bytes;
      t.ok(about(rx), `${side}: rx_packets counts the kernel's frames too (${rx})`);
      t.ok(about(forwarded), `${side}: and so does forwarded (${forwarded})`);
      t.ok(rxBytes >= EXCHANGES * FRAME_BYTES && rxBytes <= EXCHANGES * FRAME_BYTES + 1000, `${side}: and rx_bytes (${rxBytes})`);
      const tx = after.ports[side].tx_packets - before.ports[side].tx_packets;
      t.ok(about(tx), `${side}: and tx_packets of the port they left by (${tx})`);
    }
  });

  t.test('an IPv6 UDP exchange goes through the kernel too', async (t) => {
    const before = await lab.lab.freshStats();
    t.equal(exchange(lab, 500, 1, true), 500, 'every datagram was answered');
    await sleep(300);
    const after = await lab.lab.freshStats();
    const fast = sumPorts(after, 'fast_path_frames') - sumPorts(before, 'fast_path_frames');
    t.ok(fast >= 1000 - 4, `the kernel forwarded ${fast} of 1000 frames`);
    const rule = (s: DataplaneStats) => s.rules.find((r) => r.name === 'client-udp')?.bytes ?? 0;
    // Ethernet, IPv6 and UDP headers and the payload.
    t.equal(rule(after) - rule(before), 1000 * (14 + 40 + 8 + PAYLOAD), 'every byte counted');
  });

  t.test('pings go through the kernel once answered', async (t) => {
    const before = await lab.lab.freshStats();
    const ping = lab.client(['ping', '-n', '-c', '50', '-i', '0.01', '-W', '1', A.server4]);
    t.match(ping.stdout, / 0% packet loss/, 'every echo answered');
    await sleep(300);
    const after = await lab.lab.freshStats();
    const fast = sumPorts(after, 'fast_path_frames') - sumPorts(before, 'fast_path_frames');
    t.ok(fast >= 100 - 4, `the kernel forwarded ${fast} of the 100 echo frames`);
  });

  t.test('a frame of the offloaded flow from another MAC goes to the engine', async (t) => {
    const before = await lab.lab.freshStats();
    sendRaw(lab, '02:00:00:00:00:42', serverMac, 20, false);
    await sleep(300);
    const after = await lab.lab.freshStats();
    t.equal(after.ports.outside.fast_path_frames - before.ports.outside.fast_path_frames, 0, 'the kernel forwarded none of them');
    const forwarded = after.ports.outside.forwarded - before.ports.outside.forwarded;
    t.ok(forwarded >= 20 && forwarded <= 30, `the engine forwarded all 20 (${forwarded} frames in all, with the hosts' own)`);
  });

  t.test('a malformed frame of the offloaded flow goes to the engine, which drops it', async (t) => {
    const before = await lab.lab.freshStats();
    sendRaw(lab, clientMac, serverMac, 1, true);
    await sleep(300);
    const after = await lab.lab.freshStats();
    const decodeErrors = (s: DataplaneStats) => s.ports.outside.decode_errors['udp-bad-length'] ?? 0;
    t.equal(decodeErrors(after) - decodeErrors(before), 1, 'udp-bad-length counted');
    t.equal(after.ports.outside.fast_path_frames - before.ports.outside.fast_path_frames, 0, 'not forwarded by the kernel');
    t.equal(exchange(lab, 10), 10, 'the flow goes on');
  });

  t.test('a TCP transfer goes through the kernel and is taken back at its FIN', async (t) => {
    const before = await lab.lab.freshStats();
    const file = join(lab.lab.dir, 'tcp.bin');
    writeFileSync(file, randomBytes(4 << 20));
    const listener = lab.lab.spawn(lab.lab.server, ['sh', '-c', 'nc -l 8080 > /dev/null']);
    const exited = new Promise((resolve) => listener.once('exit', resolve));
    for (let i = 0; i < 100 && lab.server(['ss', '-Hltn', 'sport = :8080']).stdout.trim() === ''; i++) await sleep(50);
    const sent = lab.client(['sh', '-c', `nc -N -w 10 ${A.server4} 8080 < ${file}`], 60_000);
    t.equal(sent.status, 0, `sent ${sent.stderr}`);
    await Promise.race([exited, sleep(5000)]);
    await sleep(300);
    const after = await lab.lab.freshStats();
    const rx = after.ports.outside.rx_packets - before.ports.outside.rx_packets;
    const fast = after.ports.outside.fast_path_frames - before.ports.outside.fast_path_frames;
    t.ok(fast > rx / 2, `the kernel forwarded ${fast} of the ${rx} frames the client sent`);
    t.ok((after.fastPath?.withdrawn ?? 0) > (before.fastPath?.withdrawn ?? 0), 'the connection was taken back');
    t.equal(after.ports.outside.dropped.tcp_no_flow + after.ports.inside.dropped.tcp_no_flow, 0, 'no segment lost its flow');
  });

  t.test('a policy change cuts an offloaded flow the new policy denies', async (t) => {
    t.equal(exchange(lab, 5), 5, 'offloaded again');
    const reloaded = await lab.reload(rules(false));
    t.equal(reloaded.rules.some((r) => r.name === 'client-udp'), false, 'the new policy runs');
    t.equal(exchange(lab, 5, 0.2), 0, 'no datagram passes any more');
    const after = await lab.lab.freshStats();
    t.ok(after.ports.outside.dropped.flow_cut >= 1, 'the flow was cut');
    await lab.reload(rules(true));
    t.equal(exchange(lab, 5), 5, 'allowed again, it passes again');
  });

  t.test('once the dataplane is killed the kernel forwards nothing', async (t) => {
    t.equal(exchange(lab, 20), 20, 'offloaded');
    const stats = await lab.lab.freshStats();
    t.ok((stats.fastPath?.flows ?? 0) >= 1, 'a flow is offloaded');
    const gone = new Promise((resolve) => lab.dataplane.once('exit', resolve));
    lab.dataplane.kill('SIGKILL');
    await gone;
    t.equal(exchange(lab, 5, 0.2), 0, 'nothing passes (fail-closed)');
  });
}

function sumPorts(stats: DataplaneStats, counter: 'fast_path_frames' | 'forwarded'): number {
  return stats.ports.inside[counter] + stats.ports.outside[counter];
}

/** A UDP echo server on the server host, IPv4 and IPv6. */
function startEchoServer(lab: RunningLab): void {
  for (const [family, address] of [['AF_INET', A.server4], ['AF_INET6', A.server6]]) {
    lab.lab.spawn(lab.lab.server, [PYTHON, '-c', `
import socket
s = socket.socket(socket.${family}, socket.SOCK_DGRAM)
s.bind(('${address}', ${UDP_PORT}))
while True:
    d, a = s.recvfrom(65536)
    s.sendto(d, a)
`]);
  }
}

/** `count` datagrams from the client, each waiting for its echo; returns how many were answered. */
function exchange(lab: RunningLab, count: number, timeout = 1, ipv6 = false): number {
  const [family, client, server] = ipv6 ? ['AF_INET6', A.client6, A.server6] : ['AF_INET', A.client4, A.server4];
  const r = lab.client([PYTHON, '-c', `
import socket
s = socket.socket(socket.${family}, socket.SOCK_DGRAM)
s.bind(('${client}', ${CLIENT_PORT}))
s.settimeout(${timeout})
got = 0
for i in range(${count}):
    s.sendto(b'x' * ${PAYLOAD}, ('${server}', ${UDP_PORT}))
    try:
        if len(s.recv(65536)) == ${PAYLOAD}:
            got += 1
    except socket.timeout:
        pass
print(got)
`], 120_000);
  return Number(r.stdout.trim() || -1);
}

/**
 * `count` frames of the exchange's flow (client to server), written on the client's wire by hand:
 * from `srcMac`, and with `badLength` a UDP length beyond the IP payload.
 */
function sendRaw(lab: RunningLab, srcMac: string, dstMac: string, count: number, badLength: boolean): void {
  const r = lab.client([PYTHON, '-c', `
import socket, struct
def mac(text):
    return bytes(int(x, 16) for x in text.split(':'))
def checksum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
payload = b'x' * ${PAYLOAD}
udp = struct.pack('!HHHH', ${CLIENT_PORT}, ${UDP_PORT}, 8 + len(payload) + (100 if ${badLength ? 'True' : 'False'} else 0), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton('${A.client4}'), socket.inet_aton('${A.server4}'))
ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
frame = mac('${dstMac}') + mac('${srcMac}') + b'\\x08\\x00' + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
for i in range(${count}):
    s.send(frame)
`]);
  if (r.status !== 0) throw new Error(`raw frames not sent: ${r.stderr}`);
}
