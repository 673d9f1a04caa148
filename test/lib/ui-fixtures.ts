// Fixtures for the UI test of the Assets, Map and Learn views (test/ui-assets.test.ts): a small
// plant behind one pair (an HMI, an engineering station, a PLC that answers LLDP and Modbus device
// identification, a historian), its conversations (Modbus functions, one denied telnet attempt), a
// learn status, a proposal and a review result; the routes that serve them in the browser
// (page.route, for the inventory and learn API until it exists: installApi is the one place to drop
// when the test points at the real one), and a dataplane on the management socket that reports the
// pair, answers flows.get as a dataplane does (address and port filter) and takes policies. Test
// data only; decides nothing.

import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { createTwoFilesPatch } from 'diff';
import type { Page, Route } from 'playwright-core';
import { encodeMessage, LineReader } from '../../appliance/ipc/framing';
import { IPC_VERSION, type FlowFilter, type FlowRecord, type ManagementMessage } from '../../appliance/ipc/messages';
import type { Asset, Conversation } from '../../appliance/mgmt/inventory/types';
import type { Decision, LearnStatus, Proposal, ReviewResult } from '../../appliance/mgmt/learn/types';
import { modbusStats } from './modbus-fixture';

export const PAIR = 'plant-a';
const HOUR = 3_600_000;

export const ADDR = { hmi: '198.18.1.10', eng: '198.18.1.20', eng6: '2001:2:0:1::20', plc: '198.18.1.100', historian: '198.18.1.150' };
const MAC = { hmi: '00:0e:8c:12:34:01', eng: '3c:52:82:aa:bb:02', plc: '00:80:f4:01:02:03', historian: 'f8:bc:12:40:00:04' };

/** The policy the service starts with (v1). */
export const INITIAL_POLICY = `version: 1
mode: enforce
default: deny
default-log: true

groups:
  hmi: [${ADDR.hmi}]
  engineering: [${ADDR.eng}, "${ADDR.eng6}"]
  plc: [${ADDR.plc}]
  historian: [${ADDR.historian}]

rules:
  - name: hmi-polls-plc
    from: hmi
    to: plc
    service: [modbus, ping]
    action: allow
  - name: eng-programs-plc
    from: engineering
    to: plc
    service: modbus
    action: allow
  - name: historian-reads-plc
    from: historian
    to: plc
    service: modbus
    action: allow
`;

/**
 * What the review of the test's decisions gives: the accepted groups (MAC-bound, the PLC's renamed)
 * and the engineering station's rule (renamed) with the Modbus functions it used, in place of the
 * broader eng-programs-plc it narrows.
 */
export const LEARNED_POLICY = `version: 1
mode: enforce
default: deny
default-log: true

groups:
  hmi: [${ADDR.hmi}]
  engineering: [${ADDR.eng}, "${ADDR.eng6}"]
  plc: [${ADDR.plc}]
  historian: [${ADDR.historian}]
  # learned on ${PAIR}: DHCP host name
  hmi-line1: [${ADDR.hmi}@${MAC.hmi}]
  eng-ws-01: [${ADDR.eng}@${MAC.eng}, "${ADDR.eng6}@${MAC.eng}"]
  # learned on ${PAIR}: LLDP system name
  filtration-plc: [${ADDR.plc}@${MAC.plc}]

rules:
  - name: hmi-polls-plc
    from: hmi
    to: plc
    service: [modbus, ping]
    action: allow
  - name: historian-reads-plc
    from: historian
    to: plc
    service: modbus
    action: allow
  - name: eng-ws-01-programs-plc
    description: learned from 6 flows over 24 h
    from: eng-ws-01
    to: filtration-plc
    service: modbus
    action: allow
    modbus:
      functions: [read-holding-registers, write-multiple-registers, 43]
      units: [1]
`;

/** Everything relative to `now`, so "today" shows as clock times. */
export function plant(now: number) {
  const live = (rttMs: number) => ({ state: 'up' as const, rttMs, checkedAt: now - 20_000, changedAt: now - 30 * HOUR });
  const assets: Asset[] = [
    {
      id: 1, pair: PAIR, mac: MAC.hmi, vendor: 'Siemens AG', addresses: [ADDR.hmi], router: false, vlan: 0, side: 'outside', name: 'hmi-line1',
      identity: { dhcp: { hostName: 'hmi-line1', vendorClass: 'SIMATIC HMI' } },
      firstSeen: now - 30 * HOUR, lastSeen: now - 5_000, packets: 412_300, bytes: 38_400_000, offers: [], uses: ['modbus', 'ping'], liveness: live(0.8),
    },
    {
      id: 2, pair: PAIR, mac: MAC.eng, vendor: 'Hewlett Packard', addresses: [ADDR.eng, ADDR.eng6], router: false, vlan: 0, side: 'outside', name: 'eng-ws-01',
      identity: { dhcp: { hostName: 'eng-ws-01', vendorClass: 'MSFT 5.0' } },
      firstSeen: now - 26 * HOUR, lastSeen: now - 40 * 60_000, packets: 9_210, bytes: 1_120_000, offers: [], uses: ['modbus', 'tcp/23'], liveness: live(1.4),
    },
    {
      id: 3, pair: PAIR, mac: MAC.plc, vendor: 'TELEMECANIQUE ELECTRIQUE', addresses: [ADDR.plc], router: false, vlan: 0, side: 'inside', name: 'plc-filtration',
      identity: {
        lldp: { systemName: 'plc-filtration', systemDescription: 'Schneider Electric Modicon M340 BMX P34 2020 V3.40', chassisId: MAC.plc,
          portId: 'ETH1', portDescription: 'Ethernet port 1', managementAddress: ADDR.plc },
        modbus: { vendorName: 'Schneider Electric', productCode: 'BMX P34 2020', revision: 'v3.40', productName: 'Modicon M340', modelName: 'BMX P34 2020', unit: '1' },
      },
      firstSeen: now - 30 * HOUR, lastSeen: now - 2_000, packets: 503_900, bytes: 44_700_000, offers: ['modbus', 'ping'], uses: [], liveness: live(1.9),
    },
    {
      id: 4, pair: PAIR, mac: MAC.historian, vendor: 'Dell Inc.', addresses: [ADDR.historian], router: false, vlan: 0, side: 'outside', name: 'historian',
      identity: { dhcp: { hostName: 'historian' } },
      firstSeen: now - 29 * HOUR, lastSeen: now - 3 * 60_000, packets: 172_800, bytes: 14_200_000, offers: [], uses: ['modbus'],
      liveness: { state: 'down', rttMs: null, checkedAt: now - 15_000, changedAt: now - 3 * 60_000 },
    },
  ];
  const conv = (c: Omit<Conversation, 'pair' | 'vlan' | 'units'>): Conversation => ({ pair: PAIR, vlan: 0, units: c.protocol === 'modbus' ? [1] : [], ...c });
  const conversations: Conversation[] = [
    conv({ id: 11, proto: 'tcp', client: ADDR.hmi, clientAsset: 1, server: ADDR.plc, serverAsset: 3, port: 502, service: 'modbus', rule: 'hmi-polls-plc',
      verdict: 'allow', flows: 3, packets: 410_000, bytes: 38_000_000, functions: { 'read-holding-registers': 182_300, 'write-single-register': 42 }, protocol: 'modbus',
      firstSeen: now - 30 * HOUR, lastSeen: now - 5_000 }),
    conv({ id: 12, proto: 'icmp', client: ADDR.hmi, clientAsset: 1, server: ADDR.plc, serverAsset: 3, port: 8, service: 'ping', rule: 'hmi-polls-plc',
      verdict: 'allow', flows: 120, packets: 2_300, bytes: 193_000, functions: {}, protocol: '', firstSeen: now - 30 * HOUR, lastSeen: now - 60_000 }),
    conv({ id: 13, proto: 'tcp', client: ADDR.eng, clientAsset: 2, server: ADDR.plc, serverAsset: 3, port: 502, service: 'modbus', rule: 'eng-programs-plc',
      verdict: 'allow', flows: 6, packets: 9_100, bytes: 1_100_000,
      functions: { 'read-holding-registers': 512, 'write-multiple-registers': 37, 'read-device-identification': 2 }, protocol: 'modbus',
      firstSeen: now - 26 * HOUR, lastSeen: now - 40 * 60_000 }),
    conv({ id: 14, proto: 'tcp', client: ADDR.eng, clientAsset: 2, server: ADDR.plc, serverAsset: 3, port: 23, service: 'tcp/23', rule: 'default',
      verdict: 'deny', flows: 2, packets: 14, bytes: 840, functions: {}, protocol: '', firstSeen: now - 2 * HOUR, lastSeen: now - 2 * HOUR + 9_000 }),
    conv({ id: 15, proto: 'tcp', client: ADDR.historian, clientAsset: 4, server: ADDR.plc, serverAsset: 3, port: 502, service: 'modbus', rule: 'historian-reads-plc',
      verdict: 'allow', flows: 1, packets: 172_800, bytes: 14_200_000, functions: { 'read-input-registers': 86_400 }, protocol: 'modbus',
      firstSeen: now - 29 * HOUR, lastSeen: now - 3 * 60_000 }),
  ];
  const learning: LearnStatus = {
    pair: PAIR, state: 'learning', mode: 'enforce', startedAt: now - 20 * HOUR, endsAt: now + 4 * HOUR, author: 'admin', assets: 4, conversations: 5,
  };
  const proposal: Proposal = {
    id: 'p-7', pair: PAIR, createdAt: now,
    groups: [
      { id: 'g1', name: 'hmi-line1', namedFrom: 'dhcp', members: [`${ADDR.hmi}@${MAC.hmi}`], assets: [1] },
      { id: 'g2', name: 'eng-ws-01', namedFrom: 'dhcp', members: [`${ADDR.eng}@${MAC.eng}`, `${ADDR.eng6}@${MAC.eng}`], assets: [2] },
      { id: 'g3', name: 'plc-filtration', namedFrom: 'lldp', members: [`${ADDR.plc}@${MAC.plc}`], assets: [3] },
      { id: 'g4', name: 'historian', namedFrom: 'dhcp', members: [`${ADDR.historian}@${MAC.historian}`], assets: [4] },
    ],
    rules: [
      { id: 'r1', name: 'hmi-line1-to-plc-filtration', from: 'hmi-line1', to: 'plc-filtration', services: ['modbus', 'ping'],
        modbus: { functions: ['read-holding-registers', 'write-single-register'], units: [1] }, flows: 123, firstSeen: now - 24 * HOUR, lastSeen: now - 5_000,
        description: 'HMI polls and sets values' },
      { id: 'r2', name: 'eng-ws-01-to-plc-filtration', from: 'eng-ws-01', to: 'plc-filtration', services: ['modbus'],
        modbus: { functions: ['read-holding-registers', 'write-multiple-registers', 43], units: [1] }, flows: 6, firstSeen: now - 24 * HOUR, lastSeen: now - 40 * 60_000,
        description: 'engineering station reads and writes registers, reads the device identification' },
      { id: 'r3', name: 'historian-to-plc-filtration', from: 'historian', to: 'plc-filtration', services: ['modbus'],
        modbus: { functions: ['read'], units: [1] }, flows: 1, firstSeen: now - 24 * HOUR, lastSeen: now - 3 * 60_000,
        description: 'historian reads input registers only' },
    ],
    text: LEARNED_POLICY,
    errors: [],
    coverage: {
      hours: 24, conversations: 5, allowed: 4, share: 0.8,
      leftOut: [{ client: ADDR.eng, server: ADDR.plc, service: 'tcp/23', reason: 'denied by the active policy', flows: 2, code: 'denied-by-active' }],
      leftOutOmitted: 0,
    },
  };
  const review: ReviewResult = {
    text: LEARNED_POLICY,
    diff: createTwoFilesPatch('policy v1', 'candidate', INITIAL_POLICY, LEARNED_POLICY),
    notes: [
      'rule historian-to-plc-filtration left out: its group historian is rejected',
      'rule eng-programs-plc replaced by eng-ws-01-programs-plc: same ends, only the Modbus functions seen',
    ],
  };
  return { assets, conversations, learning, proposal, review };
}

// ---------------------------------------------------------------------------------------------------
// The API that does not exist yet, in the browser

export interface ApiRecord {
  /** Every request to the faked routes: method, path and query, parsed JSON body. */
  requests: { method: string; path: string; query: URLSearchParams; body: unknown }[];
}

type Plant = ReturnType<typeof plant>;

/**
 * Serves /api/v1/assets, /conversations and /learn from `data` (filtering as the contract says) and
 * records what the UI sent. The envelopes are the ones the UI assumes (ui/inventory-api.js).
 */
export async function installApi(page: Page, data: Plant): Promise<ApiRecord> {
  const record: ApiRecord = { requests: [] };
  let learning = { ...data.learning };
  const json = (route: Route, body: unknown, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
  const handle = async (route: Route) => {
    const request = route.request();
    const url = new URL(request.url());
    const path = url.pathname.replace(/^\/api\/v1/, '');
    const body = request.postData() ? JSON.parse(request.postData()!) : undefined;
    record.requests.push({ method: request.method(), path, query: url.searchParams, body });
    const q = url.searchParams;
    if (request.method() === 'GET' && path === '/assets') {
      const text = (q.get('q') ?? '').toLowerCase();
      const assets = data.assets.filter((a) => (!q.get('pair') || a.pair === q.get('pair'))
        && (!q.get('side') || a.side === q.get('side'))
        && (!q.get('liveness') || a.liveness.state === q.get('liveness'))
        && (!text || [a.mac, a.name ?? '', a.vendor ?? '', ...a.addresses].some((s) => s.toLowerCase().includes(text))));
      return json(route, { assets: assets.slice(0, Number(q.get('limit') ?? 1000)) });
    }
    const one = /^\/assets\/(\d+)$/.exec(path);
    if (request.method() === 'GET' && one) {
      const asset = data.assets.find((a) => a.id === Number(one[1]));
      if (!asset) return json(route, { error: `no asset ${one[1]}` }, 404);
      return json(route, { asset, conversations: data.conversations.filter((c) => c.clientAsset === asset.id || c.serverAsset === asset.id) });
    }
    if (request.method() === 'GET' && path === '/conversations') {
      const conversations = data.conversations.filter((c) => (!q.get('pair') || c.pair === q.get('pair'))
        && (!q.get('asset') || c.clientAsset === Number(q.get('asset')) || c.serverAsset === Number(q.get('asset')))
        && (!q.get('address') || c.client === q.get('address') || c.server === q.get('address'))
        && (!q.get('verdict') || c.verdict === q.get('verdict'))
        && (!q.get('since') || c.lastSeen >= Number(q.get('since'))));
      return json(route, { conversations });
    }
    if (request.method() === 'GET' && path === '/learn') return json(route, { pairs: [learning] });
    if (request.method() === 'POST' && path === '/learn/start') {
      learning = { ...learning, state: 'learning', mode: body.mode, startedAt: Date.now(), endsAt: Date.now() + body.durationMs, assets: 0, conversations: 0 };
      return json(route, learning);
    }
    if (request.method() === 'POST' && path === '/learn/stop') {
      learning = { ...learning, state: 'done', endsAt: Date.now() };
      return json(route, learning);
    }
    if (request.method() === 'POST' && path === '/learn/propose') return json(route, { ...data.proposal, coverage: { ...data.proposal.coverage, hours: body.hours } });
    if (request.method() === 'POST' && path === '/learn/review') return json(route, data.review);
    return json(route, { error: `the test serves no ${request.method()} ${path}` }, 404);
  };
  await page.route((url) => /^\/api\/v1\/(assets|conversations|learn)(\/|$)/.test(url.pathname), handle);
  return record;
}

/** The review request's decisions, from the recorded requests (the latest one). */
export function lastDecisions(record: ApiRecord): Decision[] | undefined {
  const reviews = record.requests.filter((r) => r.path === '/learn/review');
  return (reviews.at(-1)?.body as { decisions?: Decision[] } | undefined)?.decisions;
}

// ---------------------------------------------------------------------------------------------------
// A dataplane on the management socket

/** The flows a dataplane of this plant tracks now. */
export function plantFlows(now: number): FlowRecord[] {
  const flow = (src: string, srcPort: number, functions: Record<string, number>, rule: string, verdict: 'allow' | 'monitor'): FlowRecord => ({
    proto: 'tcp', src, srcPort, dst: ADDR.plc, dstPort: 502, vlan: 0, rule, verdict, state: 'established', initiatorSide: 'outside',
    packetsOut: 240, packetsIn: 238, bytesOut: 17_000, bytesIn: 21_000, firstSeen: now - 60_000, lastSeen: now,
    app: { protocol: 'modbus', functions },
  });
  return [
    flow(ADDR.hmi, 40_100, { 'read-holding-registers': 120, 'write-single-register': 1 }, 'hmi-polls-plc', 'allow'),
    flow(ADDR.historian, 51_000, { 'read-input-registers': 60 }, 'historian-reads-plc', 'allow'),
  ];
}

/** Says hello for PAIR, reports stats every second, filters flows.get like a dataplane, and takes every policy. */
export class PlantDataplane {
  readonly flowQueries: FlowFilter[] = [];
  readonly policies: string[] = [];
  private readonly socket: Socket;
  private readonly timer: ReturnType<typeof setInterval>;
  private generation = 1;
  private hash = 'none';

  private constructor(socketPath: string, private readonly flows: FlowRecord[], welcomed: () => void) {
    this.socket = connect(socketPath);
    const reader = new LineReader<ManagementMessage>((m) => this.receive(m, welcomed), () => this.socket.destroy());
    this.socket.on('data', (chunk) => reader.push(chunk));
    this.socket.on('error', () => undefined);
    const started = Date.now();
    this.timer = setInterval(() => this.send({ type: 'stats', stats: { ...modbusStats(PAIR, 4242, Date.now() - started), generation: this.generation, policyHash: this.hash } }), 1000);
  }

  static async connect(socketPath: string, flows: FlowRecord[]): Promise<PlantDataplane> {
    let dp: PlantDataplane | undefined;
    await new Promise<void>((resolve) => {
      dp = new PlantDataplane(socketPath, flows, resolve);
      dp.send({ type: 'hello', version: IPC_VERSION, pair: PAIR, pid: 4242, inside: `${PAIR}-in`, outside: `${PAIR}-out`, generation: 1,
        policyHash: 'none', startedAt: Date.now() - 60_000 });
    });
    return dp!;
  }

  send(message: object): void {
    this.socket.write(encodeMessage(message));
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.destroy();
  }

  private pending = '';

  private receive(m: ManagementMessage, welcomed: () => void): void {
    if (m.type === 'welcome') welcomed();
    else if (m.type === 'flows.get') {
      this.flowQueries.push(m.filter);
      const f = m.filter;
      const flows = this.flows.filter((r) => (!f.address || r.src === f.address || r.dst === f.address)
        && (f.port === undefined || r.srcPort === f.port || r.dstPort === f.port) && (!f.rule || r.rule === f.rule) && (!f.verdict || r.verdict === f.verdict));
      this.send({ type: 'flows', requestId: m.requestId, flows: flows.slice(0, m.limit), matched: flows.length, total: this.flows.length });
    } else if (m.type === 'policy.prepare') {
      this.pending = m.text;
      this.send({ type: 'policy.prepared', requestId: m.requestId, ok: true, errors: [] });
    } else if (m.type === 'policy.commit') {
      this.generation += 1;
      this.hash = createHash('sha256').update(this.pending).digest('hex');
      this.policies.push(this.pending);
      this.send({ type: 'policy.committed', requestId: m.requestId, generation: this.generation, policyHash: this.hash });
    }
  }
}
