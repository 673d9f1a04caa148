// GET /api/v1/status and /status/history (registered with prefix /api/v1/status): appliance and
// port-pair status, rates of one pair. A plugin: reads the hub and the policy service, keeps no state.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError } from '../http-error';
import * as s from '../schemas';

export async function statusRoutes(app: FastifyInstance): Promise<void> {
  const viewer = { role: 'viewer' as const };

  app.get('', {
    schema: { summary: 'Appliance and port-pair status', response: s.responses({ 200: s.statusResponse }) },
    config: viewer,
  }, async () => {
    const active = app.policies.active();
    return {
      version: app.runtime.version,
      uptimeMs: Date.now() - app.runtime.startedAt,
      policy: active && { version: active.version, hash: active.hash, mode: active.mode, appliedAt: active.appliedAt,
        author: active.author, comment: active.comment },
      pairs: app.hub.pairs().map((p) => ({ ...p, policyVersion: app.policies.versionOfHash(p.policyHash) })),
    };
  });

  app.get('/history', {
    schema: { summary: 'Rates of one port pair, one point per second', querystring: s.historyQuery,
      response: s.responses({ 200: s.historyResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: s.HistoryQuery }>) => {
    const { pair, seconds } = req.query;
    if (!app.hub.pairs().some((p) => p.pair === pair)) throw new HttpError(404, `unknown port pair '${pair}'`);
    return { pair, points: app.hub.history(pair, seconds) };
  });
}
