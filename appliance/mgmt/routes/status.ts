// Dashboard data: status per port pair, rate history, top denied traffic, live flows.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FlowFilter } from '../../ipc/messages';
import * as s from '../schemas';
import { HttpError, type MgmtContext } from './context';

export function statusRoutes(app: FastifyInstance, ctx: MgmtContext): void {
  const viewer = { role: 'viewer' as const };

  app.get('/api/v1/status', {
    schema: { summary: 'Appliance and port-pair status', response: s.responses({ 200: s.statusResponse }) },
    config: viewer,
  }, async () => {
    const active = ctx.store.activePolicy();
    return {
      version: ctx.version,
      uptimeMs: Date.now() - ctx.startedAt,
      policy: active && { version: active.version, hash: active.hash, mode: active.mode, appliedAt: active.appliedAt,
        author: active.author, comment: active.comment },
      pairs: ctx.hub.pairs().map((p) => ({ ...p, policyVersion: ctx.store.versionOfHash(p.policyHash) })),
    };
  });

  app.get('/api/v1/status/history', {
    schema: { summary: 'Rates of one port pair, one point per second', querystring: s.historyQuery,
      response: s.responses({ 200: s.historyResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: { pair: string; seconds: number } }>) => {
    const { pair, seconds } = req.query;
    if (!ctx.hub.pairs().some((p) => p.pair === pair)) throw new HttpError(404, `unknown port pair '${pair}'`);
    return { pair, points: ctx.hub.history(pair, seconds) };
  });

  app.get('/api/v1/denied/top', {
    schema: { summary: 'Most denied traffic of the last hour', querystring: s.deniedTopQuery,
      response: s.responses({ 200: s.deniedTopResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: { limit: number } }>) => ({ entries: ctx.hub.topDenied(req.query.limit) }));

  app.get('/api/v1/flows', {
    schema: { summary: 'Live flow table of every (or one) port pair', querystring: s.flowsQuery,
      response: s.responses({ 200: s.flowsResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: FlowFilter & { pair?: string; limit: number } }>) => {
    const { limit, ...filter } = req.query;
    try {
      return await ctx.hub.flows(filter, limit);
    } catch (err) {
      throw new HttpError(502, `could not get the flows from the dataplanes: ${(err as Error).message}`);
    }
  });
}
