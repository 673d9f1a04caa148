// GET /api/v1/meta and /api/v1/openapi.json (registered with prefix /api/v1): the vocabulary the
// web UI builds its forms from (roles, event types, severities, the password minimum; public, as
// the first-admin form needs it before anyone can log in), and this API described by its own route
// schemas (@fastify/swagger, registered on the root instance). A plugin; keeps no state.

import type { FastifyInstance } from 'fastify';
import { eventTypes, severityNames } from '../../ipc/events';
import { PASSWORD_MIN_LENGTH } from '../auth/passwords';
import { roleDescriptions, roles } from '../auth/roles';
import * as s from '../schemas';

export async function metaRoutes(app: FastifyInstance): Promise<void> {
  const meta: s.MetaResponse = {
    roles: roles.map((name) => ({ name, description: roleDescriptions[name] })),
    eventTypes: [...eventTypes],
    severities: [...severityNames],
    passwordMinLength: PASSWORD_MIN_LENGTH,
  };

  app.get('/meta', {
    schema: { summary: 'Roles, event types, severities and the password minimum, as the UI offers them', response: s.responses({ 200: s.metaResponse }) },
  }, async () => meta);

  app.get('/openapi.json', {
    schema: { summary: 'This API as OpenAPI 3', response: s.responses({ 200: { type: 'object', additionalProperties: true } }) },
    config: { role: 'viewer' },
  }, async () => app.swagger());
}
