// Observations from real hosts through a real `gatekeeper run` dataplane, received on the management
// socket by a test management peer (as in spoof-lab.test.ts): Debian's lldpd in the server's
// namespace (its own socket, no configuration files, its own host name in a UTS namespace of its own)
// and busybox udhcpc in the client's (discovers only, no server) give identity observations; pings
// give sightings of both hosts with their MACs and a conversation delta; no message is empty, and
// every one passes management's schema. (That observing leaves verdicts alone: engine-observations.test.ts.)
// Then a learning policy (monitor mode, no rule for Modbus, no block): a real pymodbus server that
// knows its device identification and a pymodbus client that polls it and reads it give the
// conversation's Modbus function counts and the server's identity.

import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ObservationsMessage } from '../appliance/ipc/messages';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import { messageProblem } from '../appliance/ipc/validate';
import { Lab } from '../appliance/lab/lab';
import { labAddresses as A, labUnavailable, sleep } from './lib/lab-fixture';

const policy = `version: 1
default: deny
groups:
  client: [${A.client4}]
  server: [${A.server4}]
rules:
  - name: client-pings-server
    from: client
    to: server
    service: ping
    action: allow
`;

function unavailable(): string | false {
  const lab = labUnavailable();
  if (lab) return lab;
  for (const tool of ['lldpd', 'busybox', 'unshare']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  }
  return false;
}

/**
 * A lab whose dataplane talks to a management played by the test: it welcomes the dataplane and
 * keeps its observations messages, checking each as management does (those that fail go to
 * `problems`). Everything (the lab, the socket, the processes handed to `track`, the directory) is
 * torn down with the test.
 */
async function labWithManagement(t: Test, prefix: string) {
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const sockets = new Set<Socket>();
  const observations: ObservationsMessage[] = [];
  const problems: string[] = [];
  const tracked: { pid: number; signal: NodeJS.Signals }[] = [];
  const peer = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const reader = new LineReader<Record<string, unknown>>((m) => {
      if (m.type === 'hello') socket.write(encodeMessage({ type: 'welcome', version: 1 }));
      if (m.type !== 'observations') return;
      const problem = messageProblem(m, 'dataplane');
      if (problem !== null) problems.push(problem);
      else observations.push(m as unknown as ObservationsMessage);
    }, () => socket.destroy());
    socket.on('data', (chunk) => reader.push(chunk));
  });
  t.teardown(async () => {
    for (const { pid, signal } of tracked) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    lab.destroy();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => peer.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  const socketPath = join(dir, 'mgmt.sock');
  await new Promise<void>((resolve) => peer.listen(socketPath, resolve));
  lab.create();
  const track = (pid: number | undefined, signal: NodeJS.Signals): void => {
    if (pid !== undefined) tracked.push({ pid, signal });
  };
  return { lab, dir, socketPath, observations, problems, track };
}

t.test('identity frames, sightings and conversations reach management', { skip: unavailable() }, async (t) => {
  const { lab, dir, socketPath, observations, problems, track } = await labWithManagement(t, 'gk-obs-lab-');
  // lldpd's unprivileged half reaches its socket here, and lldpd waits for lldpcli to resume it through that.
  chmodSync(dir, 0o755);
  const clientMac = lab.mac(lab.client);
  const serverMac = lab.mac(lab.server);
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, policy);
  await lab.startDataplane(policyPath, 15_000, socketPath);

  // lldpd announces itself on the server's port once at start (then every 30 s).
  const child = spawn('ip', ['netns', 'exec', lab.server, 'unshare', '-u', 'sh', '-c',
    `hostname plc-lab-${lab.id}; exec lldpd -d -u ${join(dir, 'lldpd.sock')} -I eth0 -S "Gatekeeper lab PLC" -m ${A.server4} -O /dev/null`],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let lldpdLog = '';
  child.stderr?.on('data', (c: Buffer) => { lldpdLog += c.toString(); });
  track(child.pid, 'SIGTERM');
  // udhcpc: two discovers with a host name, a vendor class and a requested address; no server answers.
  const dhcp = lab.exec(lab.client, ['busybox', 'udhcpc', '-i', 'eth0', '-x', `hostname:rtu-lab-${lab.id}`, '-V', 'GK-lab-RTU',
    '-r', '198.18.1.77', '-s', '/bin/true', '-n', '-t', '2', '-T', '1'], 20_000);
  t.match(dhcp.stderr + dhcp.stdout, /discover/, 'udhcpc sent discovers');
  t.equal(lab.exec(lab.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', A.server4]).status, 0, 'the client pings the server');

  const deadline = Date.now() + 20_000;
  const identities = () => observations.flatMap((m) => m.identities);
  const has = () => identities().some((i) => i.source === 'lldp') && identities().some((i) => i.source === 'dhcp') &&
    observations.some((m) => m.conversations.length > 0);
  while (Date.now() < deadline && !has()) await sleep(250);
  t.same(problems, [], 'every observations message passes management\'s schema');

  const lldp = identities().find((i) => i.source === 'lldp');
  t.match(lldp, {
    mac: serverMac, address: '', vlan: 0, side: 'inside',
    fields: { systemName: `plc-lab-${lab.id}`, systemDescription: 'Gatekeeper lab PLC', portDescription: 'eth0', chassisId: serverMac,
      managementAddress: A.server4 },
  }, `lldpd's LLDPDU from the server${lldp === undefined ? `; lldpd said: ${lldpdLog}` : ''}`);
  const dhcpIdentity = identities().find((i) => i.source === 'dhcp');
  t.match(dhcpIdentity, {
    mac: clientMac, address: '', side: 'outside',
    fields: { hostName: `rtu-lab-${lab.id}`, vendorClass: 'GK-lab-RTU', requestedAddress: '198.18.1.77' },
  }, 'udhcpc\'s discover from the client');

  const sightings = observations.flatMap((m) => m.sightings);
  t.ok(sightings.some((s) => s.mac === clientMac && s.address === A.client4 && s.side === 'outside'), 'the client, by its first ping');
  t.ok(sightings.some((s) => s.mac === serverMac && s.address === A.server4 && s.side === 'inside'), 'the server, by its first answer');
  const ping = observations.flatMap((m) => m.conversations).find((c) => c.proto === 'icmp');
  t.match(ping, { client: A.client4, clientMac, server: A.server4, serverMac, port: 8, clientSide: 'outside', rule: 'client-pings-server',
    verdict: 'allow', flows: 1 });
  const packets = observations.flatMap((m) => m.conversations).filter((c) => c.proto === 'icmp').reduce((n, c) => n + c.packets, 0);
  t.equal(packets, 6, 'three echoes and three replies, counted once');
  t.ok(observations.every((m) => m.sightings.length + m.conversations.length + m.identities.length + m.dropped > 0), 'no empty message');
});

/** A pymodbus 3.0 server on port 502 that answers read device identification (objects 0-5). */
const identityServer = `
from pymodbus.server import StartTcpServer
from pymodbus.device import ModbusDeviceIdentification
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
ctx = ModbusServerContext(slaves=ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, [0] * 100)), single=True)
ident = ModbusDeviceIdentification(info_name={'VendorName': 'Acme Lab', 'ProductCode': 'PLC-5000', 'MajorMinorRevision': '2.11',
    'VendorUrl': 'http://acme.example', 'ProductName': 'Acme PLC', 'ModelName': 'P5K'})
StartTcpServer(context=ctx, identity=ident, address=('', 502))
`;

/** Five reads of holding registers, then read device identification (basic: objects 0-2), on one connection. */
const identityClient = `
import sys, time
from pymodbus.client import ModbusTcpClient
from pymodbus.mei_message import ReadDeviceInformationRequest
c = ModbusTcpClient(sys.argv[1], port=502)
for attempt in range(50):
    if c.connect():
        break
    time.sleep(0.1)
for i in range(5):
    r = c.read_holding_registers(0, 10, slave=1)
    assert not r.isError(), r
r = c.execute(ReadDeviceInformationRequest(read_code=1, slave=1))
print(r.information)
c.close()
`;

t.test('a learning policy learns Modbus functions and device identity from real pymodbus', { skip: unavailable() }, async (t) => {
  const { lab, dir, socketPath, observations, track } = await labWithManagement(t, 'gk-obs-modbus-');
  const serverMac = lab.mac(lab.server);
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, `version: 1
mode: monitor
default: deny
groups:
  client: [${A.client4}]
  server: [${A.server4}]
rules:
  - name: client-pings-server
    from: client
    to: server
    service: ping
    action: allow
`);
  writeFileSync(join(dir, 'server.py'), identityServer);
  writeFileSync(join(dir, 'client.py'), identityClient);
  await lab.startDataplane(policyPath, 15_000, socketPath);
  const child = spawn('ip', ['netns', 'exec', lab.server, '/usr/bin/python3', join(dir, 'server.py')], { stdio: 'ignore' });
  track(child.pid, 'SIGKILL');
  const client = lab.exec(lab.client, ['/usr/bin/python3', join(dir, 'client.py'), A.server4], 30_000);
  t.equal(client.status, 0, `the client polled and read the identification: ${client.stderr}`);
  t.match(client.stdout, /Acme Lab/, 'through the gatekeeper, in monitor mode');

  const deadline = Date.now() + 20_000;
  const modbus = () => observations.flatMap((m) => m.conversations).filter((c) => c.port === 502);
  const identity = () => observations.flatMap((m) => m.identities).find((i) => i.source === 'modbus');
  while (Date.now() < deadline && (identity() === undefined || modbus().length === 0)) await sleep(250);
  const functions: Record<string, number> = {};
  for (const c of modbus()) for (const [name, n] of Object.entries(c.app?.functions ?? {})) functions[name] = (functions[name] ?? 0) + n;
  // One connection polled; the client may have tried before the server listened (a refused one).
  const polled = modbus().find((c) => c.app !== undefined);
  t.match(polled, { client: A.client4, server: A.server4, serverMac, verdict: 'monitor', rule: 'default' }, 'the polled connection, with its server\'s MAC');
  t.ok(modbus().reduce((n, c) => n + c.flows, 0) >= 1, 'the connection counted as begun');
  t.equal(functions['read-holding-registers'], 5, `the five reads counted without a block (${JSON.stringify(functions)})`);
  t.equal(Object.values(functions).reduce((a, b) => a + b, 0), 6, 'and the identification request');
  t.match(identity(), { mac: serverMac, address: A.server4, side: 'inside', source: 'modbus',
    // The unit is the one the answer carries: pymodbus 3.0 sends its 43/14 answers from unit 0.
    fields: { vendorName: 'Acme Lab', productCode: 'PLC-5000', revision: '2.11', unit: '0' } }, 'the server\'s answer, as pymodbus sent it');
});
