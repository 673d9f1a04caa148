// A fake Inventory (appliance/mgmt/inventory/types.ts) for tests of what reads the inventory (learn
// mode, routes): assets and conversations held in arrays, filters applied as the interface says,
// calls that change state recorded for assertions. Builders make assets and conversations with
// defaults. It does not decode observations: observe() and denied() only record that they were called.

import type { AssetEvent, DenySummaryEvent } from '../../appliance/ipc/events';
import type { ObservationsMessage } from '../../appliance/ipc/messages';
import type { Asset, AssetFilter, Conversation, ConversationFilter, Inventory, InventoryStats } from '../../appliance/mgmt/inventory/types';

let nextId = 1;

export function makeAsset(fields: Partial<Asset> & { mac: string; addresses: string[] }): Asset {
  return {
    id: nextId++,
    pair: 'p1',
    vendor: null,
    router: false,
    vlan: 0,
    side: 'inside',
    name: null,
    identity: {},
    firstSeen: Date.UTC(2026, 11, 1),
    lastSeen: Date.UTC(2026, 11, 2),
    packets: 0,
    bytes: 0,
    offers: [],
    uses: [],
    liveness: { state: 'off', rttMs: null, checkedAt: null, changedAt: null },
    ...fields,
  };
}

/** A conversation between two assets (their first addresses), service from the port unless given. */
export function makeConversation(client: Asset | string, server: Asset | string,
  fields: Partial<Conversation> = {}): Conversation {
  const c = typeof client === 'string' ? null : client;
  const s = typeof server === 'string' ? null : server;
  return {
    id: nextId++,
    pair: 'p1',
    proto: 'tcp',
    client: c ? c.addresses[0] : (client as string),
    clientAsset: c ? c.id : null,
    server: s ? s.addresses[0] : (server as string),
    serverAsset: s ? s.id : null,
    port: 502,
    service: 'modbus',
    vlan: 0,
    rule: '(default)',
    verdict: 'monitor',
    flows: 1,
    packets: 10,
    bytes: 1000,
    functions: {},
    protocol: '',
    units: [],
    firstSeen: Date.UTC(2026, 11, 1, 8),
    lastSeen: Date.UTC(2026, 11, 2, 8),
    ...fields,
  };
}

export class FakeInventory implements Inventory {
  assetList: Asset[] = [];
  conversationList: Conversation[] = [];
  /** setAnnounceNew calls, in order. */
  announce: { pair: string; on: boolean }[] = [];
  private listeners: ((e: AssetEvent) => void)[] = [];
  observed = 0;

  constructor(assets: Asset[] = [], conversations: Conversation[] = []) {
    this.assetList = assets;
    this.conversationList = conversations;
  }

  observe(_pair: string, _message: ObservationsMessage, _now: number): void {
    this.observed++;
  }
  denied(_pair: string, _event: DenySummaryEvent, _now: number): void {
    this.observed++;
  }
  assets(f: AssetFilter): Asset[] {
    const q = f.q?.toLowerCase();
    const out = this.assetList.filter((a) => (f.pair === undefined || a.pair === f.pair) && (f.side === undefined || a.side === f.side) &&
      (f.liveness === undefined || a.liveness.state === f.liveness) &&
      (q === undefined || [a.mac, ...a.addresses, a.name ?? '', a.vendor ?? ''].some((s) => s.toLowerCase().includes(q))));
    return f.limit === undefined ? out : out.slice(0, f.limit);
  }
  asset(id: number): Asset | null {
    return this.assetList.find((a) => a.id === id) ?? null;
  }
  byAddress(address: string): Asset[] {
    return this.assetList.filter((a) => a.addresses.includes(address));
  }
  conversations(f: ConversationFilter): Conversation[] {
    const out = this.conversationList.filter((c) => (f.pair === undefined || c.pair === f.pair) &&
      (f.asset === undefined || c.clientAsset === f.asset || c.serverAsset === f.asset) &&
      (f.address === undefined || c.client === f.address || c.server === f.address) &&
      (f.verdict === undefined || c.verdict === f.verdict) && (f.since === undefined || c.lastSeen >= f.since));
    return f.limit === undefined ? out : out.slice(0, f.limit);
  }
  liveness(): AssetEvent | null {
    return null;
  }
  setAnnounceNew(pair: string, on: boolean): void {
    this.announce.push({ pair, on });
  }
  onEvent(listener: (event: AssetEvent) => void): void {
    this.listeners.push(listener);
  }
  emit(event: AssetEvent): void {
    for (const l of this.listeners) l(event);
  }
  stats(): InventoryStats {
    return { assets: this.assetList.length, conversations: this.conversationList.length, dropped: 0, dbBytes: 0, lastFlushAt: null, lastFlushMs: null, flushErrors: 0 };
  }
  flush(): void {}
  close(): void {}
}

/**
 * A big synthetic pair for measurements: `assets` hosts (a tenth of them servers, the rest clients),
 * each client talking to a few servers with a couple of services, spread over VLANs and verdicts until
 * there are `conversations` rows (with `spread`, any client talks to any server). Deterministic for a seed.
 */
export function syntheticInventory(assets: number, conversations: number, seed = 1, spread = false): FakeInventory {
  let s = seed >>> 0;
  const rand = (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
  const list: Asset[] = [];
  for (let i = 0; i < assets; i++) {
    const hi = (i >> 8) & 0xff;
    const lo = i & 0xff;
    list.push(makeAsset({ mac: `02:00:00:00:${hi.toString(16).padStart(2, '0')}:${lo.toString(16).padStart(2, '0')}`,
      addresses: [`198.18.${hi}.${lo}`], vendor: i % 3 === 0 ? 'Siemens AG' : null,
      identity: i % 2 === 0 ? { lldp: { systemName: `${i < assets / 10 ? 'plc' : 'hmi'}-${i}` } } : {} }));
  }
  const servers = list.slice(0, Math.max(1, Math.floor(assets / 10)));
  const clients = list.slice(servers.length);
  const services: [string, number, string][] = [['modbus', 502, 'tcp'], ['s7comm', 102, 'tcp'], ['http', 80, 'tcp'], ['tcp/8086', 8086, 'tcp'], ['ping', 8, 'icmp']];
  const rows: Conversation[] = [];
  while (rows.length < conversations) {
    const c = clients[rand(clients.length)] ?? list[0];
    // spread: each client talks to any server, so few assets behave alike (many groups and rules).
    const srv = servers[spread ? rand(servers.length) : (c.id * 7 + rand(4)) % servers.length];
    const [service, port, proto] = services[(c.id + rand(2)) % services.length];
    const modbus = service === 'modbus';
    rows.push(makeConversation(c, srv, { service, port, proto, vlan: rand(10), flows: 1 + rand(50),
      verdict: rand(20) === 0 ? 'deny' : 'monitor', protocol: modbus ? 'modbus' : '',
      functions: modbus ? (rand(5) === 0 ? { 'read-coils': 3, 'write-single-register': 1 } : { 'read-holding-registers': 12 }) : {} }));
  }
  return new FakeInventory(list, rows);
}
