// The asset inventory on its own, over a real SQLite file in a temp directory and the real IEEE
// registry from Debian's ieee-data: sightings become assets with vendors, identities merge and
// name them, moves and identity changes raise asset.changed (routers do not), asset.new follows the
// announce flag, bounds and age hold, writes are batched and survive a restart, a full disk (a real
// tmpfs) is counted, logged once and retried, and liveness raises asset.down/asset.up on changes.

import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import type { AssetEvent, DenySummaryEvent } from '../appliance/ipc/events';
import type { ConversationDelta, IdentityObservation, ObservationsMessage, Sighting } from '../appliance/ipc/messages';
import { dropReasons, INVENTORY_FILE, openInventory, pickName, ROUTER_ADDRESSES, ROWS_PER_TRANSACTION, type InventoryOptions } from '../appliance/mgmt/inventory/inventory';
import { OuiRegistry } from '../appliance/mgmt/inventory/oui';
import { serviceName } from '../appliance/mgmt/inventory/service-names';

interface LogLine { level: string; fields: object; message: string }

function testLog(lines: LogLine[]) {
  const at = (level: string) => (fields: object, message: string) => void lines.push({ level, fields, message });
  return { info: at('info'), warn: at('warn'), error: at('error') };
}

/** One registry for the whole file: loading it is what the OUI test measures. */
const oui = new OuiRegistry();

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gk-inv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function open(t: Test, dir: string, options: Partial<InventoryOptions> = {}) {
  const log: LogLine[] = [];
  const inventory = openInventory({ file: join(dir, INVENTORY_FILE), log: testLog(log), oui, flushIntervalMs: 3_600_000, ...options });
  const events: AssetEvent[] = [];
  inventory.onEvent((e) => events.push(e));
  t.teardown(() => inventory.close());
  return { inventory, events, log };
}

const NOW = Date.now();

function sighting(mac: string, address: string, extra: Partial<Sighting> = {}): Sighting {
  return { mac, address, vlan: 0, side: 'inside', frames: 1, firstSeen: NOW - 1000, lastSeen: NOW, ...extra };
}

function conversation(extra: Partial<ConversationDelta> = {}): ConversationDelta {
  return {
    proto: 'tcp', client: '198.18.0.10', clientMac: '02:00:00:00:00:10', server: '198.18.0.100', serverMac: '02:00:00:00:01:00',
    port: 502, vlan: 0, clientSide: 'outside', rule: 'hmi-to-plc', verdict: 'allow', flows: 1, packets: 10, bytes: 1000,
    firstSeen: NOW - 1000, lastSeen: NOW, ...extra,
  };
}

function identity(mac: string, source: IdentityObservation['source'], fields: Record<string, string>, address = ''): IdentityObservation {
  return { mac, address, vlan: 0, side: 'inside', source, fields, time: NOW };
}

function message(parts: Partial<ObservationsMessage>): ObservationsMessage {
  return { type: 'observations', sightings: [], conversations: [], identities: [], dropped: 0, ...parts };
}

/** The first MA-L, MA-M and MA-S assignments in Debian's files, and what they name. */
function firstAssignment(file: string): { prefix: string; org: string } {
  const line = readFileSync(join('/usr/share/ieee-data', file), 'utf8').split('\n')[1];
  const [, prefix, org] = /^[^,]+,([0-9A-F]+),("[^"]*"|[^,]*)/.exec(line)!;
  return { prefix, org: org.replace(/^"|"$/g, '').trim() };
}

/** A MAC starting with a hex prefix (6, 7 or 9 digits), the rest zeros. */
function macOf(prefix: string): string {
  return (prefix + '0'.repeat(12 - prefix.length)).toLowerCase().match(/../g)!.join(':');
}

t.test('the IEEE registry loads in slices, and longest prefix wins', async (t) => {
  let longestGap = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
  }, 1);
  const stats = await oui.load();
  clearInterval(ticker);
  t.same(stats.errors, [], 'all three files read');
  t.ok(stats.prefixes['oui.csv'] > 30_000 && stats.prefixes['mam.csv'] > 4000 && stats.prefixes['oui36.csv'] > 4000,
    `prefixes: ${JSON.stringify(stats.prefixes)}`);
  t.comment(`load ${stats.totalMs.toFixed(0)} ms in all, longest slice ${stats.longestSliceMs.toFixed(1)} ms, longest loop gap ${longestGap.toFixed(1)} ms`);
  // Times are the bench's business (a loaded box stretches any slice); what must hold is that it yields.
  t.ok(stats.slices >= 10, `parsed in ${stats.slices} slices, yielding to the loop between them`);

  for (const file of ['oui.csv', 'mam.csv', 'oui36.csv']) {
    const { prefix, org } = firstAssignment(file);
    t.equal(oui.vendor(macOf(prefix)), org.toLowerCase() === 'private' ? null : org, `${file}: ${prefix} is ${org}`);
  }
  // 70:B3:D5 is the IEEE's own MA-L, split into MA-S blocks: the block's owner is named.
  const maS = readFileSync('/usr/share/ieee-data/oui36.csv', 'utf8').split('\n').find((l) => /^MA-S,70B3D5[0-9A-F]{3},[A-Za-z]/.test(l) && !l.includes('"'))!;
  const [, block, owner] = maS.split(',');
  t.equal(oui.vendor(macOf(block)), owner.trim(), `MA-S ${block} (inside MA-L 70B3D5) is ${owner}`);
  t.match(oui.vendor('70:b3:d5:00:00:00') ?? '', /IEEE Registration Authority|.+/, 'the MA-L itself has a name too');
  t.equal(oui.vendor('00:1b:1b:20:01:00'), 'Siemens AG', 'the registry\'s "Siemens AG,": its stray comma is not part of the name');
  t.equal(oui.vendor('02:00:00:00:00:01'), null, 'locally administered: no vendor');
  t.equal(oui.vendor('01:00:5e:00:00:01'), null, 'group address: no vendor');
  t.equal(oui.vendor('not a mac'), null);
  const missing = new OuiRegistry('/nonexistent');
  const missed = await missing.load();
  t.equal(missed.errors.length, 3, 'missing files are reported, not thrown');
  t.equal(missing.vendor(macOf(firstAssignment('oui.csv').prefix)), null);
});

t.test('service names come from the built-in services', async (t) => {
  t.equal(serviceName('tcp', 502), 'modbus');
  t.equal(serviceName('tcp', 8086), 'tcp/8086');
  t.equal(serviceName('udp', 53), 'dns');
  t.equal(serviceName('icmp', 8), 'ping');
  t.equal(serviceName('icmpv6', 128), 'ping');
  t.equal(serviceName('icmp', 13), 'icmp/timestamp-request');
  t.equal(serviceName('gre', 0), 'gre');
  t.equal(serviceName('proto/99', 0), 'proto/99');
});

t.test('sightings become assets with vendor, addresses and sides', async (t) => {
  await oui.load();
  const { inventory } = open(t, tempDir(t));
  const { prefix, org } = firstAssignment('oui.csv');
  const mac = macOf(prefix).replace(/00:00:00$/, '12:34:56');
  inventory.observe('cell1', message({
    sightings: [sighting(mac, '198.18.0.10'), sighting('02:00:00:00:00:99', '', { side: 'outside', vlan: 7 }), sighting(mac.toUpperCase(), '198.18.0.11')],
    dropped: 3,
  }), NOW);
  const assets = inventory.assets({});
  t.equal(assets.length, 2);
  const a = inventory.assets({ q: org.slice(0, 6).toLowerCase() })[0];
  t.equal(a.mac, mac, 'one asset per MAC whatever its spelling');
  t.equal(a.vendor, org, 'vendor from the IEEE registry');
  t.same(a.addresses, ['198.18.0.11', '198.18.0.10'], 'most recent address first');
  t.equal(a.router, false);
  t.same(a.liveness, { state: 'unknown', rttMs: null, checkedAt: null, changedAt: null });
  const local = inventory.assets({ side: 'outside' });
  t.equal(local.length, 1);
  t.equal(local[0].vendor, null, 'locally administered MAC: no vendor');
  t.equal(local[0].vlan, 7);
  t.same(local[0].addresses, []);
  t.equal(inventory.byAddress('198.18.0.10')[0].id, a.id);
  t.equal(inventory.assets({ q: '198.18.0.11' }).length, 1, 'q matches an address');
  t.equal(inventory.assets({ pair: 'other' }).length, 0);
  t.equal(inventory.stats().dropped, 3, "the dataplane's dropped count is kept");
  inventory.observe('cell1', message({ sightings: [sighting('ff:ff:ff:ff:ff:ff', '198.18.0.1'), sighting('zz', '')] }), NOW);
  t.equal(inventory.stats().assets, 2, 'group and malformed MACs are no assets');
  t.equal(inventory.stats().dropped, 5, 'and are counted');
});

t.test('conversations: counters summed, services, offers and uses, denied traffic', async (t) => {
  const { inventory } = open(t, tempDir(t));
  inventory.observe('cell1', message({ conversations: [conversation(), conversation({ app: { protocol: 'modbus', functions: { 'read-holding-registers': 4 }, units: [3] } })] }), NOW);
  inventory.observe('cell1', message({ conversations: [
    conversation({ flows: 2, packets: 5, bytes: 500, app: { protocol: 'modbus', functions: { 'read-holding-registers': 1, 'write-single-register': 2 }, units: [1, 3] } }),
    conversation({ port: 8086, serverMac: '', flows: 1 }),
    conversation({ proto: 'icmp', port: 8, verdict: 'monitor', rule: 'default' }),
  ] }), NOW + 1);
  const modbus = inventory.conversations({ pair: 'cell1' }).find((c) => c.port === 502)!;
  t.match(modbus, { service: 'modbus', flows: 4, packets: 25, bytes: 2500, protocol: 'modbus', verdict: 'allow', rule: 'hmi-to-plc' });
  t.same(modbus.functions, { 'read-holding-registers': 5, 'write-single-register': 2 }, 'function counts summed');
  t.same(modbus.units, [1, 3], 'the units named, merged');
  t.same(inventory.conversations({ verdict: 'monitor' })[0].units, [], 'none for a protocol without them');
  const hmi = inventory.byAddress('198.18.0.10')[0];
  const plc = inventory.byAddress('198.18.0.100')[0];
  t.equal(modbus.clientAsset, hmi.id);
  t.equal(modbus.serverAsset, plc.id);
  t.equal(hmi.side, 'outside');
  t.equal(plc.side, 'inside', "the server is behind the other port");
  t.same(hmi.uses, ['modbus', 'ping', 'tcp/8086']);
  t.same(plc.offers, ['modbus', 'ping'], 'a server that has not answered (serverMac "") offers nothing yet');
  t.equal(inventory.conversations({ verdict: 'monitor' })[0].service, 'ping');
  t.equal(inventory.conversations({ asset: plc.id }).length, 2);
  t.equal(inventory.conversations({ address: '198.18.0.100' }).length, 3);

  const deny: DenySummaryEvent = {
    type: 'deny.summary', time: new Date(NOW).toISOString(), severity: 'warning', pair: 'cell1', src: '198.18.0.10', srcPort: 0, srcGroups: [],
    dst: '198.18.0.100', dstPort: 23, dstGroups: [], proto: 'tcp', vlan: 0, rule: 'default', action: 'deny', monitor: false, count: 7, bytes: 420,
    firstSeen: new Date(NOW - 5000).toISOString(), lastSeen: new Date(NOW).toISOString(),
  };
  inventory.denied('cell1', deny, NOW);
  inventory.denied('cell1', { ...deny, action: 'reject', count: 3, bytes: 180 }, NOW);
  inventory.denied('cell1', { ...deny, monitor: true, count: 100 }, NOW);
  const denied = inventory.conversations({ verdict: 'deny' });
  t.equal(denied.length, 1);
  t.match(denied[0], { service: 'telnet', packets: 10, bytes: 600, flows: 0, clientAsset: hmi.id, serverAsset: plc.id, firstSeen: NOW - 5000 },
    'denied and rejected summed; monitor-mode summaries are the monitor conversations already');
  t.equal(inventory.conversations({ since: NOW }).length, 4);
  t.equal(inventory.conversations({ since: NOW + 1 }).length, 0, 'last seen is never later than the time it was taken');
  t.equal(inventory.conversations({ limit: 1 }).length, 1);
});

t.test('identity: merged per source, name by precedence, changes raise asset.changed', async (t) => {
  const { inventory, events } = open(t, tempDir(t));
  const mac = '02:00:00:00:00:50';
  inventory.observe('cell1', message({ identities: [identity(mac, 'modbus', { vendorName: 'Acme', productCode: 'PLC-9', revision: '1.0' }, '198.18.0.50')] }), NOW);
  let a = inventory.byAddress('198.18.0.50')[0];
  t.equal(a.name, 'Acme PLC-9', 'Modbus vendor and product code when that is all');
  inventory.observe('cell1', message({ identities: [identity(mac, 'modbus', { productName: 'Acme Controller', unit: '1' })] }), NOW);
  t.equal(inventory.asset(a.id)!.name, 'Acme Controller', 'Modbus product name over the codes');
  inventory.observe('cell1', message({ identities: [identity(mac, 'dhcp', { hostName: 'plc-9', vendorClass: 'acme', requestedAddress: '198.18.0.50' })] }), NOW);
  t.equal(inventory.asset(a.id)!.name, 'plc-9', 'DHCP host name over Modbus');
  inventory.observe('cell1', message({ identities: [identity(mac, 'lldp', { systemName: 'line1-plc', chassisId: mac, portId: 'eth0' })] }), NOW);
  a = inventory.asset(a.id)!;
  t.equal(a.name, 'line1-plc', 'LLDP system name first');
  t.same(a.identity, {
    modbus: { vendorName: 'Acme', productCode: 'PLC-9', revision: '1.0', productName: 'Acme Controller', unit: '1' },
    dhcp: { hostName: 'plc-9', vendorClass: 'acme' },
    lldp: { systemName: 'line1-plc', chassisId: mac, portId: 'eth0' },
  }, 'fields merged per source; unknown ones (requestedAddress) left out');
  t.same(events, [], 'first sight of a field is no change');
  t.equal(pickName({}), null);

  inventory.observe('cell1', message({ identities: [identity(mac, 'modbus', { revision: '1.1', vendorName: 'Acme' })] }), NOW + 10);
  t.equal(events.length, 1, 'a changed field raises one event');
  t.match(events[0], { type: 'asset.changed', severity: 'notice', pair: 'cell1', asset: a.id, mac, name: 'line1-plc', address: '198.18.0.50',
    detail: 'modbus revision changed from "1.0" to "1.1"' });
  inventory.observe('cell1', message({ identities: [identity(mac, 'modbus', { revision: '1.1' })] }), NOW + 20);
  t.equal(events.length, 1, 'the same value again raises nothing');
  inventory.observe('cell1', message({ identities: [identity(mac, 'lldp', { systemName: 'x'.repeat(400) })] }), NOW + 30);
  t.equal(inventory.asset(a.id)!.name!.length, 255, 'values are bounded');
});

t.test('an address that moves to another MAC raises asset.changed once per move; a router carries addresses without moves', async (t) => {
  const { inventory, events } = open(t, tempDir(t));
  const first = '02:00:00:00:00:01';
  const second = '02:00:00:00:00:09';
  inventory.observe('cell1', message({ sightings: [sighting(first, '198.18.0.10')] }), NOW);
  inventory.observe('cell1', message({ sightings: [sighting(second, '198.18.0.10')] }), NOW + 1000);
  t.equal(events.length, 1);
  t.match(events[0], { type: 'asset.changed', severity: 'warning', mac: second, address: '198.18.0.10', previousMac: first,
    detail: `198.18.0.10 moved from ${first} to ${second}` });
  inventory.observe('cell1', message({ sightings: [sighting(second, '198.18.0.10'), sighting(second, '198.18.0.10')] }), NOW + 2000);
  t.equal(events.length, 1, 'seen again on the same MAC: no new event');
  t.same(inventory.byAddress('198.18.0.10').map((a) => a.mac), [second], 'the address left the old asset');
  inventory.observe('cell1', message({ sightings: [sighting(first, '198.18.0.10')] }), NOW + 3000);
  t.equal(events.length, 2, 'moving back is another move');
  inventory.observe('cell1', message({ sightings: [sighting(second, '198.18.0.10')] }), NOW + 4000);
  inventory.observe('cell1', message({ sightings: [sighting(first, '198.18.0.10')] }), NOW + 5000);
  t.equal(events.length, 2, 'a flapping address is not announced again within the repeat window');
  inventory.observe('cell1', message({ sightings: [sighting(second, '198.18.0.10', { vlan: 5 })] }), NOW + 6000);
  t.equal(events.length, 2, 'the same address in another VLAN is another host');

  const gateway = '02:00:00:00:00:fe';
  const routed = Array.from({ length: ROUTER_ADDRESSES + 1 }, (_, i) => sighting(gateway, `198.18.1.${i + 1}`));
  inventory.observe('cell1', message({ sightings: routed }), NOW);
  const router = inventory.assets({ q: gateway })[0];
  t.equal(router.router, true, `more than ${ROUTER_ADDRESSES} source addresses: a router`);
  t.equal(router.addresses.length, ROUTER_ADDRESSES + 1);
  t.equal(events.length, 2);
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:22', '198.18.1.5'), sighting(gateway, '198.18.1.99')] }), NOW + 1);
  t.equal(events.length, 2, "a host taking one of the router's addresses is no move either");
  inventory.observe('cell1', message({ conversations: [conversation({ clientMac: gateway, client: '198.18.9.9' })] }), NOW + 2);
  const c = inventory.conversations({ address: '198.18.9.9' })[0];
  t.equal(c.clientAsset, null, 'a conversation from beyond the router is not the router\'s');
  t.same(inventory.asset(router.id)!.uses, []);
  t.equal(inventory.byAddress('198.18.1.5')[0].mac, '02:00:00:00:00:22', 'hosts before routers in byAddress');
});

t.test('asset.new only on pairs whose announce flag is set, and the flag is kept', async (t) => {
  await oui.load();
  const dir = tempDir(t);
  const { inventory, events } = open(t, dir);
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:01', '198.18.0.1')] }), NOW);
  t.same(events, [], 'learning has not run: no event');
  inventory.setAnnounceNew('cell1', true);
  const { prefix, org } = firstAssignment('oui.csv');
  const mac = macOf(prefix).replace(/00:00:00$/, '00:00:42');
  inventory.observe('cell1', message({
    sightings: [sighting('02:00:00:00:00:01', '198.18.0.1'), sighting(mac, '198.18.0.42', { side: 'outside', vlan: 3 })],
    identities: [{ ...identity(mac, 'dhcp', { hostName: 'newcomer' }), side: 'outside', vlan: 3 }],
  }), NOW);
  inventory.observe('cell2', message({ sightings: [sighting('02:00:00:00:00:02', '198.18.0.2')] }), NOW);
  t.equal(events.length, 1, 'one event: the new MAC on the announcing pair only');
  t.match(events[0], { type: 'asset.new', severity: 'warning', pair: 'cell1', mac, address: '198.18.0.42', name: 'newcomer', vendor: org,
    vlan: 3, side: 'outside', time: new Date(NOW).toISOString() });
  inventory.close();

  const reopened = open(t, dir);
  reopened.inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:03', '198.18.0.3')] }), NOW);
  reopened.inventory.observe('cell2', message({ sightings: [sighting('02:00:00:00:00:04', '198.18.0.4')] }), NOW);
  t.same(reopened.events.map((e) => e.mac), ['02:00:00:00:00:03'], 'the flag survives a restart');
  reopened.inventory.setAnnounceNew('cell1', false);
  reopened.inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:05', '198.18.0.5')] }), NOW);
  t.equal(reopened.events.length, 1, 'and can be cleared');
});

t.test('bounds: the least recently seen go first, counted; old rows expire, also across a restart', async (t) => {
  const dir = tempDir(t);
  const { inventory } = open(t, dir, { maxAssets: 3, maxConversations: 2 });
  for (let i = 1; i <= 5; i++) inventory.observe('cell1', message({ sightings: [sighting(`02:00:00:00:00:0${i}`, `198.18.0.${i}`)] }), NOW + i);
  t.same(inventory.assets({}).map((a) => a.mac), ['02:00:00:00:00:05', '02:00:00:00:00:04', '02:00:00:00:00:03']);
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:03', '198.18.0.3')] }), NOW + 10);
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:06', '198.18.0.6')] }), NOW + 11);
  t.same(inventory.assets({}).map((a) => a.mac).sort(), ['02:00:00:00:00:03', '02:00:00:00:00:05', '02:00:00:00:00:06'],
    'seen again: kept; the least recently seen went');
  for (let port = 1; port <= 4; port++) inventory.observe('cell1', message({ conversations: [conversation({ port, serverMac: '', clientMac: '02:00:00:00:00:03' })] }), NOW + 20);
  t.same(inventory.conversations({}).map((c) => c.port).sort(), [3, 4]);
  t.equal(inventory.stats().dropped, 3 + 2, 'evictions are counted as dropped');
  t.equal(inventory.droppedByReason().evicted, 5);
  inventory.flush();
  inventory.close();
  const db = new Database(join(dir, INVENTORY_FILE), { readonly: true });
  t.equal((db.prepare('SELECT count(*) AS n FROM assets').get() as { n: number }).n, 3, 'the file holds the bound too');
  t.equal((db.prepare('SELECT count(*) AS n FROM conversations').get() as { n: number }).n, 2);
  db.close();

  const aged = open(t, dir, { maxAgeMs: 60_000 });
  const day = 24 * 3600_000;
  aged.inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:77', '198.18.0.77', { firstSeen: NOW - 2 * day, lastSeen: NOW - day })] }), NOW);
  t.equal(aged.inventory.stats().assets, 4);
  aged.inventory.flush();
  t.equal(aged.inventory.stats().assets, 3, 'not seen within maxAgeMs: removed at the next batch');
  aged.inventory.close();
  const after = open(t, dir, { maxAgeMs: 1 });
  t.equal(after.inventory.stats().assets, 0, 'and at start, from what the file holds');
  t.equal(after.inventory.stats().conversations, 0);
});

t.test('batched writes: nothing before the interval, everything after; a restart keeps it all', async (t) => {
  const dir = tempDir(t);
  const { inventory } = open(t, dir, { flushIntervalMs: 700 });
  const file = join(dir, INVENTORY_FILE);
  const count = (table: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  inventory.observe('cell1', message({
    sightings: [sighting('02:00:00:00:00:01', '198.18.0.1')],
    conversations: [conversation()],
    identities: [identity('02:00:00:00:01:00', 'lldp', { systemName: 'plc' })],
  }), NOW);
  t.equal(inventory.assets({}).length, 3, 'reads see it at once (from memory)');
  t.equal(count('assets'), 0, 'nothing written before the interval');
  t.equal(count('conversations'), 0);
  t.equal(inventory.stats().lastFlushAt, null);
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(count('assets'), 3, 'all written after it');
  t.equal(count('conversations'), 1);
  const stats = inventory.stats();
  t.ok(stats.lastFlushAt !== null && stats.lastFlushMs !== null && stats.dbBytes > 0, `flushed in ${stats.lastFlushMs?.toFixed(2)} ms, ${stats.dbBytes} bytes`);
  const plc = inventory.byAddress('198.18.0.100')[0];
  t.equal(inventory.liveness(plc.id, true, 1.5, NOW), null);
  // More than one transaction's worth: the interval's batch writes it in several, yielding between.
  const many = ROWS_PER_TRANSACTION * 2 + 10;
  inventory.observe('cell1', message({ conversations: Array.from({ length: many }, (_, i) => conversation({ port: 10_000 + i, serverMac: '' })) }), NOW);
  const transactions = inventory.transactions;
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(count('conversations'), many + 1, `all ${many + 1} conversations written by the next interval`);
  t.equal(inventory.pendingRows(), 0);
  t.equal(inventory.transactions - transactions, 3, `in 3 transactions of at most ${ROWS_PER_TRANSACTION} rows`);
  const before = { assets: inventory.assets({}), conversations: inventory.conversations({ limit: 10_000 }) };
  inventory.close();

  const reopened = open(t, dir);
  t.same(reopened.inventory.assets({}), before.assets, 'assets, identity and liveness state survive a restart');
  t.same(reopened.inventory.conversations({ limit: 10_000 }), before.conversations, 'conversations too');
  reopened.inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:02', '198.18.0.2')] }), NOW);
  t.ok(reopened.inventory.byAddress('198.18.0.2')[0].id > Math.max(...before.assets.map((a) => a.id)), 'ids are not reused');
});

t.test('liveness: up, down after misses, up again with its round trip', async (t) => {
  const dir = tempDir(t);
  const { inventory } = open(t, dir);
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:01', '198.18.0.1')] }), NOW);
  const id = inventory.assets({})[0].id;
  t.equal(inventory.liveness(id, false, null, NOW), null);
  t.equal(inventory.liveness(id, false, null, NOW + 1), null, 'an asset that never answered is not announced down');
  t.equal(inventory.asset(id)!.liveness.state, 'down');
  t.match(inventory.liveness(id, true, 2, NOW + 2), { type: 'asset.up', rttMs: 2 }, 'answers after being down: up is news');
  t.equal(inventory.asset(id)!.liveness.state, 'up');
  t.equal(inventory.liveness(id, true, 2, NOW + 3), null, 'up stays up quietly');
  const down = inventory.liveness(id, false, null, NOW + 10);
  t.match(down, { type: 'asset.down', severity: 'warning', asset: id, mac: '02:00:00:00:00:01', address: '198.18.0.1', pair: 'cell1' });
  t.equal(inventory.asset(id)!.liveness.changedAt, NOW + 10);
  t.equal(inventory.liveness(id, false, null, NOW + 11), null, 'down stays down quietly');
  t.equal(inventory.assets({ liveness: 'down' }).length, 1);
  const up = inventory.liveness(id, true, 3.25, NOW + 20);
  t.match(up, { type: 'asset.up', severity: 'notice', asset: id, rttMs: 3.25 });
  t.match(inventory.asset(id)!.liveness, { state: 'up', rttMs: 3.25, checkedAt: NOW + 20, changedAt: NOW + 20 });
  t.equal(inventory.liveness(9999, true, 1, NOW), null, 'unknown asset: nothing');
  inventory.close();
  t.equal(open(t, dir).inventory.asset(id)!.liveness.state, 'up', 'the state survives a restart');
});

t.test('an unreadable database is moved aside and a fresh one started', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, INVENTORY_FILE);
  const fd = openSync(file, 'w');
  writeSync(fd, 'this is not a database, just some text that is long enough to be read as a header'.repeat(100));
  closeSync(fd);
  const { inventory, log } = open(t, dir);
  t.equal(inventory.stats().assets, 0);
  t.ok(log.some((l) => l.level === 'error' && /moved aside/.test(l.message)), 'logged');
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:01', '198.18.0.1')] }), NOW);
  inventory.flush();
  t.equal(inventory.stats().flushErrors, 0);
});

t.test('a full disk: the batch is counted, logged once, kept and retried', { skip: process.getuid?.() !== 0 && 'needs root (mount)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gk-inv-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir]);
  let inventory: ReturnType<typeof openInventory> | undefined;
  t.teardown(() => {
    inventory?.close();
    try {
      execFileSync('umount', [dir]);
    } catch {
      execFileSync('umount', ['-l', dir]);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const log: LogLine[] = [];
  inventory = openInventory({ file: join(dir, INVENTORY_FILE), log: testLog(log), oui, flushIntervalMs: 3_600_000 });
  inventory.observe('cell1', message({ sightings: [sighting('02:00:00:00:00:01', '198.18.0.1')] }), NOW);
  inventory.flush();
  t.equal(inventory.stats().flushErrors, 0, 'the first batch fits');

  const filler = openSync(join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(16 * 1024, 0x55);
  for (;;) {
    try {
      writeSync(filler, chunk);
    } catch {
      break;
    }
  }
  const many = (from: number) => Array.from({ length: 2000 }, (_, i) => conversation({ port: from + i, serverMac: '' }));
  inventory.observe('cell1', message({ conversations: many(1000) }), NOW);
  inventory.flush();
  inventory.flush();
  t.equal(inventory.stats().flushErrors, 2, 'each failed batch is counted');
  t.equal(log.filter((l) => l.level === 'error').length, 1, 'and logged once');
  t.match(log.find((l) => l.level === 'error')!.fields, { diskFull: true });
  t.equal(inventory.conversations({ limit: 10000 }).length, 2000, 'nothing is lost meanwhile');
  t.ok(inventory.pendingRows() >= 2000, 'the batch waits');

  closeSync(filler);
  rmSync(join(dir, 'filler'));
  inventory.flush();
  t.equal(inventory.stats().flushErrors, 2, 'room again: written');
  t.equal(inventory.pendingRows(), 0);
  t.ok(log.some((l) => l.level === 'info' && /written again/.test(l.message)));
  inventory.close();
  inventory = openInventory({ file: join(dir, INVENTORY_FILE), log: testLog(log), oui });
  t.equal(inventory.conversations({ limit: 10000 }).length, 2000, 'everything retried reached the file');
});

t.test('a message over the per-message limit is cut and counted, never a throw', async (t) => {
  const { inventory } = open(t, tempDir(t));
  const sightings = Array.from({ length: 20_500 }, (_, i) => sighting(`02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, ''));
  inventory.observe('cell1', message({ sightings }), NOW);
  t.equal(inventory.stats().assets, 5000, 'bounded by maxAssets');
  t.equal(inventory.droppedByReason().over_limit, 500);
  inventory.observe('cell1', message({ conversations: [conversation({ client: 'nonsense' })] }), NOW);
  t.equal(inventory.droppedByReason().invalid, 1, 'an address that is none is counted');
});

t.test('the drop reasons documented are the ones counted', async (t) => {
  const docs = readFileSync(join(__dirname, '..', 'docs', 'operations.md'), 'utf8');
  const row = docs.split('\n').find((l) => l.startsWith('| `gatekeeper_inventory_dropped_total{reason}`'))!;
  t.ok(row, 'operations.md has the metric');
  t.same([...row.matchAll(/`([a-z_]+)` \(/g)].map((m) => m[1]), [...dropReasons], 'same names, same order');
});
