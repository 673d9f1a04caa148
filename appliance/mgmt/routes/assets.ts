// GET /api/v1/assets, /assets/:id, /conversations and /inventory/stats (registered with prefix
// /api/v1): the asset inventory as the dataplanes' observations built it. A plugin: reads the
// inventory decorator, keeps no state, writes nothing (learn mode and liveness have routes of their own).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError } from '../http-error';
import * as s from '../schemas';

/** Conversations listed with one asset. */
const ASSET_CONVERSATIONS = 1000;

export async function assetRoutes(app: FastifyInstance): Promise<void> {
  const viewer = { role: 'viewer' as const };

  app.get('/assets', {
    schema: { summary: 'Assets of the inventory, most recently seen first', querystring: s.assetsQuery,
      response: s.responses({ 200: s.assetsResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: s.AssetsQuery }>) => ({ assets: app.inventory.assets(req.query) }));

  app.get('/assets/:id', {
    schema: { summary: 'One asset with its conversations (most recent first)', params: s.assetParams,
      response: s.responses({ 200: s.assetResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Params: s.AssetParams }>) => {
    const asset = app.inventory.asset(req.params.id);
    if (asset === null) throw new HttpError(404, `no asset ${req.params.id} in the inventory`);
    return { asset, conversations: app.inventory.conversations({ asset: asset.id, limit: ASSET_CONVERSATIONS }) };
  });

  app.get('/conversations', {
    schema: { summary: 'Conversations of the inventory (who talked to whom over which service), most recent first',
      querystring: s.conversationsQuery, response: s.responses({ 200: s.conversationsResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Querystring: s.ConversationsQuery }>) => ({ conversations: app.inventory.conversations(req.query) }));

  app.get('/inventory/stats', {
    schema: { summary: 'Size of the inventory and its latest batched write', response: s.responses({ 200: s.inventoryStatsResponse }) },
    config: viewer,
  }, async () => app.inventory.stats());
}
