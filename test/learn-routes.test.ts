// The learn routes (appliance/mgmt/routes/learn.ts) on a small fastify instance with the plugin, the
// API's error handler, a stand-in for the role check (a header names the caller's role; the real
// check is auth/access.ts, tested with the server) and the learn service over fakes: who may call
// what, schemas for bodies and responses, bad bodies → 400 with clear messages.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastify, { type FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { hasRole, type Role } from '../appliance/mgmt/auth/roles';
import { replyError } from '../appliance/mgmt/http-error';
import { LearnService, systemClock, type ModeControl } from '../appliance/mgmt/learn/learn-service';
import type { Proposal } from '../appliance/mgmt/learn/types';
import { learnRoutes } from '../appliance/mgmt/routes/learn';
import { FakeInventory, makeAsset, makeConversation } from './lib/fake-inventory';

async function server(t: Test): Promise<{ app: FastifyInstance; modes: { mode: 'enforce' | 'monitor' } }> {
  const dir = mkdtempSync(join(tmpdir(), 'learn-routes-'));
  const hmi = makeAsset({ mac: '02:00:5e:20:00:03', addresses: ['198.18.20.3'], lastSeen: Date.now() });
  const plc = makeAsset({ mac: '02:00:5e:10:00:0a', addresses: ['198.18.10.10'], lastSeen: Date.now() });
  const inventory = new FakeInventory([hmi, plc], [makeConversation(hmi, plc, { protocol: 'modbus', functions: { 'read-coils': 2 },
    firstSeen: Date.now() - 3_600_000, lastSeen: Date.now() })]);
  const state = { mode: 'enforce' as 'enforce' | 'monitor' };
  const modes: ModeControl = { current: () => state.mode, set: async (_p, m) => { state.mode = m; } };
  const learn = new LearnService({ inventory, modes, clock: systemClock, stateFile: join(dir, 'learn.json'), pairs: () => ['p1'],
    activeText: () => null, onEvent: () => undefined, log: { warn: () => undefined, error: () => undefined } });
  await learn.resume();
  const app = fastify({ ajv: { customOptions: { removeAdditional: false, allErrors: false } } }) as unknown as FastifyInstance;
  app.decorate('learn', learn);
  app.decorateRequest('session', null);
  app.setErrorHandler(replyError);
  app.addHook('onRequest', async (req, reply) => {
    const role = req.headers['x-role'] as Role | undefined;
    if (!role) return reply.code(401).send({ error: 'not logged in' });
    const needed = req.routeOptions.config.role ?? 'admin';
    if (!hasRole(role, needed)) return reply.code(403).send({ error: `needs the ${needed} role` });
    req.session = { id: 's', user: `${role}-user`, role, passwordHash: '', csrfToken: '', createdAt: 0, lastUsed: 0 };
  });
  await app.register(learnRoutes, { prefix: '/api/v1/learn' });
  t.teardown(async () => {
    learn.close();
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { app, modes: state };
}

const post = (app: FastifyInstance, url: string, body: unknown, role: Role | null = 'operator') =>
  app.inject({ method: 'POST', url: `/api/v1/learn${url}`, payload: body as object, headers: role ? { 'x-role': role } : {} });

t.test('viewers read; operators start, stop, propose and review', async (t) => {
  const { app, modes } = await server(t);
  const list = await app.inject({ url: '/api/v1/learn', headers: { 'x-role': 'viewer' } });
  t.equal(list.statusCode, 200);
  t.same(list.json(), { pairs: [{ pair: 'p1', state: 'idle', mode: null, startedAt: null, endsAt: null, author: null, assets: 0, conversations: 0 }] });
  t.equal((await app.inject({ url: '/api/v1/learn' })).statusCode, 401);
  for (const url of ['/start', '/stop', '/propose', '/review']) {
    t.equal((await post(app, url, {}, 'viewer')).statusCode, 403, `${url}: viewer refused`);
  }
  const started = await post(app, '/start', { pair: 'p1', durationMs: 3_600_000, mode: 'monitor' });
  t.equal(started.statusCode, 200);
  t.match(started.json(), { pair: 'p1', state: 'learning', mode: 'monitor', author: 'operator-user', assets: 0, conversations: 0 }, 'nothing seen since the start yet');
  t.equal(modes.mode, 'monitor');
  const again = await post(app, '/start', { pair: 'p1', durationMs: 3_600_000, mode: 'monitor' });
  t.equal(again.statusCode, 409);
  t.match(again.json().error, /learning already/);

  const proposed = await post(app, '/propose', { pair: 'p1' });
  t.equal(proposed.statusCode, 200);
  const p = proposed.json() as Proposal;
  t.equal(p.coverage.hours, 24, 'hours default to 24');
  t.equal(p.coverage.share, 1);
  t.same(p.rules.map((r) => r.modbus), [{ functions: ['read'], units: [] }]);
  t.same(p.errors, []);

  const decisions = [...p.groups.map((g) => ({ kind: 'group', id: g.id, accept: true })), { kind: 'rule', id: p.rules[0].id, accept: true, rename: 'hmi-reads-plc' }];
  const reviewed = await post(app, '/review', { pair: 'p1', proposalId: p.id, decisions });
  t.equal(reviewed.statusCode, 200);
  t.match(reviewed.json().text, /- name: hmi-reads-plc/);
  t.match(reviewed.json().diff, /^\+version: 1$/m);
  const collide = await post(app, '/review', { pair: 'p1', proposalId: p.id, decisions: [...decisions, { kind: 'group', id: p.groups[0].id, accept: false }] });
  t.equal(collide.statusCode, 400);
  t.match(collide.json().error, /has more than one decision/);

  const stopped = await post(app, '/stop', { pair: 'p1' });
  t.equal(stopped.statusCode, 200);
  t.equal(stopped.json().state, 'done');
  t.equal(modes.mode, 'enforce', 'the previous mode is back');
});

t.test('bad bodies are 400 naming the field; unknown pairs are 404', async (t) => {
  const { app } = await server(t);
  const cases: [string, unknown, RegExp][] = [
    ['/start', { pair: 'p1', durationMs: 1000, mode: 'monitor' }, /^body\/durationMs must be >= 60000/],
    ['/start', { pair: 'p1', durationMs: 3_600_000, mode: 'learn' }, /^body\/mode must be equal to one of the allowed values/],
    ['/start', { pair: 'p1', durationMs: 3_600_000 }, /^body must have required property 'mode'/],
    ['/start', { pair: 'p1', durationMs: 3_600_000, mode: 'enforce', extra: 1 }, /unknown field 'extra'/],
    ['/stop', {}, /^body must have required property 'pair'/],
    ['/propose', { pair: 'p1', hours: 0 }, /^body\/hours must be >= 1/],
    ['/review', { pair: 'p1', proposalId: 'x', decisions: [{ kind: 'zone', id: 'g1', accept: true }] }, /^body\/decisions\/0\/kind must be equal to one of/],
    ['/review', { pair: 'p1', proposalId: 'x', decisions: [{ kind: 'group', id: 'g1', accept: true, rename: '9lives' }] }, /^body\/decisions\/0\/rename must match pattern/],
  ];
  for (const [url, body, error] of cases) {
    const r = await post(app, url, body);
    t.equal(r.statusCode, 400, `${url} ${JSON.stringify(body)}`);
    t.match(r.json().error, error);
  }
  const unknown = await post(app, '/start', { pair: 'p7', durationMs: 3_600_000, mode: 'enforce' });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json().error, "pair 'p7': no such pair (known: p1)");
  const noProposal = await post(app, '/review', { pair: 'p1', proposalId: 'x', decisions: [] });
  t.equal(noProposal.statusCode, 404);
  t.match(noProposal.json().error, /has no proposal/);
});
