// GET /metrics: the dataplanes' counters (from the hub) followed by management's own.

import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import * as s from '../schemas';
import type { MgmtContext } from './context';

/** Management's own metrics, in a registry of their own so they never collide with the hub's. */
export class MgmtMetrics {
  readonly registry = new Registry();
  readonly logins = new Counter({
    name: 'gatekeeper_mgmt_logins_total', help: 'Login attempts by result (ok, failed, locked)',
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

export function metricsRoutes(app: FastifyInstance, ctx: MgmtContext): void {
  app.get('/metrics', {
    schema: { summary: 'Prometheus metrics (session or Authorization: Bearer <metrics token>)',
      produces: ['text/plain'], response: s.responses({ 200: { type: 'string' } }) },
    config: { role: 'viewer', metricsToken: true },
  }, async (_req, reply) => {
    const text = `${await ctx.hub.metrics()}\n${await ctx.metrics.registry.metrics()}`;
    return reply.type(ctx.metrics.registry.contentType).send(text);
  });
}
