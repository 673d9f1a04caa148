// GET /metrics (registered with prefix /metrics): the dataplanes' counters (from the hub) followed
// by management's own. A plugin: reads the hub and metrics decorators, keeps no state.

import type { FastifyInstance } from 'fastify';
import * as s from '../schemas';

export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  app.get('', {
    schema: { summary: 'Prometheus metrics (session or Authorization: Bearer <metrics token>)',
      produces: ['text/plain'], response: s.responses({ 200: { type: 'string' } }) },
    config: { role: 'viewer', metricsToken: true },
  }, async (_req, reply) => {
    const text = `${await app.hub.metrics()}\n${await app.metrics.registry.metrics()}`;
    return reply.type(app.metrics.registry.contentType).send(text);
  });
}
