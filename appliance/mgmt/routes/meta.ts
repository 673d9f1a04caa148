// GET /api/v1/openapi.json (registered with prefix /api/v1): this API described by its own route
// schemas (@fastify/swagger, registered on the root instance). A plugin; keeps no state.

import type { FastifyInstance } from 'fastify';
import * as s from '../schemas';

export async function metaRoutes(app: FastifyInstance): Promise<void> {
  app.get('/openapi.json', {
    schema: { summary: 'This API as OpenAPI 3', response: s.responses({ 200: { type: 'object', additionalProperties: true } }) },
    config: { role: 'viewer' },
  }, async () => app.swagger());
}
