// The gatekeeper between real hosts with their default offloads on (TX checksum offload, TSO/GSO:
// they hand over partial checksums and 64 KiB super-frames) and with them off: files cross it
// byte-exact over TCP, IPv4 and IPv6, both ways; a UDP super-frame is decided once, and a denied
// one is denied whole. 802.1Q-tagged super-frames are tested at the port (test/port-offload.test.ts):
// this kernel has neither 8021q, bridge VLAN filtering nor act_vlan, so lab hosts cannot tag.
// Modbus requests inside a TCP super-frame are inspected one by one: test/modbus-streams.test.ts.
// rx_segments counts the segments a super-frame stands for.

import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostOffloadSetups, labAddresses as A, labUnavailable, sleep, startLab, type HostOffloads, type RunningLab } from './lib/lab-fixture';

const FILE_BYTES = 8 << 20;
const MSS = 1000;
const SEGMENTS = 16;

const policy = `version: 1
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
  - name: client-tcp
    from: client
    to: server
    service: tcp/8080
    action: allow
  - name: client-udp
    from: client
    to: server
    service: udp/5353
    action: allow
`;

for (const offloads of hostOffloadSetups) {
  t.test(`lab, host offloads ${offloads}`, { skip: labUnavailable() }, (t) => offloadTests(t, offloads));
}

async function offloadTests(t: Test, offloads: HostOffloads): Promise<void> {
  const lab = await startLab(t, policy, offloads);
  const file = join(lab.lab.dir, 'file.bin');
  writeFileSync(file, randomBytes(FILE_BYTES));
  const sum = sha256(readFileSync(file));

  for (const [family, server, flag] of [['IPv4', A.server4, '-4'], ['IPv6', A.server6, '-6']] as const) {
    t.test(`${family}: an 8 MiB file crosses byte-exact, client to server and back`, async (t) => {
      const up = join(lab.lab.dir, `up-${family}.bin`);
      const listener = lab.lab.spawn(lab.lab.server, ['sh', '-c', `nc ${flag} -l 8080 > ${up}`]);
      const exited = new Promise((resolve) => listener.once('exit', resolve));
      await waitListening(lab);
      const sent = lab.client(['sh', '-c', `nc -N -w 10 ${server} 8080 < ${file}`], 60_000);
      t.equal(sent.status, 0, `upload finished ${sent.stderr}`);
      await Promise.race([exited, sleep(5000)]);
      t.equal(sha256(readFileSync(up)), sum, 'the server got the same bytes');

      const down = join(lab.lab.dir, `down-${family}.bin`);
      lab.lab.spawn(lab.lab.server, ['sh', '-c', `nc ${flag} -N -l 8080 < ${file}`]);
      await waitListening(lab);
      const got = lab.client(['sh', '-c', `nc -d -w 10 ${server} 8080 > ${down}`], 60_000);
      t.equal(got.status, 0, `download finished ${got.stderr}`);
      t.equal(sha256(readFileSync(down)), sum, 'the client got the same bytes');
    });
  }

  t.test('a UDP super-frame is decided once; a denied one is denied whole', async (t) => {
    const before = await lab.lab.freshStats();
    const received = udpSegments(lab, 5353);
    const deniedAtServer = udpSegments(lab, 5354);
    await sleep(300);
    sendUdpSuperFrame(lab, 5353);
    sendUdpSuperFrame(lab, 5354);
    t.same(await received, Array.from({ length: SEGMENTS }, (_, i) => i), `allowed: all ${SEGMENTS} segments arrived, checksums right (the kernel drops bad ones)`);
    t.same(await deniedAtServer, [], 'denied: no segment of it arrived');
    const after = await lab.lab.freshStats();
    const policyDrops = after.ports.outside.dropped.policy - before.ports.outside.dropped.policy;
    // With offloads the host hands over one super-frame: one decision, one drop. Without, the
    // host cut it first and every segment is decided on its own.
    t.equal(policyDrops, offloads === 'on' ? 1 : SEGMENTS, `denied ${offloads === 'on' ? 'as one frame' : 'segment by segment'} (${policyDrops} policy drops)`);
    // The frames and the segments they stand for: each super-frame counts SEGMENTS segments.
    const frames = after.ports.outside.rx_packets - before.ports.outside.rx_packets;
    const segments = after.ports.outside.rx_segments - before.ports.outside.rx_segments;
    if (offloads === 'on') t.ok(segments - frames >= 2 * (SEGMENTS - 1), `two super-frames: ${frames} frames stood for ${segments} segments`);
    else t.ok(segments >= frames, `${frames} frames, ${segments} segments`);
  });

  t.test('nothing dropped that should have passed', async (t) => {
    const stats = await lab.lab.freshStats();
    for (const side of ['outside', 'inside'] as const) {
      const port = stats.ports[side];
      t.equal(port.send_errors, 0, `${side}: no send errors`);
      t.equal(port.dropped.truncated + port.dropped.decode + port.dropped.tcp_no_flow, 0, `${side}: no truncated, undecodable or flowless frames`);
    }
  });
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function waitListening(lab: RunningLab): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (lab.server(['ss', '-Hltn', 'sport = :8080']).stdout.trim() !== '') return;
    await sleep(50);
  }
}

/** The numbered datagrams a server socket on `port` gets within three seconds (payload checked). */
function udpSegments(lab: RunningLab, port: number): Promise<number[]> {
  const script = `
import json, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('${A.server4}', ${port}))
s.settimeout(3)
got = []
try:
    while True:
        d = s.recv(65536)
        n = d[0]
        got.append(n if d == bytes([n]) * ${MSS} else -1)
except socket.timeout:
    pass
print(json.dumps(sorted(got)))
`;
  const child = lab.lab.spawn(lab.lab.server, ['python3', '-c', script]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.once('exit', () => resolve(JSON.parse(out || '[]') as number[])));
}

/** One send of SEGMENTS datagrams of MSS bytes with UDP_SEGMENT: with offloads the host's NIC gets one super-frame. */
function sendUdpSuperFrame(lab: RunningLab, port: number): void {
  const script = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, ${MSS})  # UDP_SEGMENT
s.sendto(b''.join(bytes([i]) * ${MSS} for i in range(${SEGMENTS})), ('${A.server4}', ${port}))
`;
  const r = lab.client(['python3', '-c', script]);
  if (r.status !== 0) throw new Error(`UDP super-frame: ${r.stderr}`);
}
