// The asset inventory's file: one SQLite database (better-sqlite3) in management's state directory.
// WAL journal with synchronous=NORMAL (a commit appends to the WAL without an fsync; a power cut
// loses at most the last batches, never the file), a schema version in PRAGMA user_version,
// prepared statements, and one transaction per batch (write()): every row the batch holds, or none.
// A file this build cannot read (a newer schema after a downgrade, or not a database) is moved
// aside, named in the log, and a fresh one started: the inventory is rebuilt from traffic, and
// management must start; so must it on a disk too full to create the file: the inventory then
// lives in memory for this run (logged). Rows only: the rules (what an asset is, bounds, batching) are inventory.ts's.

import { existsSync, renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Asset, Conversation } from './types';
import { makePrivateDir } from '../state/atomic';

export const SCHEMA_VERSION = 1;


export interface StoredInventory {
  assets: Asset[];
  conversations: Conversation[];
  announce: Map<string, boolean>;
  nextAssetId: number;
  nextConversationId: number;
}

/** What one batch writes: rows to insert or replace, ids to delete, announce flags, id counters. */
export interface Batch {
  assets: Asset[];
  conversations: Conversation[];
  deleteAssets: number[];
  deleteConversations: number[];
  announce: [string, boolean][];
  nextAssetId: number;
  nextConversationId: number;
}

export interface DbLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE pairs (pair TEXT PRIMARY KEY, announce_new INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE assets (
  id INTEGER PRIMARY KEY, pair TEXT NOT NULL, mac TEXT NOT NULL, vendor TEXT, addresses TEXT NOT NULL, router INTEGER NOT NULL,
  vlan INTEGER NOT NULL, side TEXT NOT NULL, name TEXT, identity TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  packets INTEGER NOT NULL, bytes INTEGER NOT NULL, offers TEXT NOT NULL, uses TEXT NOT NULL,
  live_state TEXT NOT NULL, live_rtt REAL, live_checked INTEGER, live_changed INTEGER,
  UNIQUE (pair, mac)
);
CREATE TABLE conversations (
  id INTEGER PRIMARY KEY, pair TEXT NOT NULL, proto TEXT NOT NULL, client TEXT NOT NULL, client_asset INTEGER, server TEXT NOT NULL,
  server_asset INTEGER, port INTEGER NOT NULL, service TEXT NOT NULL, vlan INTEGER NOT NULL, rule TEXT NOT NULL, verdict TEXT NOT NULL,
  flows INTEGER NOT NULL, packets INTEGER NOT NULL, bytes INTEGER NOT NULL, functions TEXT NOT NULL, protocol TEXT NOT NULL, units TEXT NOT NULL,
  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
  UNIQUE (pair, client, server, proto, port, vlan, rule, verdict)
);
`;

interface AssetColumns {
  id: number; pair: string; mac: string; vendor: string | null; addresses: string; router: number; vlan: number; side: string;
  name: string | null; identity: string; first_seen: number; last_seen: number; packets: number; bytes: number; offers: string;
  uses: string; live_state: string; live_rtt: number | null; live_checked: number | null; live_changed: number | null;
}

interface ConversationColumns {
  id: number; pair: string; proto: string; client: string; client_asset: number | null; server: string; server_asset: number | null;
  port: number; service: string; vlan: number; rule: string; verdict: string; flows: number; packets: number; bytes: number;
  functions: string; protocol: string; units: string; first_seen: number; last_seen: number;
}

/** SQLite's "database or disk is full", and the system's. */
export function isStoreFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT';
}

export class InventoryDb {
  private readonly db: Database.Database;
  private readonly statements: ReturnType<typeof prepare>;

  private constructor(readonly file: string, db: Database.Database) {
    this.db = db;
    this.statements = prepare(db);
  }

  /** Opens (or creates) the file; one this build cannot use is moved aside and replaced (logged). */
  static open(file: string, log: DbLog): InventoryDb {
    if (file !== ':memory:') makePrivateDir(dirname(file));
    try {
      return new InventoryDb(file, openFile(file));
    } catch (err) {
      if (isStoreFull(err)) {
        log.error({ file, err: (err as Error).message }, 'inventory database cannot be opened on a full disk: kept in memory until management restarts');
        return new InventoryDb(':memory:', openFile(':memory:'));
      }
      const aside = `${file}.unreadable-${Date.now()}`;
      for (const suffix of ['', '-wal', '-shm']) if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
      log.error({ file, movedTo: aside, err: (err as Error).message }, 'inventory database unreadable: moved aside, starting an empty inventory');
      return new InventoryDb(file, openFile(file));
    }
  }

  load(): StoredInventory {
    const s = this.statements;
    const assets = (s.allAssets.all() as AssetColumns[]).map(assetOf);
    const conversations = (s.allConversations.all() as ConversationColumns[]).map(conversationOf);
    const announce = new Map((s.allPairs.all() as { pair: string; announce_new: number }[]).map((r) => [r.pair, r.announce_new === 1]));
    const meta = new Map((s.allMeta.all() as { key: string; value: number }[]).map((r) => [r.key, r.value]));
    const maxId = (rows: { id: number }[]) => rows.reduce((m, r) => Math.max(m, r.id), 0);
    return {
      assets, conversations, announce,
      nextAssetId: Math.max(meta.get('next_asset_id') ?? 1, maxId(assets) + 1),
      nextConversationId: Math.max(meta.get('next_conversation_id') ?? 1, maxId(conversations) + 1),
    };
  }

  /** Writes the batch in one transaction; throws (and writes nothing) when it cannot. */
  write(batch: Batch): void {
    const s = this.statements;
    this.db.transaction(() => {
      // Deletes first: a (pair, MAC) dropped and seen again gets a new id in the same batch.
      for (const id of batch.deleteConversations) s.deleteConversation.run(id);
      for (const id of batch.deleteAssets) s.deleteAsset.run(id);
      for (const a of batch.assets) s.putAsset.run(columnsOfAsset(a));
      for (const c of batch.conversations) s.putConversation.run(columnsOfConversation(c));
      for (const [pair, on] of batch.announce) s.putPair.run(pair, on ? 1 : 0);
      s.putMeta.run('next_asset_id', batch.nextAssetId);
      s.putMeta.run('next_conversation_id', batch.nextConversationId);
    })();
  }

  /** The database file and its WAL, in bytes. */
  sizeBytes(): number {
    if (this.file === ':memory:') return 0;
    let total = 0;
    for (const suffix of ['', '-wal']) {
      try {
        total += statSync(this.file + suffix).size;
      } catch {
        // no WAL right after a checkpoint on close
      }
    }
    return total;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function openFile(file: string): Database.Database {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // Give the WAL back to the file system after a checkpoint instead of keeping its high-water mark.
    db.pragma('journal_size_limit = 4194304');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version === 0) {
      db.transaction(() => {
        db.exec(SCHEMA);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    } else if (version !== SCHEMA_VERSION) {
      throw new Error(`schema version ${version}, this build reads version ${SCHEMA_VERSION}`);
    }
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function prepare(db: Database.Database) {
  return {
    allAssets: db.prepare('SELECT * FROM assets ORDER BY last_seen'),
    allConversations: db.prepare('SELECT * FROM conversations ORDER BY last_seen'),
    allPairs: db.prepare('SELECT pair, announce_new FROM pairs'),
    allMeta: db.prepare('SELECT key, value FROM meta'),
    putAsset: db.prepare(`INSERT OR REPLACE INTO assets VALUES (@id, @pair, @mac, @vendor, @addresses, @router, @vlan, @side, @name,
      @identity, @first_seen, @last_seen, @packets, @bytes, @offers, @uses, @live_state, @live_rtt, @live_checked, @live_changed)`),
    putConversation: db.prepare(`INSERT OR REPLACE INTO conversations VALUES (@id, @pair, @proto, @client, @client_asset, @server,
      @server_asset, @port, @service, @vlan, @rule, @verdict, @flows, @packets, @bytes, @functions, @protocol, @units, @first_seen, @last_seen)`),
    deleteAsset: db.prepare('DELETE FROM assets WHERE id = ?'),
    deleteConversation: db.prepare('DELETE FROM conversations WHERE id = ?'),
    putPair: db.prepare('INSERT OR REPLACE INTO pairs VALUES (?, ?)'),
    putMeta: db.prepare('INSERT OR REPLACE INTO meta VALUES (?, ?)'),
  };
}

function columnsOfAsset(a: Asset): AssetColumns {
  return {
    id: a.id, pair: a.pair, mac: a.mac, vendor: a.vendor, addresses: JSON.stringify(a.addresses), router: a.router ? 1 : 0, vlan: a.vlan,
    side: a.side, name: a.name, identity: JSON.stringify(a.identity), first_seen: a.firstSeen, last_seen: a.lastSeen, packets: a.packets,
    bytes: a.bytes, offers: JSON.stringify(a.offers), uses: JSON.stringify(a.uses), live_state: a.liveness.state, live_rtt: a.liveness.rttMs,
    live_checked: a.liveness.checkedAt, live_changed: a.liveness.changedAt,
  };
}

function assetOf(r: AssetColumns): Asset {
  return {
    id: r.id, pair: r.pair, mac: r.mac, vendor: r.vendor, addresses: JSON.parse(r.addresses) as string[], router: r.router === 1,
    vlan: r.vlan, side: r.side as Asset['side'], name: r.name, identity: JSON.parse(r.identity) as Asset['identity'],
    firstSeen: r.first_seen, lastSeen: r.last_seen, packets: r.packets, bytes: r.bytes,
    offers: JSON.parse(r.offers) as string[], uses: JSON.parse(r.uses) as string[],
    liveness: { state: r.live_state as Asset['liveness']['state'], rttMs: r.live_rtt, checkedAt: r.live_checked, changedAt: r.live_changed },
  };
}

function columnsOfConversation(c: Conversation): ConversationColumns {
  return {
    id: c.id, pair: c.pair, proto: c.proto, client: c.client, client_asset: c.clientAsset, server: c.server, server_asset: c.serverAsset,
    port: c.port, service: c.service, vlan: c.vlan, rule: c.rule, verdict: c.verdict, flows: c.flows, packets: c.packets, bytes: c.bytes,
    functions: JSON.stringify(c.functions), protocol: c.protocol, units: JSON.stringify(c.units), first_seen: c.firstSeen, last_seen: c.lastSeen,
  };
}

function conversationOf(r: ConversationColumns): Conversation {
  return {
    id: r.id, pair: r.pair, proto: r.proto, client: r.client, clientAsset: r.client_asset, server: r.server, serverAsset: r.server_asset,
    port: r.port, service: r.service, vlan: r.vlan, rule: r.rule, verdict: r.verdict as Conversation['verdict'], flows: r.flows,
    packets: r.packets, bytes: r.bytes, functions: JSON.parse(r.functions) as Record<string, number>, protocol: r.protocol, units: JSON.parse(r.units) as number[],
    firstSeen: r.first_seen, lastSeen: r.last_seen,
  };
}
