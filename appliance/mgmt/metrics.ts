// Management's own Prometheus metrics (logins, API requests, event store errors, sessions), in a
// registry of their own so they never collide with the dataplane counters the hub exports.
// GET /metrics (routes/metrics.ts) serves both.

import { Counter, Gauge, Registry } from 'prom-client';

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

  constructor(sessionCount: () => number) {
    new Gauge({
      name: 'gatekeeper_mgmt_sessions', help: 'Live login sessions', registers: [this.registry],
      collect() {
        this.set(sessionCount());
      },
    });
  }
}
