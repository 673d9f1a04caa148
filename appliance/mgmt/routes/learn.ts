// /api/v1/learn (registered with that prefix): learning sessions per pair, proposals and their
// review. A plugin of thin handlers over the learn service (learn/learn-service.ts), found as the
// `learn` decorator; viewers read the status, operators start, stop, propose and review. Review
// returns a text only: applying it is POST /api/v1/policy/dry-run and apply, as for any edit.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sessionOf } from '../auth/access';
import * as s from '../learn/schemas';
import type { Decision } from '../learn/types';

export async function learnRoutes(app: FastifyInstance): Promise<void> {
  const viewer = { role: 'viewer' as const };
  const operator = { role: 'operator' as const };
  const user = (req: FastifyRequest) => sessionOf(req).user;

  app.get('', {
    schema: { summary: 'Learning status of every pair', response: s.statusListResponse },
    config: viewer,
  }, async () => ({ pairs: app.learn.status() }));

  app.post('/start', {
    schema: { summary: 'Start learning on a pair for a period (monitor: the policy in monitor mode meanwhile)', body: s.startBody,
      response: s.statusResponse },
    config: operator,
  }, async (req: FastifyRequest<{ Body: s.StartBody }>) => app.learn.start(req.body.pair, req.body.durationMs, req.body.mode, user(req)));

  app.post('/stop', {
    schema: { summary: 'Stop learning on a pair (the previous mode comes back)', body: s.stopBody, response: s.statusResponse },
    config: operator,
  }, async (req: FastifyRequest<{ Body: s.StopBody }>) => app.learn.stop(req.body.pair, user(req)));

  app.post('/propose', {
    schema: { summary: 'A policy proposal from what the pair learned, with its coverage of the last hours', body: s.proposeBody,
      response: s.proposalResponse },
    config: operator,
  }, async (req: FastifyRequest<{ Body: s.ProposeBody }>) => app.learn.propose(req.body.pair, req.body.hours ?? 24));

  app.post('/review', {
    schema: { summary: 'Accept, reject or rename proposed groups and rules: the merged policy text and its diff (nothing is applied)',
      body: s.reviewBody, response: s.reviewResponse },
    config: operator,
  }, async (req: FastifyRequest<{ Body: s.ReviewBody }>) =>
    app.learn.review(req.body.pair, req.body.proposalId, req.body.decisions as Decision[]));
}
