// /api/v1/policy (registered with that prefix): read, validate, diff, dry-run, apply, history and
// rollback. A plugin of thin handlers: the lifecycle and the apply transaction are the policy
// service's (services/policy.ts); nothing here keeps state.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sessionOf } from '../auth/access';
import { HttpError } from '../http-error';
import * as s from '../schemas';

export async function policyRoutes(app: FastifyInstance): Promise<void> {
  const viewer = { role: 'viewer' as const };
  const operator = { role: 'operator' as const };
  const actor = (req: FastifyRequest) => ({ user: sessionOf(req).user, from: req.ip });

  app.get('', {
    schema: { summary: 'The active policy', response: s.responses({ 200: s.policyResponse }) },
    config: viewer,
  }, async () => {
    const active = app.policies.active();
    if (!active) throw new HttpError(404, 'no policy has been applied yet');
    return active;
  });

  app.post('/validate', {
    schema: { summary: 'Validate and compile a policy', body: s.policyTextBody, response: s.responses({ 200: s.validateResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Body: s.PolicyTextBody }>) => app.policies.validate(req.body.text));

  app.post('/diff', {
    schema: { summary: 'Unified diff against the active policy', body: s.policyTextBody, response: s.responses({ 200: s.diffResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Body: s.PolicyTextBody }>) => app.policies.diff(req.body.text));

  app.post('/dry-run', {
    schema: { summary: 'Which recently observed flows would change verdict', body: s.policyTextBody,
      response: s.responses({ 200: s.dryRunResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Body: s.PolicyTextBody }>) => app.policies.dryRun(req.body.text));

  app.post('/apply', {
    schema: { summary: 'Apply a policy to every dataplane (all or nothing)', body: s.applyBody,
      response: s.responses({ 200: s.applyResponse }) },
    config: operator,
  }, async (req: FastifyRequest<{ Body: s.ApplyBody }>) => app.policies.apply(req.body.text, req.body.comment ?? '', actor(req)));

  app.get('/history', {
    schema: { summary: 'Every applied version, newest first', response: s.responses({ 200: s.historyListResponse }) },
    config: viewer,
  }, async () => ({ versions: app.policies.history() }));

  app.get('/history/:version', {
    schema: { summary: 'One stored version', params: s.versionParams, response: s.responses({ 200: s.versionResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Params: s.VersionParams }>) => {
    const p = app.policies.version(req.params.version);
    if (!p) throw new HttpError(404, `no policy version ${req.params.version}`);
    return p;
  });

  app.post('/rollback', {
    schema: { summary: 'Apply an earlier version again (as a new version)', body: s.rollbackBody,
      response: s.responses({ 200: s.applyResponse }) },
    config: operator,
  }, async (req: FastifyRequest<{ Body: s.RollbackBody }>) => app.policies.rollback(req.body.version, req.body.comment ?? '', actor(req)));
}
