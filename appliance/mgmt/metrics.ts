// Management's own Prometheus metrics (logins, API requests, event store errors, sessions, the asset
// inventory), in a
// registry of their own so they never collide with the dataplane counters the hub exports.
// GET /metrics (routes/metrics.ts) serves both.

import { Counter, Gauge, Registry } from 'prom-client';
import { dropReasons, type DropReason } from './inventory/inventory';
import type { Inventory } from './inventory/types';
import type { LivenessCounters } from './inventory/liveness';

export class MgmtMetrics {
  readonly registry = new Registry();
  readonly logins = new Counter({
    name: 'gatekeeper_mgmt_logins_total', help: 'Login attempts by result (ok, failed, locked, busy: refused while the password hashing queue was full)',
    labelNames: ['result'] as const, registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'gatekeeper_mgmt_http_requests_total', help: 'API requests by route and status code',
    labelNames: ['method', 'route', 'status'] as const, registers: [this.registry],
  });

  readonly eventStoreErrors = new Counter({
    name: 'gatekeeper_mgmt_event_store_errors_total', help: 'Events that could not be written to the event log',
    registers: [this.registry],
  });

  /** The inventory's sizes and batch writes, read from it at scrape time. */
  watchLiveness(prober: { counters(): LivenessCounters }): void {
    const registers = [this.registry];
    new Counter({
      name: 'gatekeeper_mgmt_liveness_probes_total', help: 'Liveness probes by outcome (sent, answered, timeout, error)',
      labelNames: ['result'] as const, registers,
      collect() {
        const c = prober.counters();
        this.reset();
        this.inc({ result: 'sent' }, c.sent);
        this.inc({ result: 'answered' }, c.answered);
        this.inc({ result: 'timeout' }, c.timeouts);
        this.inc({ result: 'error' }, c.errors);
      },
    });
    new Gauge({ name: 'gatekeeper_mgmt_liveness_targets', help: 'Assets being probed', registers, collect() { this.set(prober.counters().targets); } });
    new Gauge({
      name: 'gatekeeper_mgmt_liveness_disabled', help: '1 while probing is disabled because the raw socket was refused (CAP_NET_RAW)', registers,
      collect() { this.set(prober.counters().disabled); },
    });
  }

  watchInventory(inventory: Inventory & { droppedByReason?(): Readonly<Record<DropReason, number>> }): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number | null) =>
      new Gauge({ name, help, registers, collect() {
        const value = read();
        if (value !== null) this.set(value);
      } });
    gauge('gatekeeper_inventory_assets', 'Assets in the inventory', () => inventory.stats().assets);
    gauge('gatekeeper_inventory_conversations', 'Conversations in the inventory', () => inventory.stats().conversations);
    gauge('gatekeeper_inventory_db_bytes', 'Size of the inventory database and its WAL', () => inventory.stats().dbBytes);
    gauge('gatekeeper_inventory_last_flush_seconds', 'Duration of the latest batched write of the inventory',
      () => { const ms = inventory.stats().lastFlushMs; return ms === null ? null : ms / 1000; });
    gauge('gatekeeper_inventory_last_flush_timestamp_seconds', 'When the latest batched write of the inventory succeeded',
      () => { const at = inventory.stats().lastFlushAt; return at === null ? null : at / 1000; });
    new Counter({
      name: 'gatekeeper_inventory_flush_errors_total', help: 'Batched writes of the inventory that failed (kept in memory and retried)', registers,
      collect() {
        this.reset();
        this.inc(inventory.stats().flushErrors);
      },
    });
    new Counter({
      name: 'gatekeeper_inventory_dropped_total',
      help: 'Observations not kept: dataplane (its tables were full), evicted (the oldest row, at the bounds), invalid, over_limit (too many in one message)',
      labelNames: ['reason'] as const, registers,
      collect() {
        this.reset();
        const by = inventory.droppedByReason?.();
        if (by === undefined) this.inc({ reason: 'dataplane' }, inventory.stats().dropped);
        else for (const reason of dropReasons) this.inc({ reason }, by[reason]);
      },
    });
  }

  constructor(sessionCount: () => number) {
    new Gauge({
      name: 'gatekeeper_mgmt_sessions', help: 'Live login sessions', registers: [this.registry],
      collect() {
        this.set(sessionCount());
      },
    });
  }
}
