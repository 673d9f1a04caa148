// GET /api/v1/events and /api/v1/audit (registered with prefix /api/v1): the event list
// (dataplane and management events) and the audit trail. A plugin: reads the event log and the
// state, keeps no state.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { eventTypes } from '../../ipc/events';
import { HttpError } from '../http-error';
import * as s from '../schemas';

export async function eventRoutes(app: FastifyInstance): Promise<void> {
  const known = new Set<string>(eventTypes);

  app.get('/events', {
    schema: { summary: 'Recent events, newest first', querystring: s.eventsQuery, response: s.responses({ 200: s.eventsResponse }) },
    config: { role: 'viewer' },
  }, async (req: FastifyRequest<{ Querystring: s.EventsQuery }>) => {
    const { type, ...rest } = req.query;
    const types = type?.split(',').map((t) => t.trim()).filter((t) => t !== '');
    const unknown = types?.find((t) => !known.has(t));
    if (unknown !== undefined) throw new HttpError(400, `type: unknown event type '${unknown}'; known: ${eventTypes.join(', ')}`);
    return { events: app.eventLog.query({ ...rest, types }) };
  });

  app.get('/audit', {
    schema: { summary: 'Audit trail, newest first', querystring: s.auditQuery, response: s.responses({ 200: s.auditResponse }) },
    config: { role: 'viewer' },
  }, async (req: FastifyRequest<{ Querystring: s.AuditQuery }>) => ({ entries: app.store.recentAudit(req.query.limit) }));
}
