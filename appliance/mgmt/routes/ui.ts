// The web UI's static files: appliance/mgmt/ui under /ui/, uPlot from node_modules under
// /ui/vendor/uplot/, cytoscape's ES module build (the map; loaded only when the map opens) as
// /ui/vendor/cytoscape/cytoscape.esm.min.mjs, index.html at /. Public (the access check covers only /api and /metrics).
// A plugin (its reply.sendFile stays inside it); must serve files only, never compute.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export async function uiRoutes(app: FastifyInstance, opts: { uiDir: string }): Promise<void> {
  const uplotDir = join(dirname(require.resolve('uplot/package.json')), 'dist');
  await app.register(fastifyStatic, { root: uplotDir, prefix: '/ui/vendor/uplot/', decorateReply: false, index: false });
  // cytoscape's exports hide package.json; its main file sits in dist/ beside the ES module build.
  const cytoscapeDir = dirname(require.resolve('cytoscape'));
  await app.register(fastifyStatic, { root: cytoscapeDir, prefix: '/ui/vendor/cytoscape/', decorateReply: false, index: false,
    allowedPath: (path) => path === '/cytoscape.esm.min.mjs' });
  if (!existsSync(join(opts.uiDir, 'index.html'))) {
    app.log.warn({ uiDir: opts.uiDir }, 'the web UI is not installed; serving the API only');
    return;
  }
  await app.register(fastifyStatic, { root: opts.uiDir, prefix: '/ui/', index: false });
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.sendFile('index.html'));
}
