// The asset inventory through management: a fake dataplane (a client speaking the IPC protocol on
// the real socket) sends observations and deny summaries, and the API gives them back — first
// against the real `gatekeeper mgmt` process (dist/), then in-process with the real hub, exporter
// and inventory, where asset.new must reach a real rsyslog and a restart must keep everything.

import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import t, { type Test } from 'tap';
import type { DenySummaryEvent } from '../appliance/ipc/events';
import { encodeMessage, LineReader } from '../appliance/ipc/framing';
import { IPC_VERSION, type DataplaneMessage, type ObservationsMessage } from '../appliance/ipc/messages';
import { createDataplaneHub } from '../appliance/mgmt/dataplanes/hub';
import type { DataplaneHub } from '../appliance/mgmt/dataplanes/types';
import { INVENTORY_FILE, openInventory, type SqliteInventory } from '../appliance/mgmt/inventory/inventory';
import { buildServer } from '../appliance/mgmt/server';
import { EventExporter } from '../appliance/mgmt/siem/exporter';
import { seedUsers, startMgmt, tempStateDir, USERS, type Login } from './lib/mgmt-fixture';
import { freePort, parse5424, Rsyslog, until } from './lib/rsyslog';

const NOW = Date.now();
const PLC = '02:00:00:00:01:00';
const HMI = '02:00:00:00:00:10';

/** A dataplane as management sees it: hello, welcome, then whatever the test sends. */
class FakeDataplane {
  private readonly socket: Socket;
  private welcomed!: Promise<void>;

  private constructor(socketPath: string) {
    this.socket = connect(socketPath);
    this.socket.on('error', () => undefined);
  }

  static async connect(socketPath: string, pair: string): Promise<FakeDataplane> {
    const dp = new FakeDataplane(socketPath);
    dp.welcomed = new Promise((resolve) => {
      const reader = new LineReader<{ type: string }>((m) => m.type === 'welcome' && resolve(), () => undefined);
      dp.socket.on('data', (chunk) => reader.push(chunk));
    });
    dp.send({ type: 'hello', version: IPC_VERSION, pair, pid: 4242, inside: `${pair}-in`, outside: `${pair}-out`, generation: 1,
      policyHash: 'none', startedAt: NOW - 5000 });
    await dp.welcomed;
    return dp;
  }

  send(message: DataplaneMessage): void {
    this.socket.write(encodeMessage(message));
  }

  close(): void {
    this.socket.destroy();
  }
}

function observations(): ObservationsMessage {
  return {
    type: 'observations', dropped: 2,
    sightings: [{ mac: HMI, address: '198.18.0.10', vlan: 0, side: 'outside', frames: 3, firstSeen: NOW - 1000, lastSeen: NOW }],
    conversations: [{
      proto: 'tcp', client: '198.18.0.10', clientMac: HMI, server: '198.18.0.100', serverMac: PLC, port: 502, vlan: 0, clientSide: 'outside',
      rule: 'hmi-to-plc', verdict: 'allow', flows: 2, packets: 40, bytes: 4000, app: { protocol: 'modbus', functions: { 'read-coils': 5 } },
      firstSeen: NOW - 1000, lastSeen: NOW,
    }],
    identities: [{ mac: PLC, address: '198.18.0.100', vlan: 0, side: 'inside', source: 'lldp', fields: { systemName: 'line1-plc' }, time: NOW }],
  };
}

function denySummary(): DenySummaryEvent {
  return {
    type: 'deny.summary', time: new Date(NOW).toISOString(), severity: 'warning', pair: 'pair0', src: '198.18.0.10', srcPort: 0, srcGroups: [],
    dst: '198.18.0.100', dstPort: 23, dstGroups: [], proto: 'tcp', vlan: 0, rule: 'default', action: 'deny', monitor: false, count: 9, bytes: 540,
    firstSeen: new Date(NOW - 5000).toISOString(), lastSeen: new Date(NOW).toISOString(),
  };
}

t.test('the real management process: observations over the socket, read back through the API', async (t) => {
  const mgmt = await startMgmt(t);
  const admin = await mgmt.login();
  const dp = await FakeDataplane.connect(mgmt.socketPath, 'pair0');
  t.teardown(() => dp.close());
  dp.send(observations());
  dp.send({ type: 'events', events: [denySummary()], dropped: 0 });

  let assets: any[] = [];
  for (const deadline = Date.now() + 10_000; assets.length < 2 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 100));
    assets = ((await mgmt.api(admin, 'GET', '/api/v1/assets')).body as { assets: any[] }).assets ?? [];
  }
  t.equal(assets.length, 2, `two assets listed: ${JSON.stringify(assets)}`);
  const plc = assets.find((a) => a.mac === PLC);
  t.match(plc, { pair: 'pair0', name: 'line1-plc', addresses: ['198.18.0.100'], side: 'inside', offers: ['modbus'], router: false,
    identity: { lldp: { systemName: 'line1-plc' } }, liveness: { state: 'unknown' }, vendor: null });
  const one = await mgmt.api(admin, 'GET', `/api/v1/assets/${plc.id}`);
  t.equal(one.status, 200);
  const body = one.body as { asset: { id: number }; conversations: any[] };
  t.equal(body.asset.id, plc.id);
  t.same(body.conversations.map((c) => `${c.service}/${c.verdict}`).sort(), ['modbus/allow', 'telnet/deny'], 'its conversations, the denied one too');
  t.match(body.conversations.find((c) => c.verdict === 'allow'), { flows: 2, packets: 40, functions: { 'read-coils': 5 }, protocol: 'modbus' });
  const denied = await mgmt.api(admin, 'GET', '/api/v1/conversations?verdict=deny');
  t.match(denied.body, { conversations: [{ client: '198.18.0.10', server: '198.18.0.100', port: 23, packets: 9, bytes: 540 }] });
  t.equal(((await mgmt.api(admin, 'GET', '/api/v1/assets?q=line1')).body as { assets: unknown[] }).assets.length, 1, 'q searches names');
  t.equal(((await mgmt.api(admin, 'GET', '/api/v1/assets?side=outside&liveness=unknown')).body as { assets: unknown[] }).assets.length, 1);
  t.equal((await mgmt.api(admin, 'GET', '/api/v1/assets?limit=0')).status, 400, 'a bad query is refused');
  t.equal((await mgmt.api(admin, 'GET', '/api/v1/conversations?verdict=maybe')).status, 400);
  t.equal((await mgmt.api(admin, 'GET', '/api/v1/assets/99999')).status, 404);
  const stats = await mgmt.api(admin, 'GET', '/api/v1/inventory/stats');
  t.match(stats.body, { assets: 2, conversations: 2, dropped: 2, flushErrors: 0 });
  const metrics = String((await mgmt.api(admin, 'GET', '/metrics')).body);
  t.match(metrics, /^gatekeeper_inventory_assets 2$/m);
  t.match(metrics, /^gatekeeper_inventory_conversations 2$/m);
  t.match(metrics, /^gatekeeper_inventory_dropped_total\{reason="dataplane"\} 2$/m);
  t.match(metrics, /^gatekeeper_inventory_flush_errors_total 0$/m);
  t.notOk(mgmt.log.some((l) => /"level":50/.test(l)), 'no errors logged');
});

interface Management {
  app: FastifyInstance;
  hub: DataplaneHub;
  inventory: SqliteInventory;
  exporter: EventExporter;
  socketPath: string;
  stop(): Promise<void>;
}

/** Management as `gatekeeper mgmt` puts it together (cli/mgmt-commands.ts), in this process, stopped in the same order. */
async function startInProcess(t: Test, stateDir: string): Promise<Management> {
  const log = pino({ level: 'warn' });
  const socketPath = join(stateDir, 'mgmt.sock');
  const inventory = openInventory({ file: join(stateDir, INVENTORY_FILE), log, flushIntervalMs: 3_600_000 });
  const hub = createDataplaneHub({ socketPath, log, inventory });
  const exporter = new EventExporter({ stateDir, hostname: 'gk-test', version: '0.1.0', log });
  const app = await buildServer({ stateDir, http: true, hub, events: exporter, log, inventory });
  await hub.listen();
  await app.ready();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled([app.close(), hub.close()]);
    inventory.close();
    await exporter.close();
  };
  t.teardown(stop);
  return { app, hub, inventory, exporter, socketPath, stop };
}

async function login(app: FastifyInstance, user = USERS[1]): Promise<Login> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: user.name, password: user.password } });
  return { cookie: String(res.headers['set-cookie']).split(';')[0], csrfToken: (res.json() as { csrfToken: string }).csrfToken };
}

async function call(app: FastifyInstance, as: Login, method: 'GET' | 'PUT', url: string, payload?: object) {
  const res = await app.inject({ method, url, headers: { cookie: as.cookie, 'x-csrf-token': as.csrfToken }, payload });
  return { status: res.statusCode, json: res.json() as any };
}

t.test('asset.new reaches rsyslog, and a restart of management keeps the inventory', async (t) => {
  const rsyslog = new Rsyslog([{ name: 'siem', kind: 'tcp', port: await freePort() }]);
  t.teardown(() => rsyslog.destroy());
  await rsyslog.start();
  const stateDir = tempStateDir(t);
  await seedUsers(stateDir);

  const first = await startInProcess(t, stateDir);
  const operator = await login(first.app);
  const put = await call(first.app, operator, 'PUT', '/api/v1/settings/syslog', { targets: [{ name: 'siem', enabled: true, host: '127.0.0.1',
    port: rsyslog.port('siem'), transport: 'tcp', format: 'rfc5424', minSeverity: 'info', types: ['asset.new', 'asset.changed'] }] });
  t.equal(put.status, 200, 'syslog target saved');
  first.inventory.setAnnounceNew('pair0', true); // learning has run on pair0 (learn mode sets this)
  const flagWrittenAt = first.inventory.stats().lastFlushAt; // the flag is written at once

  const dp = await FakeDataplane.connect(first.socketPath, 'pair0');
  t.teardown(() => dp.close());
  dp.send(observations());
  dp.send({ type: 'events', events: [denySummary()], dropped: 0 });
  const newLines = () => rsyslog.lines('siem').map(parse5424).filter((m) => m.msgId === 'asset.new');
  t.ok(await until(() => newLines().length >= 2, 10_000), 'both new MACs reached rsyslog');
  const plcLine = newLines().find((m) => m.msg.includes(PLC));
  t.ok(plcLine, `one names the PLC: ${newLines().map((m) => m.msg).join(' | ')}`);
  t.match(plcLine!.msg, /line1-plc/, 'with its LLDP name');
  t.equal(plcLine!.pri, 8 * 16 + 4, 'severity warning (local0)');
  const params = [...plcLine!.sd.values()][0];
  t.equal(params.get('mac'), PLC);
  t.equal(params.get('address'), '198.18.0.100');
  t.equal(params.get('pair'), 'pair0');
  const events = await call(first.app, operator, 'GET', '/api/v1/events?type=asset.new');
  t.equal(events.json.events.length, 2, 'and are in the event log');

  dp.send({ ...observations(), conversations: [{ ...observations().conversations[0], flows: 1, packets: 10, bytes: 1000 }], identities: [], dropped: 0 });
  await until(() => first.inventory.conversations({ verdict: 'allow' })[0]?.flows === 3, 5000);
  const before = {
    assets: (await call(first.app, operator, 'GET', '/api/v1/assets')).json,
    conversations: (await call(first.app, operator, 'GET', '/api/v1/conversations')).json,
  };
  t.equal(before.assets.assets.length, 2);
  t.equal(before.conversations.conversations.find((c: { verdict: string }) => c.verdict === 'allow').flows, 3, 'counters summed');
  t.equal(first.inventory.stats().lastFlushAt, flagWrittenAt, 'no batch written since: the interval has not passed');
  dp.close();
  await first.stop(); // flushes on the way out, like SIGTERM does

  const second = await startInProcess(t, stateDir);
  const again = await login(second.app);
  t.same((await call(second.app, again, 'GET', '/api/v1/assets')).json, before.assets, 'assets survive the restart');
  t.same((await call(second.app, again, 'GET', '/api/v1/conversations')).json, before.conversations, 'conversations too');
  const dp2 = await FakeDataplane.connect(second.socketPath, 'pair0');
  t.teardown(() => dp2.close());
  dp2.send({ ...observations(), sightings: [{ ...observations().sightings[0], mac: '02:00:00:00:00:77', address: '198.18.0.77' }] });
  t.ok(await until(() => newLines().some((m) => m.msg.includes('02:00:00:00:00:77')), 10_000), 'the announce flag survives too');
  t.equal(newLines().filter((m) => m.msg.includes(PLC)).length, 1, 'known MACs are not announced again');
});

t.test('the hub hands observations and deny summaries to the inventory; an inventory that throws costs no connection', async (t) => {
  const dir = tempStateDir(t);
  const lines: string[] = [];
  const log = { info: () => undefined, warn: () => undefined, error: (_f: object, m: string) => void lines.push(m) };
  const seen: string[] = [];
  let fail = true;
  const inventory = {
    observe(pair: string, m: ObservationsMessage) {
      seen.push(`observe ${pair} ${m.sightings.length}`);
      if (fail) throw new Error('inventory broken');
    },
    denied(pair: string, e: DenySummaryEvent) {
      seen.push(`denied ${pair} ${e.count}`);
      if (fail) throw new Error('inventory broken');
    },
  };
  const hub = createDataplaneHub({ socketPath: join(dir, 'mgmt.sock'), log, inventory });
  const events: string[] = [];
  hub.onEvent((e) => events.push(e.type));
  t.teardown(() => hub.close());
  await hub.listen();
  const dp = await FakeDataplane.connect(join(dir, 'mgmt.sock'), 'pair0');
  t.teardown(() => dp.close());
  dp.send(observations());
  dp.send({ type: 'events', events: [{ ...denySummary(), pair: 'forged' }], dropped: 0 });
  t.ok(await until(() => events.includes('deny.summary'), 5000), 'the deny summary still reaches the event listeners');
  fail = false;
  dp.send(observations());
  t.ok(await until(() => seen.length === 3, 5000));
  t.same(seen, ['observe pair0 1', 'denied pair0 9', 'observe pair0 1'], 'in order, under the connection\'s pair whatever the event says');
  t.equal(lines.filter((l) => /asset inventory failed/.test(l)).length, 2, 'each failure logged');
  t.equal(hub.pairs()[0].connected, true, 'the dataplane stays connected');
});
