// The event list (dataplane and management events) and the audit trail.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { eventTypes, type Severity } from '../../ipc/events';
import * as s from '../schemas';
import { HttpError, type MgmtContext } from './context';

interface EventsQuery {
  type?: string;
  minSeverity?: Severity;
  pair?: string;
  limit: number;
  before?: string;
}

export function eventRoutes(app: FastifyInstance, ctx: MgmtContext): void {
  const known = new Set<string>(eventTypes);

  app.get('/api/v1/events', {
    schema: { summary: 'Recent events, newest first', querystring: s.eventsQuery, response: s.responses({ 200: s.eventsResponse }) },
    config: { role: 'viewer' },
  }, async (req: FastifyRequest<{ Querystring: EventsQuery }>) => {
    const { type, ...rest } = req.query;
    const types = type?.split(',').map((t) => t.trim()).filter((t) => t !== '');
    const unknown = types?.find((t) => !known.has(t));
    if (unknown !== undefined) throw new HttpError(400, `type: unknown event type '${unknown}'; known: ${eventTypes.join(', ')}`);
    return { events: ctx.eventLog.query({ ...rest, types }) };
  });

  app.get('/api/v1/audit', {
    schema: { summary: 'Audit trail, newest first', querystring: s.auditQuery, response: s.responses({ 200: s.auditResponse }) },
    config: { role: 'viewer' },
  }, async (req: FastifyRequest<{ Querystring: { limit: number } }>) => ({ entries: ctx.store.recentAudit(req.query.limit) }));
}
