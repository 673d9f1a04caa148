// The contract of management's asset inventory: the records the API and the UI show (assets,
// conversations), the Inventory interface the hub feeds and the routes, learn mode and liveness
// read, and what they may ask of it. Implemented by inventory.ts over SQLite (db.ts); fakes in tests.
// No logic here.

import type { AssetEvent, DenySummaryEvent } from '../../ipc/events';
import type { ObservationsMessage } from '../../ipc/messages';

export type Side = 'inside' | 'outside';

/** What a host revealed about itself; each field only when seen. */
export interface AssetIdentity {
  lldp?: { systemName?: string; systemDescription?: string; chassisId?: string; portId?: string; portDescription?: string; managementAddress?: string };
  dhcp?: { hostName?: string; vendorClass?: string };
  modbus?: { vendorName?: string; productCode?: string; revision?: string; vendorUrl?: string; productName?: string; modelName?: string; unit?: string };
}

export interface AssetLiveness {
  /** "off": not probed (its group's probing is off). */
  state: 'up' | 'down' | 'unknown' | 'off';
  /** Round-trip time of the latest answer. */
  rttMs: number | null;
  /** Epoch ms of the latest probe, and of the latest change of state. */
  checkedAt: number | null;
  changedAt: number | null;
}

/** One host: a MAC seen behind one port of one pair. */
export interface Asset {
  id: number;
  pair: string;
  mac: string;
  /** Organization the IEEE registry (ieee-data) gives for the MAC's OUI/MA-M/MA-S; null when unknown or locally administered. */
  vendor: string | null;
  /** Addresses the MAC carried, most recent first (bounded). */
  addresses: string[];
  /** More distinct source addresses than a host has: a router or gateway; its addresses are not moves. */
  router: boolean;
  vlan: number;
  side: Side;
  /** Best name: LLDP system name, DHCP host name, Modbus product name, else null. */
  name: string | null;
  identity: AssetIdentity;
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
  /** Both directions of its conversations. */
  packets: number;
  bytes: number;
  /** Services it answers ("modbus", "tcp/8086") and uses as a client. */
  offers: string[];
  uses: string[];
  liveness: AssetLiveness;
}

/** Who talked to whom, summed over the retention period: one per (pair, client, server, proto, port, vlan, rule, verdict). */
export interface Conversation {
  id: number;
  pair: string;
  proto: string;
  client: string;
  /** Inventory ids of the two ends, null when not (yet) an asset. */
  clientAsset: number | null;
  server: string;
  serverAsset: number | null;
  /** TCP/UDP/SCTP: the server's port; ICMP: the request type. */
  port: number;
  /** Name of the built-in service (policy/services.ts) that covers proto/port, e.g. "modbus", else "tcp/8086". */
  service: string;
  vlan: number;
  rule: string;
  verdict: 'allow' | 'monitor' | 'deny';
  flows: number;
  packets: number;
  bytes: number;
  /** Requests per function name, for inspected or observed protocols ("modbus"); {} otherwise. */
  functions: Record<string, number>;
  /** Application protocol whose functions these are, "" when none. */
  protocol: string;
  /** Unit identifiers the requests named (Modbus), ascending; [] otherwise. */
  units: number[];
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
}

export interface AssetFilter {
  pair?: string;
  /** Substring of MAC, an address, name or vendor (case-insensitive). */
  q?: string;
  side?: Side;
  liveness?: AssetLiveness['state'];
  limit?: number;
}

export interface ConversationFilter {
  pair?: string;
  /** Either end is this asset. */
  asset?: number;
  /** Either end is this address. */
  address?: string;
  verdict?: Conversation['verdict'];
  /** Epoch ms: last seen at or after. */
  since?: number;
  limit?: number;
}

export interface InventoryStats {
  assets: number;
  conversations: number;
  /** Observations refused: tables full in the dataplane, or rows over the inventory's bounds. */
  dropped: number;
  /** Database file size in bytes, and the last batched write (epoch ms, duration). */
  dbBytes: number;
  lastFlushAt: number | null;
  lastFlushMs: number | null;
  flushErrors: number;
}

export interface Inventory {
  /** Take one dataplane's observations (buffered; written in batches). */
  observe(pair: string, message: ObservationsMessage, now: number): void;
  /** Denied conversations, from deny.summary events. */
  denied(pair: string, event: DenySummaryEvent, now: number): void;
  assets(filter: AssetFilter): Asset[];
  asset(id: number): Asset | null;
  /** Assets that carry this address (most recent first). */
  byAddress(address: string): Asset[];
  conversations(filter: ConversationFilter): Conversation[];
  /**
   * Record a liveness probe's outcome: answered (up), or not answered, which the prober says only once
   * its group's downAfter probes in a row went unanswered (down). Returns the event to raise when the
   * state changed from a known one, else null.
   */
  liveness(id: number, answered: boolean, rttMs: number | null, now: number): AssetEvent | null;
  /** Raise asset.new for MACs first seen on these pairs from now on (set once learning has run). */
  setAnnounceNew(pair: string, on: boolean): void;
  /** Events the inventory raised (asset.new, asset.changed). */
  onEvent(listener: (event: AssetEvent) => void): void;
  stats(): InventoryStats;
  /** Write what is buffered now. */
  flush(): void;
  close(): void;
}
