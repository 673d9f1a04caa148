// GET /api/v1/denied/top, /api/v1/violations/top and /api/v1/flows (registered with prefix /api/v1):
// the most denied traffic, the most refused application-layer (Modbus) requests, and the live flow tables. A plugin: reads the hub, keeps no state.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError } from '../http-error';
import * as s from '../schemas';

export async function trafficRoutes(app: FastifyInstance): Promise<void> {
  const viewer = { role: 'viewer' as const };

  app.get('/denied/top', {
    schema: { summary: 'Most denied traffic of the last hour', querystring: s.deniedTopQuery,
      response: s.responses({ 200: s.deniedTopResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: s.DeniedTopQuery }>) => ({ entries: app.hub.topDenied(req.query.limit) }));

  app.get('/violations/top', {
    schema: { summary: 'Most refused application-layer (Modbus) requests of the last hour', querystring: s.violationsTopQuery,
      response: s.responses({ 200: s.violationsTopResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: s.ViolationsTopQuery }>) => ({ entries: app.hub.topViolations(req.query.limit) }));

  app.get('/flows', {
    schema: { summary: 'Live flow table of every (or one) port pair', querystring: s.flowsQuery,
      response: s.responses({ 200: s.flowsResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: s.FlowsQuery }>) => {
    const { limit, ...filter } = req.query;
    try {
      return await app.hub.flows(filter, limit);
    } catch (err) {
      throw new HttpError(502, `could not get the flows from the dataplanes: ${(err as Error).message}`);
    }
  });
}
