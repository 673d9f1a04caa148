// Management's asset inventory (the Inventory of types.ts): what the dataplanes' observations say
// about the plant, as assets (a MAC behind one port of one pair) and conversations (who talked to
// whom over which service, summed), with the events a change raises (asset.new, asset.changed) and
// the liveness state the prober reports.
//
// All of it is held in memory, bounded (maxAssets, maxConversations, maxAgeMs: oldest go first), and
// written behind to SQLite (db.ts) every flushIntervalMs, in transactions of at most
// ROWS_PER_TRANSACTION rows (each atomic; the loop gets a turn between them): reads are answered from
// memory, so nothing waits for the disk, and a row updated by every observations message (every few
// seconds) is written once per interval, not once per message. A batch that cannot be written (a
// full disk) stays dirty, bounded by the same limits, and is retried at the next interval; the first
// failure is logged, the rest counted. Must not write to the disk outside its batches, and must not
// throw at its callers (the hub's message handler) for anything a dataplane sends.

import { isIP } from 'node:net';
import type { AssetEvent, DenySummaryEvent, Severity } from '../../ipc/events';
import type { ConversationDelta, IdentityObservation, ObservationsMessage } from '../../ipc/messages';
import { InventoryDb, isStoreFull, type Batch, type DbLog } from './db';
import { ieeeRegistry, type OuiRegistry } from './oui';
import { serviceName } from './service-names';
import type { Asset, AssetFilter, AssetIdentity, Conversation, ConversationFilter, Inventory, InventoryStats, Side } from './types';

/** The database's name in management's state directory. */
export const INVENTORY_FILE = 'inventory.db';

export interface InventoryOptions {
  /** The database file (management: <state dir>/inventory.db). */
  file: string;
  log: DbLog;
  /** Vendor lookup (default: the process's IEEE registry from /usr/share/ieee-data, loaded in the background). */
  oui?: OuiRegistry;
  flushIntervalMs?: number;
  maxAssets?: number;
  maxConversations?: number;
  /** Assets and conversations not seen for this long are removed. */
  maxAgeMs?: number;
}

/**
 * Defaults (docs/operations.md "Asset inventory"; numbers from bench/inventory.ts on this 2-core box
 * under a load average of ~10):
 * - flush every 30 s: a conversation that every observations message (~5 s) updates is written once
 *   per batch. 6 messages updating the same 1000 conversations (and their 1000 hosts): one batch
 *   18–33 ms on the loop and 1.1 MiB written, against 119–168 ms and 7.3–8.4 MiB when each message
 *   is written on its own (7–8× fewer bytes to the flash). A crash or power cut loses at most the last
 *   30 s of counters, which traffic brings back.
 * - 5000 assets and 20 000 conversations: far above a cell (tens to hundreds of hosts); ~11 MB of
 *   heap and ~2 MB of file per 1000 assets with 10 000 conversations, so ~25 MB and ~5 MB at the bounds.
 * - 30 days: a device that monthly jobs talk to stays known; one gone for longer is gone.
 */
export const INVENTORY_DEFAULTS = {
  flushIntervalMs: 30_000,
  maxAssets: 5000,
  maxConversations: 20_000,
  maxAgeMs: 30 * 24 * 3600_000,
} as const;

/** Addresses kept per asset (most recent first). */
export const MAX_ADDRESSES = 16;
/** More distinct source addresses than this within ROUTER_WINDOW_MS: a router (IPv4 + IPv6 link-local, global and temporary stay below). */
export const ROUTER_ADDRESSES = 6;
export const ROUTER_WINDOW_MS = 10 * 60_000;
/** Services kept per asset, offered and used. */
export const MAX_SERVICES = 64;
/** The same move (address, from MAC, to MAC) is announced once in this time, however often it flaps. */
export const MOVE_REPEAT_MS = 15 * 60_000;
/** Items (sightings + conversations + identities) taken from one message; the rest are dropped (counted). */
export const MAX_ITEMS_PER_MESSAGE = 20_000;
/**
 * Rows per transaction of a batch: ~7 ms per 1000 rows on the loaded 2-core box (bench/inventory.ts),
 * so one transaction holds the loop ~15–30 ms however much waits; the interval's batch yields
 * between its transactions.
 */
export const ROWS_PER_TRANSACTION = 2000;
/** Longest identity value kept. */
const MAX_IDENTITY_CHARS = 255;

/** Why observations were not kept (the `dropped` total of stats() and the metrics' reasons). */
export const dropReasons = ['dataplane', 'evicted', 'invalid', 'over_limit'] as const;
export type DropReason = (typeof dropReasons)[number];

/** Severities the inventory raises (docs/siem.md). */
const SEVERITY: Record<'new' | 'moved' | 'identity' | 'down' | 'up', Severity> = {
  new: 'warning', moved: 'warning', identity: 'notice', down: 'warning', up: 'notice',
};

const IDENTITY_FIELDS: { [S in keyof AssetIdentity]-?: readonly (keyof NonNullable<AssetIdentity[S]>)[] } = {
  lldp: ['systemName', 'systemDescription', 'chassisId', 'portId', 'portDescription', 'managementAddress'],
  dhcp: ['hostName', 'vendorClass'],
  modbus: ['vendorName', 'productCode', 'revision', 'vendorUrl', 'productName', 'modelName', 'unit'],
};

const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** Best name, in this order: LLDP system name, DHCP host name, Modbus product name, model name, "vendor product code". */
export function pickName(identity: AssetIdentity): string | null {
  const m = identity.modbus;
  const modbusIdentity = m?.vendorName && m.productCode ? `${m.vendorName} ${m.productCode}` : undefined;
  return identity.lldp?.systemName || identity.dhcp?.hostName || m?.productName || m?.modelName || modbusIdentity || null;
}

export function openInventory(options: InventoryOptions): SqliteInventory {
  return new SqliteInventory(options);
}

interface Live extends Asset {
  /** Source addresses with the time each was last seen, within ROUTER_WINDOW_MS (not stored). */
  recent: Map<string, number>;
}

export class SqliteInventory implements Inventory {
  private readonly db: InventoryDb;
  private readonly log: DbLog;
  private readonly oui: OuiRegistry;
  private readonly limits: { flushIntervalMs: number; maxAssets: number; maxConversations: number; maxAgeMs: number };
  /** Map order is the order of the latest update: the first entry is the least recently seen. */
  private readonly assetsById = new Map<number, Live>();
  private readonly assetsByKey = new Map<string, Live>();
  private readonly conversationsById = new Map<number, Conversation>();
  private readonly conversationsByKey = new Map<string, Conversation>();
  /** (pair, VLAN, address) → the non-router asset that carries it. */
  private readonly owners = new Map<string, number>();
  private readonly announce = new Map<string, boolean>();
  private readonly recentMoves = new Map<string, number>();
  private readonly listeners: ((event: AssetEvent) => void)[] = [];
  private nextAssetId: number;
  private nextConversationId: number;
  // What the next batch writes.
  private readonly dirtyAssets = new Set<number>();
  private readonly dirtyConversations = new Set<number>();
  private readonly deletedAssets = new Set<number>();
  private readonly deletedConversations = new Set<number>();
  private readonly dirtyAnnounce = new Map<string, boolean>();
  private readonly droppedBy: Record<DropReason, number> = { dataplane: 0, evicted: 0, invalid: 0, over_limit: 0 };
  private lastFlushAt: number | null = null;
  private lastFlushMs: number | null = null;
  private flushErrors = 0;
  private failing = false;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** A background batch is between two of its transactions. */
  private writing = false;
  /** Transactions written since open. */
  transactions = 0;
  private readonly vendorsLoaded: Promise<void>;

  constructor(options: InventoryOptions) {
    this.log = options.log;
    this.limits = {
      flushIntervalMs: options.flushIntervalMs ?? INVENTORY_DEFAULTS.flushIntervalMs,
      maxAssets: options.maxAssets ?? INVENTORY_DEFAULTS.maxAssets,
      maxConversations: options.maxConversations ?? INVENTORY_DEFAULTS.maxConversations,
      maxAgeMs: options.maxAgeMs ?? INVENTORY_DEFAULTS.maxAgeMs,
    };
    this.db = InventoryDb.open(options.file, this.log);
    const stored = this.db.load();
    for (const row of stored.assets) this.index({ ...row, recent: new Map() });
    for (const c of stored.conversations) {
      this.conversationsById.set(c.id, c);
      this.conversationsByKey.set(conversationKey(c.pair, c.client, c.server, c.proto, c.port, c.vlan, c.rule, c.verdict), c);
    }
    for (const [pair, on] of stored.announce) this.announce.set(pair, on);
    this.nextAssetId = stored.nextAssetId;
    this.nextConversationId = stored.nextConversationId;
    this.expire(Date.now()); // a box that was off for long starts without what went stale meanwhile
    this.log.info({ file: options.file, assets: this.assetsById.size, conversations: this.conversationsById.size }, 'asset inventory opened');
    this.oui = options.oui ?? ieeeRegistry;
    this.vendorsLoaded = this.oui.load().then((s) => {
      if (s.errors.length > 0) this.log.warn({ errors: s.errors }, 'IEEE registry (ieee-data) not fully read: some vendors stay unknown');
      this.log.info({ prefixes: s.prefixes, ms: Math.round(s.totalMs), longestSliceMs: Math.round(s.longestSliceMs) }, 'MAC vendor registry loaded');
      if (this.closed) return;
      for (const a of this.assetsById.values()) {
        if (a.vendor !== null) continue;
        a.vendor = this.oui.vendor(a.mac);
        if (a.vendor !== null) this.dirtyAssets.add(a.id);
      }
    });
    this.timer = setInterval(() => this.flushInBackground(), this.limits.flushIntervalMs).unref();
  }

  /** Resolves once the vendor registry is loaded (vendors of assets seen before are filled in then). */
  whenVendorsLoaded(): Promise<void> {
    return this.vendorsLoaded;
  }

  // --- what the dataplanes report

  observe(pair: string, message: ObservationsMessage, now: number): void {
    if (this.closed) return;
    const events: AssetEvent[] = [];
    const created: Live[] = [];
    this.droppedBy.dataplane += message.dropped;
    let budget = MAX_ITEMS_PER_MESSAGE;
    const take = <T>(items: T[]): T[] => {
      const kept = items.length <= budget ? items : items.slice(0, budget);
      this.droppedBy.over_limit += items.length - kept.length;
      budget -= kept.length;
      return kept;
    };
    for (const s of take(message.sightings)) this.sight(pair, s.mac, s.address, s.vlan, s.side, s.firstSeen, s.lastSeen, now, created, events);
    for (const i of take(message.identities)) this.identify(pair, i, now, created, events);
    for (const c of take(message.conversations)) this.converse(pair, c, now, created, events);
    const announced = this.announce.get(pair) === true ? created.filter((a) => this.assetsById.get(a.id) === a) : [];
    this.emit([...announced.map((a) => this.event('asset.new', SEVERITY.new, a, a.addresses[0] ?? '', now)), ...events]);
  }

  denied(pair: string, event: DenySummaryEvent, now: number): void {
    // In monitor mode the same traffic passed and comes as a "monitor" conversation: counting the
    // would-be denial too would count it twice.
    if (this.closed || event.monitor) return;
    const firstSeen = Math.min(timeOf(event.firstSeen, now), now);
    const lastSeen = Math.min(timeOf(event.lastSeen, now), now);
    const c = this.conversation(pair, event.proto, event.src, event.dst, event.dstPort, event.vlan, event.rule, 'deny', firstSeen);
    if (c === null) return;
    c.packets += event.count;
    c.bytes += event.bytes;
    c.lastSeen = Math.max(c.lastSeen, lastSeen);
    c.clientAsset = this.owners.get(ownerKey(pair, event.vlan, normalAddress(event.src))) ?? c.clientAsset;
    c.serverAsset = this.owners.get(ownerKey(pair, event.vlan, normalAddress(event.dst))) ?? c.serverAsset;
    this.touchConversation(c);
  }

  // --- what the routes, learn mode and the prober read

  assets(filter: AssetFilter): Asset[] {
    const q = filter.q?.toLowerCase();
    const out: Live[] = [];
    for (const a of this.assetsById.values()) {
      if (filter.pair !== undefined && a.pair !== filter.pair) continue;
      if (filter.side !== undefined && a.side !== filter.side) continue;
      if (filter.liveness !== undefined && a.liveness.state !== filter.liveness) continue;
      if (q !== undefined && !matches(a, q)) continue;
      out.push(a);
    }
    out.sort((x, y) => y.lastSeen - x.lastSeen || y.id - x.id);
    return out.slice(0, filter.limit ?? 1000).map(copyAsset);
  }

  asset(id: number): Asset | null {
    const a = this.assetsById.get(id);
    return a === undefined ? null : copyAsset(a);
  }

  /** Hosts that carry the address first (most recent first), then routers that forwarded from it. */
  byAddress(address: string): Asset[] {
    const wanted = normalAddress(address);
    if (wanted === '') return [];
    const out = [...this.assetsById.values()].filter((a) => a.addresses.includes(wanted));
    out.sort((x, y) => Number(x.router) - Number(y.router) || y.lastSeen - x.lastSeen);
    return out.map(copyAsset);
  }

  conversations(filter: ConversationFilter): Conversation[] {
    const address = filter.address === undefined ? undefined : normalAddress(filter.address);
    const out: Conversation[] = [];
    for (const c of this.conversationsById.values()) {
      if (filter.pair !== undefined && c.pair !== filter.pair) continue;
      if (filter.verdict !== undefined && c.verdict !== filter.verdict) continue;
      if (filter.since !== undefined && c.lastSeen < filter.since) continue;
      if (filter.asset !== undefined && c.clientAsset !== filter.asset && c.serverAsset !== filter.asset) continue;
      if (address !== undefined && c.client !== address && c.server !== address) continue;
      out.push(c);
    }
    out.sort((x, y) => y.lastSeen - x.lastSeen || y.id - x.id);
    return out.slice(0, filter.limit ?? 1000).map((c) => this.copyConversation(c));
  }

  liveness(id: number, answered: boolean, rttMs: number | null, now: number): AssetEvent | null {
    const a = this.assetsById.get(id);
    if (a === undefined || this.closed) return null;
    const l = a.liveness;
    const was = l.state;
    // A probe alone (checkedAt, rttMs) is not worth a write to the flash; a change of state is.
    l.checkedAt = now;
    if (answered) {
      l.rttMs = rttMs;
      if (was === 'up') return null;
      l.state = 'up';
    } else {
      // The prober says "not answered" only once its group's downAfter probes in a row went unanswered.
      if (was === 'down') return null;
      l.state = 'down';
    }
    l.changedAt = now;
    this.dirtyAssets.add(a.id);
    // Only a change from a known state is news: a first answer, or an asset that never answered, is not.
    if (l.state === 'up' && was === 'down') return { ...this.event('asset.up', SEVERITY.up, a, a.addresses[0] ?? '', now), rttMs: rttMs ?? undefined };
    if (l.state === 'down' && was === 'up') return this.event('asset.down', SEVERITY.down, a, a.addresses[0] ?? '', now);
    return null;
  }

  setAnnounceNew(pair: string, on: boolean): void {
    this.announce.set(pair, on);
    this.dirtyAnnounce.set(pair, on);
    // Rare and worth keeping at once (learning has run): written now, not at the next batch.
    this.flush();
  }

  onEvent(listener: (event: AssetEvent) => void): void {
    this.listeners.push(listener);
  }

  stats(): InventoryStats {
    return {
      assets: this.assetsById.size,
      conversations: this.conversationsById.size,
      dropped: dropReasons.reduce((n, r) => n + this.droppedBy[r], 0),
      dbBytes: this.closed ? 0 : this.db.sizeBytes(),
      lastFlushAt: this.lastFlushAt,
      lastFlushMs: this.lastFlushMs,
      flushErrors: this.flushErrors,
    };
  }

  /** Observations not kept, by reason (for the metrics). */
  droppedByReason(): Readonly<Record<DropReason, number>> {
    return this.droppedBy;
  }

  /** Rows waiting for the next batch (assets + conversations + deletions). */
  pendingRows(): number {
    return this.dirtyAssets.size + this.dirtyConversations.size + this.deletedAssets.size + this.deletedConversations.size + this.dirtyAnnounce.size;
  }

  /** Writes everything waiting now, in as many transactions as it takes (close, setAnnounceNew). */
  flush(): void {
    if (this.closed) return;
    this.expire(Date.now());
    const started = performance.now();
    while (this.pendingRows() > 0) if (!this.writeChunk(started)) return;
  }

  /** The interval's batch: transactions of at most ROWS_PER_TRANSACTION rows, yielding to the loop between them. */
  private flushInBackground(): void {
    if (this.closed || this.writing) return;
    this.expire(Date.now());
    const started = performance.now();
    let loopMs = 0;
    const step = () => {
      this.writing = false;
      if (this.closed || this.pendingRows() === 0) return;
      const t0 = performance.now();
      const ok = this.writeChunk(started);
      loopMs += performance.now() - t0;
      if (ok) this.lastFlushMs = loopMs;
      if (ok && this.pendingRows() > 0) {
        this.writing = true;
        setImmediate(step);
      }
    };
    step();
  }

  /** One transaction of the waiting rows (deletions first); false when it failed (the rows wait again). */
  private writeChunk(started: number): boolean {
    let room = ROWS_PER_TRANSACTION;
    const take = <T>(from: Set<T>): T[] => {
      const out: T[] = [];
      for (const v of from) {
        if (room-- <= 0) break;
        out.push(v);
      }
      for (const v of out) from.delete(v);
      return out;
    };
    const deleteConversations = take(this.deletedConversations);
    const deleteAssets = take(this.deletedAssets);
    const assetIds = take(this.dirtyAssets);
    const conversationIds = take(this.dirtyConversations);
    const announce = [...this.dirtyAnnounce];
    this.dirtyAnnounce.clear();
    const batch: Batch = {
      assets: assetIds.flatMap((id) => {
        const a = this.assetsById.get(id);
        return a === undefined ? [] : [a];
      }),
      conversations: conversationIds.flatMap((id) => {
        const c = this.conversationsById.get(id);
        return c === undefined ? [] : [c];
      }),
      deleteAssets, deleteConversations, announce, nextAssetId: this.nextAssetId, nextConversationId: this.nextConversationId,
    };
    try {
      this.db.write(batch);
    } catch (err) {
      // Back in the queue, retried at the next interval; the tables' bounds bound what waits.
      for (const id of deleteConversations) this.deletedConversations.add(id);
      for (const id of deleteAssets) this.deletedAssets.add(id);
      for (const id of assetIds) if (this.assetsById.has(id)) this.dirtyAssets.add(id);
      for (const id of conversationIds) if (this.conversationsById.has(id)) this.dirtyConversations.add(id);
      for (const [pair, on] of announce) if (!this.dirtyAnnounce.has(pair)) this.dirtyAnnounce.set(pair, on);
      this.flushErrors++;
      if (!this.failing) {
        this.failing = true;
        this.log.error({ err: (err as Error).message, code: (err as { code?: string }).code, diskFull: isStoreFull(err), rows: this.pendingRows() },
          'inventory batch not written (kept in memory and retried); further failures are only counted');
      }
      return false;
    }
    this.transactions++;
    this.lastFlushMs = performance.now() - started;
    this.lastFlushAt = Date.now();
    if (this.failing) {
      this.failing = false;
      this.log.info({ flushErrors: this.flushErrors }, 'inventory batches are written again');
    }
    return true;
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.flush();
    this.closed = true;
    if (this.pendingRows() > 0) this.log.error({ rows: this.pendingRows() }, 'inventory closed with a batch it could not write: those changes are lost');
    this.db.close();
  }

  // --- assets

  private index(a: Live): void {
    this.assetsById.set(a.id, a);
    this.assetsByKey.set(assetKey(a.pair, a.mac), a);
    if (!a.router) for (const address of [...a.addresses].reverse()) this.owners.set(ownerKey(a.pair, a.vlan, address), a.id);
  }

  /** The asset for a frame from `mac` (made when new); null when the MAC is no host's. */
  private sight(pair: string, rawMac: string, rawAddress: string, vlan: number, side: Side, firstSeen: number, lastSeen: number, now: number,
    created: Live[], events: AssetEvent[]): Live | null {
    const mac = rawMac.toLowerCase();
    // Group addresses (and the all-zero one) never send frames of their own.
    if (!MAC.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1 || mac === '00:00:00:00:00:00') {
      this.droppedBy.invalid++;
      return null;
    }
    let a = this.assetsByKey.get(assetKey(pair, mac));
    const seen = Math.min(lastSeen, now);
    if (a === undefined) {
      if (this.assetsById.size >= this.limits.maxAssets) this.evictAsset(this.assetsById.values().next().value!, 'evicted');
      a = {
        id: this.nextAssetId++, pair, mac, vendor: this.oui.vendor(mac), addresses: [], router: false, vlan, side, name: null, identity: {},
        firstSeen: Math.min(firstSeen, seen), lastSeen: seen, packets: 0, bytes: 0, offers: [], uses: [],
        liveness: { state: 'unknown', rttMs: null, checkedAt: null, changedAt: null }, recent: new Map(),
      };
      this.index(a);
      created.push(a);
    }
    a.firstSeen = Math.min(a.firstSeen, firstSeen);
    a.lastSeen = Math.max(a.lastSeen, seen);
    a.vlan = vlan;
    a.side = side;
    const address = normalAddress(rawAddress);
    if (address !== '') this.carry(a, address, seen, events);
    this.touchAsset(a);
    return a;
  }

  /** `a` sent from `address`: kept in its addresses; a move when another host had it. */
  private carry(a: Live, address: string, seen: number, events: AssetEvent[]): void {
    const at = a.addresses.indexOf(address);
    if (at !== 0) {
      if (at > 0) a.addresses.splice(at, 1);
      a.addresses.unshift(address);
      if (a.addresses.length > MAX_ADDRESSES) this.disown(a, a.addresses.pop()!);
    }
    a.recent.set(address, seen);
    if (!a.router) {
      for (const [addr, t] of a.recent) if (seen - t > ROUTER_WINDOW_MS) a.recent.delete(addr);
      if (a.recent.size > ROUTER_ADDRESSES) {
        a.router = true;
        a.recent.clear();
        for (const addr of a.addresses) this.disown(a, addr);
        this.log.info({ pair: a.pair, mac: a.mac }, 'asset carries many source addresses: a router; its addresses are not moves');
      }
    }
    if (a.router) return;
    const key = ownerKey(a.pair, a.vlan, address);
    const owner = this.owners.get(key);
    this.owners.set(key, a.id);
    if (owner === undefined || owner === a.id) return;
    const previous = this.assetsById.get(owner);
    if (previous === undefined) return;
    const i = previous.addresses.indexOf(address);
    if (i >= 0) previous.addresses.splice(i, 1);
    previous.recent.delete(address);
    this.dirtyAssets.add(previous.id);
    const move = `${key}\0${previous.mac}\0${a.mac}`;
    const announcedAt = this.recentMoves.get(move);
    if (announcedAt !== undefined && seen - announcedAt < MOVE_REPEAT_MS) return;
    this.recentMoves.delete(move);
    this.recentMoves.set(move, seen);
    if (this.recentMoves.size > 10_000) this.recentMoves.delete(this.recentMoves.keys().next().value!);
    events.push({
      ...this.event('asset.changed', SEVERITY.moved, a, address, seen),
      detail: `${address} moved from ${previous.mac} to ${a.mac}`,
      previousMac: previous.mac,
    });
  }

  private disown(a: Live, address: string): void {
    const key = ownerKey(a.pair, a.vlan, address);
    if (this.owners.get(key) === a.id) this.owners.delete(key);
  }

  private identify(pair: string, o: IdentityObservation, now: number, created: Live[], events: AssetEvent[]): void {
    const a = this.sight(pair, o.mac, o.address, o.vlan, o.side, o.time, o.time, now, created, events);
    if (a === null) return;
    const fields = IDENTITY_FIELDS[o.source] as readonly string[] | undefined;
    if (fields === undefined) return;
    const section = { ...(a.identity[o.source] ?? {}) } as Record<string, string>;
    const changes: string[] = [];
    for (const field of fields) {
      const raw = o.fields[field];
      if (typeof raw !== 'string') continue;
      const value = raw.trim().slice(0, MAX_IDENTITY_CHARS);
      const old = section[field];
      if (value === '' || old === value) continue;
      if (old !== undefined) changes.push(`${o.source} ${field} changed from "${old}" to "${value}"`);
      section[field] = value;
    }
    if (Object.keys(section).length === 0) return;
    (a.identity as Record<string, object>)[o.source] = section;
    a.name = pickName(a.identity);
    this.dirtyAssets.add(a.id);
    if (changes.length > 0) events.push({ ...this.event('asset.changed', SEVERITY.identity, a, a.addresses[0] ?? '', now), detail: changes.join('; ') });
  }

  private touchAsset(a: Live): void {
    this.assetsById.delete(a.id);
    this.assetsById.set(a.id, a);
    this.dirtyAssets.add(a.id);
  }

  private evictAsset(a: Live, reason: DropReason | null): void {
    this.assetsById.delete(a.id);
    this.assetsByKey.delete(assetKey(a.pair, a.mac));
    for (const address of a.addresses) this.disown(a, address);
    this.dirtyAssets.delete(a.id);
    // Bounded like the table: past that, a restart's expiry removes what was not.
    if (this.deletedAssets.size < this.limits.maxAssets) this.deletedAssets.add(a.id);
    if (reason !== null) this.droppedBy[reason]++;
  }

  // --- conversations

  private converse(pair: string, d: ConversationDelta, now: number, created: Live[], events: AssetEvent[]): void {
    const serverSide: Side = d.clientSide === 'inside' ? 'outside' : 'inside';
    const client = this.sight(pair, d.clientMac, d.client, d.vlan, d.clientSide, d.firstSeen, d.lastSeen, now, created, events);
    const server = d.serverMac === '' ? null : this.sight(pair, d.serverMac, d.server, d.vlan, serverSide, d.firstSeen, d.lastSeen, now, created, events);
    const seen = Math.min(d.lastSeen, now);
    const c = this.conversation(pair, d.proto, d.client, d.server, d.port, d.vlan, d.rule, d.verdict, Math.min(d.firstSeen, seen));
    if (c === null) return;
    c.flows += d.flows;
    c.packets += d.packets;
    c.bytes += d.bytes;
    c.lastSeen = Math.max(c.lastSeen, seen);
    if (d.app !== undefined) {
      c.protocol = d.app.protocol;
      for (const [name, n] of Object.entries(d.app.functions)) c.functions[name] = (c.functions[name] ?? 0) + n;
      for (const unit of d.app.units ?? []) if (!c.units.includes(unit)) c.units.push(unit);
      c.units.sort((a, b) => a - b);
    }
    // A router's MAC carries hosts beyond it: the conversation is theirs, not the router's.
    if (client !== null && !client.router) {
      c.clientAsset = client.id;
      client.packets += d.packets;
      client.bytes += d.bytes;
      addService(client.uses, c.service);
    }
    if (server !== null && !server.router) {
      c.serverAsset = server.id;
      server.packets += d.packets;
      server.bytes += d.bytes;
      addService(server.offers, c.service);
    }
    this.touchConversation(c);
  }

  /** The conversation under this key, made when new (evicting the oldest at the bound). */
  private conversation(pair: string, proto: string, rawClient: string, rawServer: string, port: number, vlan: number, rule: string,
    verdict: Conversation['verdict'], firstSeen: number): Conversation | null {
    const client = normalAddress(rawClient);
    const server = normalAddress(rawServer);
    if (client === '' || server === '') {
      this.droppedBy.invalid++;
      return null;
    }
    const key = conversationKey(pair, client, server, proto, port, vlan, rule, verdict);
    let c = this.conversationsByKey.get(key);
    if (c === undefined) {
      if (this.conversationsById.size >= this.limits.maxConversations) this.evictConversation(this.conversationsById.values().next().value!, 'evicted');
      c = {
        id: this.nextConversationId++, pair, proto, client, clientAsset: null, server, serverAsset: null, port,
        service: serviceName(proto, port), vlan, rule, verdict, flows: 0, packets: 0, bytes: 0, functions: {}, protocol: '', units: [],
        firstSeen, lastSeen: firstSeen,
      };
      this.conversationsById.set(c.id, c);
      this.conversationsByKey.set(key, c);
    }
    c.firstSeen = Math.min(c.firstSeen, firstSeen);
    return c;
  }

  private touchConversation(c: Conversation): void {
    this.conversationsById.delete(c.id);
    this.conversationsById.set(c.id, c);
    this.dirtyConversations.add(c.id);
  }

  private evictConversation(c: Conversation, reason: DropReason | null): void {
    this.conversationsById.delete(c.id);
    this.conversationsByKey.delete(conversationKey(c.pair, c.client, c.server, c.proto, c.port, c.vlan, c.rule, c.verdict));
    this.dirtyConversations.delete(c.id);
    if (this.deletedConversations.size < this.limits.maxConversations) this.deletedConversations.add(c.id);
    if (reason !== null) this.droppedBy[reason]++;
  }

  /** Removes what was not seen within maxAgeMs (not counted as dropped: retention, not a bound). */
  private expire(now: number): void {
    const cutoff = now - this.limits.maxAgeMs;
    for (const c of [...this.conversationsById.values()]) if (c.lastSeen < cutoff) this.evictConversation(c, null);
    for (const a of [...this.assetsById.values()]) if (a.lastSeen < cutoff) this.evictAsset(a, null);
  }

  // --- output

  private copyConversation(c: Conversation): Conversation {
    const known = (id: number | null) => (id !== null && this.assetsById.has(id) ? id : null);
    return { ...c, clientAsset: known(c.clientAsset), serverAsset: known(c.serverAsset), functions: { ...c.functions }, units: [...c.units] };
  }

  private event(type: AssetEvent['type'], severity: Severity, a: Live, address: string, now: number): AssetEvent {
    return {
      type, time: new Date(now).toISOString(), severity, pair: a.pair, asset: a.id, mac: a.mac, address,
      name: a.name ?? '', vendor: a.vendor ?? '', vlan: a.vlan, side: a.side,
    };
  }

  private emit(events: AssetEvent[]): void {
    for (const event of events) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (err) {
          this.log.error({ type: event.type, err: (err as Error).message }, 'inventory event listener failed');
        }
      }
    }
  }
}

function copyAsset(a: Live): Asset {
  return {
    id: a.id, pair: a.pair, mac: a.mac, vendor: a.vendor, addresses: [...a.addresses], router: a.router, vlan: a.vlan, side: a.side,
    name: a.name, identity: JSON.parse(JSON.stringify(a.identity)) as AssetIdentity, firstSeen: a.firstSeen, lastSeen: a.lastSeen,
    packets: a.packets, bytes: a.bytes, offers: [...a.offers], uses: [...a.uses], liveness: { ...a.liveness },
  };
}

function matches(a: Live, q: string): boolean {
  return a.mac.includes(q) || a.addresses.some((x) => x.includes(q)) || (a.name?.toLowerCase().includes(q) ?? false) ||
    (a.vendor?.toLowerCase().includes(q) ?? false);
}

function addService(list: string[], service: string): void {
  if (list.includes(service) || list.length >= MAX_SERVICES) return;
  list.push(service);
  list.sort();
}

/** IPv4 or IPv6 text as one spelling (lowercase); "" for none, the unspecified address or garbage. */
function normalAddress(text: string): string {
  const a = text.toLowerCase();
  if (a === '' || a === '0.0.0.0' || a === '::' || isIP(a) === 0) return '';
  return a;
}

function timeOf(iso: string, fallback: number): number {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? fallback : t;
}

const assetKey = (pair: string, mac: string) => `${pair}\0${mac}`;
const ownerKey = (pair: string, vlan: number, address: string) => `${pair}\0${vlan}\0${address}`;
const conversationKey = (pair: string, client: string, server: string, proto: string, port: number, vlan: number, rule: string, verdict: string) =>
  `${pair}\0${client}\0${server}\0${proto}\0${port}\0${vlan}\0${rule}\0${verdict}`;
