// The policy lifecycle: read, validate, diff, dry-run, apply (a transaction across every
// dataplane), history and rollback. Apply stores and activates a version only after every
// dataplane acknowledged it; any failure leaves the old policy active everywhere.

import { createTwoFilesPatch, diffLines } from 'diff';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { loadPolicyText, type Diagnostic, type LoadResult } from '../../policy/load';
import * as s from '../schemas';
import type { StateStore, StoredPolicy } from '../state/store';
import { HttpError, sessionOf, type MgmtContext } from './context';

const asDetails = (list: Diagnostic[]) => list.map(({ line, col, message }) => ({ line, col, message }));

function validate(text: string): LoadResult {
  return loadPolicyText(text, 'policy');
}

export interface PolicyDiff {
  diff: string;
  added: number;
  removed: number;
}

export function policyDiff(active: StoredPolicy | null, text: string): PolicyDiff {
  const before = active?.text ?? '';
  const diff = createTwoFilesPatch(active ? `policy v${active.version}` : 'no policy', 'candidate', before, text);
  let added = 0;
  let removed = 0;
  for (const part of diffLines(before, text)) {
    if (part.added) added += part.count ?? 0;
    if (part.removed) removed += part.count ?? 0;
  }
  return { diff, added, removed };
}

/**
 * Stores `text` as version 1 by "system" when no policy is stored yet (mgmt --initial-policy).
 * Returns why it was refused, or null.
 */
export function seedInitialPolicy(store: StateStore, text: string, file: string): string | null {
  if (store.activePolicy()) return null;
  const loaded = loadPolicyText(text, file);
  if (!loaded.ok) return loaded.errors.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`).join('\n');
  store.commitPolicy({ text, hash: loaded.policy.sourceHash, mode: loaded.policy.mode, author: 'system',
    comment: `initial policy from ${file}` });
  return null;
}

export function policyRoutes(app: FastifyInstance, ctx: MgmtContext): void {
  const viewer = { role: 'viewer' as const };
  const operator = { role: 'operator' as const };
  let applying = false;

  /** The apply transaction, shared by apply and rollback. */
  async function apply(req: FastifyRequest, text: string, comment: string, rollbackOf?: number) {
    const user = sessionOf(req).user;
    const from = req.ip;
    const loaded = validate(text);
    if (!loaded.ok) {
      throw new HttpError(400, `text: the policy has ${loaded.errors.length} error(s)`, asDetails(loaded.errors));
    }
    if (applying) throw new HttpError(409, 'another policy apply is in progress; try again when it is done');
    applying = true;
    try {
      const active = ctx.store.activePolicy();
      const version = ctx.store.nextPolicyVersion();
      const { diff } = policyDiff(active, text);
      const action = rollbackOf === undefined ? 'policy.apply' : 'policy.rollback';
      const result = await ctx.hub.apply(text, `policy v${version}`);
      if (!result.ok) {
        ctx.audit({ type: 'admin.change', severity: 'warning', user, from, action: `${action}.refused`,
          detail: `${result.error}${comment ? ` (${comment})` : ''}`, diff });
        ctx.publish({ type: 'policy.refused', time: new Date().toISOString(), severity: 'warning', author: user, comment,
          policyHash: loaded.policy.sourceHash, errors: result.details.map((d) => `${d.pair}: ${d.error}`) });
        throw new HttpError(502, `policy not applied, the old policy is still running everywhere: ${result.error}`, result.details);
      }
      let stored;
      try {
        stored = ctx.store.commitPolicy({ text, hash: loaded.policy.sourceHash, mode: loaded.policy.mode, author: user, comment });
      } catch (err) {
        // The dataplanes committed a policy management could not store: they are brought back to
        // the stored active one (the hub pushes it to those that run something else).
        if (active) ctx.hub.setActivePolicy(active.text, active.hash);
        ctx.audit({ type: 'admin.change', severity: 'error', user, from, action: `${action}.failed`,
          detail: `could not store v${version}: ${(err as Error).message}`, diff });
        throw new HttpError(500, 'policy could not be stored; the previous policy is being restored');
      }
      ctx.hub.setActivePolicy(text, stored.hash);
      ctx.audit({ type: 'admin.change', severity: 'notice', user, from, action,
        detail: `v${stored.version}${comment ? `: ${comment}` : ''}`, diff });
      const time = new Date().toISOString();
      ctx.publish({ type: rollbackOf === undefined ? 'policy.applied' : 'policy.rollback', time, severity: 'notice',
        version: stored.version, author: user, comment, policyHash: stored.hash, mode: stored.mode });
      if (active && active.mode !== stored.mode) {
        ctx.publish({ type: 'mode.change', time, severity: 'warning', from: active.mode, to: stored.mode, author: user });
      }
      return { version: stored.version, pairs: result.pairs };
    } finally {
      applying = false;
    }
  }

  app.get('/api/v1/policy', {
    schema: { summary: 'The active policy', response: s.responses({ 200: s.policyResponse }) },
    config: viewer,
  }, async () => {
    const active = ctx.store.activePolicy();
    if (!active) throw new HttpError(404, 'no policy has been applied yet');
    return active;
  });

  app.post('/api/v1/policy/validate', {
    schema: { summary: 'Validate and compile a policy', body: s.policyTextBody, response: s.responses({ 200: s.validateResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Body: { text: string } }>) => {
    const r = validate(req.body.text);
    if (!r.ok) return { ok: false, errors: asDetails(r.errors), warnings: asDetails(r.warnings) };
    return { ok: true, errors: [], warnings: asDetails(r.warnings), stats: r.policy.stats };
  });

  app.post('/api/v1/policy/diff', {
    schema: { summary: 'Unified diff against the active policy', body: s.policyTextBody, response: s.responses({ 200: s.diffResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Body: { text: string } }>) => policyDiff(ctx.store.activePolicy(), req.body.text));

  app.post('/api/v1/policy/dry-run', {
    schema: { summary: 'Which recently observed flows would change verdict', body: s.policyTextBody,
      response: s.responses({ 200: s.dryRunResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Body: { text: string } }>) => {
    const r = validate(req.body.text);
    if (!r.ok) return { ok: false, errors: asDetails(r.errors), observed: 0, changes: [] };
    const active = ctx.store.activePolicy();
    if (!active) throw new HttpError(409, 'no policy is active yet, so there is nothing to compare with');
    return { ok: true, ...ctx.hub.dryRun(active.text, req.body.text) };
  });

  app.post('/api/v1/policy/apply', {
    schema: { summary: 'Apply a policy to every dataplane (all or nothing)', body: s.applyBody,
      response: s.responses({ 200: s.applyResponse }) },
    config: operator,
  }, async (req: FastifyRequest<{ Body: { text: string; comment?: string } }>) =>
    apply(req, req.body.text, req.body.comment ?? ''));

  app.get('/api/v1/policy/history', {
    schema: { summary: 'Every applied version, newest first', response: s.responses({ 200: s.historyListResponse }) },
    config: viewer,
  }, async () => ({
    versions: ctx.store.policyHistory().map((p) => ({ version: p.version, author: p.author, comment: p.comment,
      appliedAt: p.appliedAt, hash: p.hash, mode: p.mode, active: ctx.store.isActive(p.version) })),
  }));

  app.get('/api/v1/policy/history/:version', {
    schema: { summary: 'One stored version', params: s.versionParams, response: s.responses({ 200: s.versionResponse }) },
    config: viewer,
  }, async (req: FastifyRequest<{ Params: { version: number } }>) => {
    const p = ctx.store.policy(req.params.version);
    if (!p) throw new HttpError(404, `no policy version ${req.params.version}`);
    return { ...p, active: ctx.store.isActive(p.version) };
  });

  app.post('/api/v1/policy/rollback', {
    schema: { summary: 'Apply an earlier version again (as a new version)', body: s.rollbackBody,
      response: s.responses({ 200: s.applyResponse }) },
    config: operator,
  }, async (req: FastifyRequest<{ Body: { version: number; comment?: string } }>) => {
    const old = ctx.store.policy(req.body.version);
    if (!old) throw new HttpError(404, `version: no policy version ${req.body.version}`);
    const comment = `rollback to v${old.version}${req.body.comment ? `: ${req.body.comment}` : ''}`;
    return apply(req, old.text, comment, old.version);
  });
}
