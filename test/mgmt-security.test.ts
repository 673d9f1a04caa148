// Management security: every route refuses anonymous calls (walked from the route table), roles,
// CSRF, brute force, bad input, security headers, cookies, metrics token, first-admin setup, and a
// real HTTPS request against the generated certificate.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import { PUBLIC_ROUTES } from '../appliance/mgmt/auth/access';
import { SessionStore } from '../appliance/mgmt/auth/sessions';
import { LOCK_MS, LoginThrottle, MAX_FAILURES, MAX_TRACKED, WINDOW_MS } from '../appliance/mgmt/auth/lockout';
import { hashSecret } from '../appliance/mgmt/auth/passwords';
import { LOGIN_RATE_PER_MINUTE } from '../appliance/mgmt/routes/auth';
import { StateStore } from '../appliance/mgmt/state/store';
import { labPolicyPath } from '../appliance/paths';
import { seedUsers, startTestServer, tempStateDir, USERS, type Login } from './lib/mgmt-fixture';

const policyText = readFileSync(labPolicyPath, 'utf8');
const [admin, operator, viewer] = USERS;

t.test('every API route refuses an anonymous call unless it is on the public list', async (t) => {
  const s = await startTestServer(t);
  const api = s.routes.flatMap((r) => ([] as string[]).concat(r.method).map((method) => ({ method, url: r.url })))
    .filter((r) => r.url.startsWith('/api/') || r.url === '/metrics');
  t.ok(api.length >= 30, `found ${api.length} API routes`);
  const publicSeen: string[] = [];
  for (const { method, url } of api) {
    const concrete = url.replace(':version', '1').replace(':name', 'alice');
    const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? {} : undefined;
    const res = await s.call(undefined, method, concrete, body);
    if (PUBLIC_ROUTES.has(`${method} ${url}`)) {
      publicSeen.push(`${method} ${url}`);
      t.not(res.status, 401, `${method} ${url} is public`);
    } else {
      t.equal(res.status, 401, `${method} ${url} refuses an anonymous call`);
      if (method !== 'HEAD') t.match(res.json, { error: 'not logged in' });
    }
  }
  t.same(publicSeen.sort(), [...PUBLIC_ROUTES].sort(), 'every public route exists, and only those are public');
  // A cookie that is not a live session counts as anonymous.
  const forged = await s.call({ cookie: 'gk_session=forged', csrfToken: 'x' }, 'GET', '/api/v1/status');
  t.equal(forged.status, 401);
});

t.test('role limits hold on every route (walked from the route table)', async (t) => {
  const s = await startTestServer(t);
  const as: Record<string, Login> = {};
  for (const u of USERS) as[u.role] = await s.login(u.name, u.password);
  const rank = { viewer: 0, operator: 1, admin: 2 } as const;
  let checked = 0;
  for (const r of s.routes) {
    const url = String(r.url);
    if (!(url.startsWith('/api/') || url === '/metrics')) continue;
    for (const method of ([] as string[]).concat(r.method)) {
      if (PUBLIC_ROUTES.has(`${method} ${url}`)) continue;
      const needed = r.config?.role ?? 'admin';
      for (const role of ['viewer', 'operator'] as const) {
        if (rank[role] >= rank[needed]) continue;
        const res = await s.call(as[role], method, url.replace(':version', '1').replace(':name', 'vera'), method === 'GET' || method === 'HEAD' ? undefined : {});
        t.equal(res.status, 403, `${role} is refused ${method} ${url} (needs ${needed})`);
        checked++;
      }
    }
  }
  t.ok(checked >= 15, `${checked} refusals checked`);
});

t.test('roles: viewer reads, operator applies and configures, admin manages users', async (t) => {
  const s = await startTestServer(t);
  const as: Record<string, Login> = {};
  for (const u of USERS) as[u.role] = await s.login(u.name, u.password);
  const newUser = (name: string) => ({ name, role: 'viewer', password: 'a-long-password-1' });
  const syslog = { targets: [{ name: 'siem', enabled: true, host: '127.0.0.1', port: 5514, transport: 'udp', format: 'rfc5424',
    minSeverity: 'info', types: [] }] };

  t.equal((await s.call(as.viewer, 'GET', '/api/v1/status')).status, 200, 'viewer reads status');
  t.equal((await s.call(as.viewer, 'GET', '/api/v1/settings')).status, 200, 'viewer reads settings');
  t.equal((await s.call(as.viewer, 'POST', '/api/v1/policy/validate', { text: policyText })).status, 200, 'viewer validates');
  const denied = await s.call(as.viewer, 'POST', '/api/v1/policy/apply', { text: policyText });
  t.equal(denied.status, 403, 'viewer cannot apply');
  t.match(denied.json.error, /operator/);
  t.equal(s.hub.applied.length, 0, 'nothing reached the dataplanes');
  t.equal((await s.call(as.viewer, 'PUT', '/api/v1/settings/syslog', syslog)).status, 403, 'viewer cannot change settings');
  t.equal((await s.call(as.viewer, 'POST', '/api/v1/users', newUser('v2'))).status, 403, 'viewer cannot add users');
  t.equal((await s.call(as.viewer, 'GET', '/api/v1/users')).status, 403, 'viewer cannot list users');

  t.equal((await s.call(as.operator, 'POST', '/api/v1/policy/apply', { text: policyText })).status, 200, 'operator applies');
  t.equal((await s.call(as.operator, 'PUT', '/api/v1/settings/syslog', syslog)).status, 200, 'operator changes syslog targets');
  t.equal(s.sink.targets.length, 1, 'the exporter was reconfigured');
  t.equal((await s.call(as.operator, 'POST', '/api/v1/users', newUser('o2'))).status, 403, 'operator cannot add users');
  t.equal((await s.call(as.operator, 'PUT', '/api/v1/settings/metrics-token', { token: 'x'.repeat(20) })).status, 403,
    'operator cannot set the metrics token');

  t.equal((await s.call(as.admin, 'POST', '/api/v1/users', newUser('a2'))).status, 201, 'admin adds users');
  t.equal((await s.call(as.admin, 'GET', '/api/v1/users')).json.users.length, 4);
  t.equal((await s.call(as.admin, 'DELETE', '/api/v1/users/alice')).status, 409, 'admin cannot remove themselves');
  t.equal((await s.call(as.admin, 'PATCH', '/api/v1/users/alice', { role: 'viewer' })).status, 409, 'the last admin stays admin');
  t.equal((await s.call(as.admin, 'PATCH', '/api/v1/users/oscar', { role: 'viewer' })).status, 200, 'admin changes a role');
  t.equal((await s.call(as.operator, 'GET', '/api/v1/status')).status, 401, "a changed role ends the user's sessions");
  const users = (await s.call(as.admin, 'GET', '/api/v1/users')).json.users;
  t.notOk(JSON.stringify(users).includes('scrypt'), 'password hashes are never returned');
});

t.test('CSRF: state-changing requests need the session token', async (t) => {
  const s = await startTestServer(t);
  const login = await s.login(operator.name, operator.password);
  const body = { text: policyText };
  const missing = await s.call({ cookie: login.cookie, csrfToken: '' }, 'POST', '/api/v1/policy/apply', body);
  t.equal(missing.status, 403);
  t.match(missing.json.error, /x-csrf-token/);
  // Change the last character to one it is not, so the wrong token is always wrong.
  const last = login.csrfToken.slice(-1);
  const wrongToken = `${login.csrfToken.slice(0, -1)}${last === 'A' ? 'B' : 'A'}`;
  const wrong = await s.call({ cookie: login.cookie, csrfToken: wrongToken }, 'POST', '/api/v1/policy/apply', body);
  t.equal(wrong.status, 403, 'a token that differs in one character is refused');
  const other = await s.login(viewer.name, viewer.password);
  t.equal((await s.call({ cookie: login.cookie, csrfToken: other.csrfToken }, 'POST', '/api/v1/policy/apply', body)).status, 403,
    "another session's token does not count");
  t.equal((await s.call({ cookie: login.cookie, csrfToken: '' }, 'POST', '/api/v1/auth/logout')).status, 403, 'logout needs it too');
  t.equal(s.hub.applied.length, 0);
  t.equal((await s.call(login, 'POST', '/api/v1/policy/apply', body)).status, 200, 'with the token it works');
  t.equal((await s.call({ cookie: login.cookie, csrfToken: '' }, 'GET', '/api/v1/policy')).status, 200, 'reads need no token');
  const session = await s.call(login, 'GET', '/api/v1/auth/session');
  t.equal(session.json.csrfToken, login.csrfToken, 'GET /auth/session gives the token back (page reload)');
  t.equal((await s.call(login, 'POST', '/api/v1/auth/logout')).status, 204);
  t.equal((await s.call(login, 'GET', '/api/v1/auth/session')).status, 401, 'logged out');
});

t.test('brute force: lockout after repeated failures, even for the right password', async (t) => {
  const s = await startTestServer(t);
  for (let i = 0; i < MAX_FAILURES; i++) {
    const r = await s.call(undefined, 'POST', '/api/v1/auth/login', { username: viewer.name, password: `wrong-${i}` });
    t.equal(r.status, 401);
    t.same(r.json, { error: 'invalid username or password' });
  }
  const locked = await s.call(undefined, 'POST', '/api/v1/auth/login', { username: viewer.name, password: viewer.password });
  t.equal(locked.status, 429, 'locked: the right password is refused');
  t.ok(locked.json.retryAfterS > 0 && locked.json.retryAfterS <= LOCK_MS / 1000, `retryAfterS ${locked.json.retryAfterS}`);
  t.equal(locked.headers['retry-after'], String(locked.json.retryAfterS));
  t.equal((await s.call(undefined, 'POST', '/api/v1/auth/login', { username: admin.name, password: admin.password })).status, 200,
    'other users are not locked');
  const types = s.sink.published.map((e) => e.type);
  t.equal(types.filter((x) => x === 'auth.login_failed').length, MAX_FAILURES, 'each failure published');
  t.equal(types.filter((x) => x === 'auth.lockout').length, 1, 'the lockout published');
  const audit = (await s.call(await s.login(admin.name, admin.password), 'GET', '/api/v1/audit?limit=50')).json.entries;
  t.ok(audit.some((e: { action: string; user: string }) => e.action === 'auth.lockout' && e.user === viewer.name), 'lockout audited');
  t.ok(audit.every((e: { from: string }) => e.from === '127.0.0.1'), 'audit says where from');

  // The lockout clock, without waiting five minutes.
  const throttle = new LoginThrottle();
  const failOnce = (now: number) => {
    t.equal(throttle.begin('u', now), 0, 'attempt allowed');
    const locked = throttle.fail('u', now);
    throttle.end('u', now);
    return locked;
  };
  for (let i = 0; i < MAX_FAILURES - 1; i++) t.notOk(failOnce(1000));
  t.ok(failOnce(1000), 'the fifth failure locks');
  t.equal(throttle.retryAfterS('u', 1000), LOCK_MS / 1000);
  t.equal(throttle.retryAfterS('u', 1000 + LOCK_MS), 0, 'unlocked after the lock time');
});

t.test('per-address login rate limit', async (t) => {
  const s = await startTestServer(t);
  let limited: { status: number; json: any } | undefined;
  for (let i = 0; i <= LOGIN_RATE_PER_MINUTE; i++) {
    // Different names, so the per-user lockout never triggers.
    const r = await s.call(undefined, 'POST', '/api/v1/auth/login', { username: `nobody${i}`, password: 'x' });
    if (r.status === 429) {
      limited = r;
      t.equal(i, LOGIN_RATE_PER_MINUTE, `limited after ${LOGIN_RATE_PER_MINUTE} attempts`);
      break;
    }
  }
  t.ok(limited, 'the address was rate limited');
  t.match(limited?.json, { error: /too many attempts/, retryAfterS: Number });
});

t.test('bad input gets 400 with a message naming the field', async (t) => {
  const s = await startTestServer(t);
  const a = await s.login(admin.name, admin.password);
  const cases: [string, string, unknown, RegExp][] = [
    ['POST', '/api/v1/policy/apply', {}, /text/],
    ['POST', '/api/v1/policy/apply', { text: policyText, extra: 1 }, /unknown field 'extra'/],
    ['POST', '/api/v1/policy/apply', { text: 'rules: [' }, /text: the policy has 1 error/],
    ['POST', '/api/v1/users', { name: 'bob', role: 'viewer', password: 'short' }, /password.*12/],
    ['POST', '/api/v1/users', { name: 'bob', role: 'root', password: 'a-long-password' }, /role/],
    ['POST', '/api/v1/users', { name: '../etc', role: 'viewer', password: 'a-long-password' }, /name/],
    ['PATCH', '/api/v1/users/vera', {}, /body/],
    ['GET', '/api/v1/flows?port=abc', undefined, /port/],
    ['GET', '/api/v1/flows?verdict=deny', undefined, /verdict/],
    ['GET', '/api/v1/events?type=nonsense', undefined, /type: unknown event type 'nonsense'/],
    ['GET', '/api/v1/events?before=yesterday', undefined, /before/],
    ['GET', '/api/v1/policy/history/abc', undefined, /version/],
    ['GET', '/api/v1/status/history', undefined, /pair/],
    ['PUT', '/api/v1/settings/syslog', { targets: [{ name: 'x', enabled: true, host: 'h', port: 99999, transport: 'udp',
      format: 'cef', minSeverity: 'info', types: [] }] }, /port/],
    ['PUT', '/api/v1/settings/syslog', { targets: [1, 2].map(() => ({ name: 'dup', enabled: true, host: 'h', port: 514,
      transport: 'udp', format: 'cef', minSeverity: 'info', types: [] })) }, /targets\[1\]\.name/],
    ['PUT', '/api/v1/settings/syslog', { targets: [{ name: 't', enabled: true, host: 'h', port: 6514, transport: 'tls',
      format: 'cef', minSeverity: 'info', types: [], tls: { hasKey: true, hasCert: true } }] }, /no stored key/],
    ['POST', '/api/v1/auth/password', { current: 'wrong', password: 'a-long-password-2' }, /current/],
  ];
  for (const [method, url, body, message] of cases) {
    const r = await s.call(a, method, url, body);
    t.equal(r.status, 400, `${method} ${url} ${JSON.stringify(body)?.slice(0, 60) ?? ''}`);
    t.match(r.json.error, message, r.json.error);
  }
  const invalid = await s.call(a, 'POST', '/api/v1/policy/apply', { text: 'version: 1\nrules:\n  - name: x\n    from: nowhere\n' });
  t.equal(invalid.status, 400);
  t.ok(invalid.json.details.length > 0 && invalid.json.details.every((d: object) => 'line' in d && 'col' in d && 'message' in d),
    'policy errors come with line and column');
  const notJson = await s.app.inject({ method: 'POST', url: '/api/v1/policy/validate', payload: '{"text":',
    headers: { cookie: a.cookie, 'x-csrf-token': a.csrfToken, 'content-type': 'application/json' } });
  t.equal(notJson.statusCode, 400, 'broken JSON is a 400, not a crash');
  t.equal(s.hub.applied.length, 0);
});

t.test('security headers, cookie flags, HTTPS with the generated certificate', async (t) => {
  const stateDir = tempStateDir(t);
  const s = await startTestServer(t, { http: false, stateDir });
  const res = await s.app.inject({ method: 'GET', url: '/api/v1/auth/setup' });
  const csp = String(res.headers['content-security-policy']);
  for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "frame-ancestors 'none'"]) t.ok(csp.includes(d), `CSP has ${d}`);
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.equal(res.headers['referrer-policy'], 'no-referrer');
  t.equal(res.headers['x-frame-options'], 'DENY');
  t.match(String(res.headers['strict-transport-security']), /max-age=31536000/, 'HSTS over HTTPS');

  // No users in this state dir: create the first admin with the setup token, over real HTTPS.
  await s.app.listen({ host: '127.0.0.1', port: 0 });
  const address = s.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const ca = readFileSync(join(stateDir, 'tls', 'cert.pem'), 'utf8');
  const token = readFileSync(join(stateDir, 'setup-token'), 'utf8').trim();
  t.ok(s.log.some((l) => l.includes(token)), 'the setup token is in the service log');
  const httpsCall = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, ca, headers: body ? { 'content-type': 'application/json' } : {} }, (r) => {
        let data = '';
        r.on('data', (c: Buffer) => (data += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: data }));
      });
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });
  t.same(JSON.parse((await httpsCall('GET', '/api/v1/auth/setup')).body), { needed: true }, 'the certificate verifies against itself as CA');
  const wrong = await httpsCall('POST', '/api/v1/auth/setup', { token: 'not-the-token', username: 'first', password: 'first-password-1' });
  t.equal(wrong.status, 401);
  const setup = await httpsCall('POST', '/api/v1/auth/setup', { token, username: 'first', password: 'first-password-1' });
  t.equal(setup.status, 201, setup.body);
  const cookie = String(setup.headers['set-cookie']);
  for (const flag of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/', 'Max-Age=43200']) t.ok(cookie.includes(flag), `cookie has ${flag}`);
  t.same(JSON.parse((await httpsCall('GET', '/api/v1/auth/setup')).body), { needed: false });
  t.equal((await httpsCall('POST', '/api/v1/auth/setup', { token, username: 'again', password: 'first-password-1' })).status, 409,
    'the token works once');
  await s.app.close();

  const again = await startTestServer(t, { http: false, stateDir });
  t.equal((await again.app.inject({ method: 'GET', url: '/api/v1/auth/setup' })).json().needed, false);
  t.equal(readFileSync(join(stateDir, 'tls', 'cert.pem'), 'utf8'), ca, 'the certificate is reused at the next start');

  const plain = await startTestServer(t);
  const plainRes = await plain.app.inject({ method: 'GET', url: '/api/v1/auth/setup' });
  t.notOk(plainRes.headers['strict-transport-security'], 'no HSTS over plain HTTP');
  const login = await plain.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: viewer.name, password: viewer.password } });
  t.notOk(String(login.headers['set-cookie']).includes('Secure'), 'plain HTTP cookies cannot be Secure');
});

t.test('sessions expire when idle and after 12 hours', async (t) => {
  const sessions = new SessionStore(() => 30 * 60_000);
  const s = sessions.create({ name: 'u', role: 'viewer', passwordHash: 'h' }, 0);
  t.ok(sessions.get(s.id, 29 * 60_000), 'used within the idle time');
  t.ok(sessions.get(s.id, 58 * 60_000), 'each use restarts the idle timer');
  t.notOk(sessions.get(s.id, 89 * 60_000), 'idle too long');
  const busy = sessions.create({ name: 'u', role: 'viewer', passwordHash: 'h' }, 0);
  for (let m = 20; m < 12 * 60; m += 20) t.ok(sessions.get(busy.id, m * 60_000));
  t.notOk(sessions.get(busy.id, 12 * 3600_000 + 1), 'at most 12 hours');
  t.not(s.id, busy.id);
  t.ok(s.id.length >= 43, '32 random bytes');
});

t.test('metrics need a session or the bearer token', async (t) => {
  const s = await startTestServer(t);
  t.equal((await s.call(undefined, 'GET', '/metrics')).status, 401);
  const a = await s.login(admin.name, admin.password);
  const withSession = await s.call(a, 'GET', '/metrics');
  t.equal(withSession.status, 200);
  t.match(withSession.json, /gatekeeper_rx_packets_total\{pair="pair0",port="inside0"\} 10/, 'the hub counters');
  t.match(withSession.json, /gatekeeper_mgmt_logins_total\{result="ok"\} 1/, 'management counters');
  t.match(withSession.json, /gatekeeper_mgmt_sessions 1/);
  const token = 'scrape-token-0123456789';
  t.equal((await s.call(undefined, 'GET', '/metrics')).status, 401);
  t.equal((await s.call(a, 'PUT', '/api/v1/settings/metrics-token', { token })).status, 204);
  t.equal((await s.call(a, 'GET', '/api/v1/settings')).json.metricsToken, true);
  t.notOk(readFileSync(join(s.stateDir, 'settings.json'), 'utf8').includes(token), 'the token is stored hashed');
  const bearer = (value: string) => s.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${value}` } });
  t.equal((await bearer(token)).statusCode, 200, 'the bearer token reads metrics');
  t.equal((await bearer(`${token}x`)).statusCode, 401, 'a wrong token does not');
  t.equal((await s.app.inject({ method: 'GET', url: '/api/v1/status', headers: { authorization: `Bearer ${token}` } })).statusCode, 401,
    'the metrics token opens nothing else');
});

t.test('OpenAPI document covers every API route with schemas', async (t) => {
  const s = await startTestServer(t);
  const a = await s.login(viewer.name, viewer.password);
  const doc = (await s.call(a, 'GET', '/api/v1/openapi.json')).json;
  t.equal(doc.openapi.slice(0, 2), '3.');
  for (const r of s.routes) {
    for (const method of ([] as string[]).concat(r.method)) {
      if (method === 'HEAD' || !(r.url.startsWith('/api/') || r.url === '/metrics') || r.url === '/api/v1/openapi.json') continue;
      const path = r.url.replace(/:(\w+)/g, '{$1}');
      const op = doc.paths[path]?.[method.toLowerCase()];
      t.ok(op?.responses && Object.keys(op.responses).length >= 2, `${method} ${r.url} documented with responses`);
      if (['POST', 'PUT', 'PATCH'].includes(method) && !r.url.endsWith('/logout')) t.ok(op?.requestBody, `${method} ${r.url} has a body schema`);
    }
  }
});

t.test('the web UI and uPlot are public static files; a missing UI leaves the API working', async (t) => {
  const uiDir = join(tempStateDir(t), 'ui');
  mkdirSync(join(uiDir, 'views'), { recursive: true });
  writeFileSync(join(uiDir, 'index.html'), '<!doctype html><title>gk</title>');
  writeFileSync(join(uiDir, 'views', 'flows.js'), 'export {};');
  const s = await startTestServer(t, { uiDir });
  const index = await s.app.inject({ method: 'GET', url: '/' });
  t.equal(index.statusCode, 200);
  t.match(index.headers['content-type'], /text\/html/);
  t.match(index.headers['content-security-policy'], /script-src 'self'/);
  t.equal((await s.app.inject({ method: 'GET', url: '/ui/views/flows.js' })).statusCode, 200);
  const uplot = await s.app.inject({ method: 'GET', url: '/ui/vendor/uplot/uPlot.iife.min.js' });
  t.equal(uplot.statusCode, 200);
  t.match(uplot.headers['content-type'], /javascript/);
  t.equal((await s.app.inject({ method: 'GET', url: '/ui/../package.json' })).statusCode, 404, 'no way out of the UI folder');

  const bare = await startTestServer(t, { uiDir: join(uiDir, 'missing') });
  t.equal((await bare.app.inject({ method: 'GET', url: '/' })).statusCode, 404);
  t.equal((await bare.app.inject({ method: 'GET', url: '/api/v1/auth/setup' })).statusCode, 200);
});

t.test('a user removed, re-passworded or re-roled on the box loses their sessions at once', async (t) => {
  const s = await startTestServer(t);
  const alice = await s.login(admin.name, admin.password);
  const oscar = await s.login(operator.name, operator.password);
  const vera = await s.login(viewer.name, viewer.password);
  const syslog = { targets: [] };
  t.equal((await s.call(oscar, 'PUT', '/api/v1/settings/syslog', syslog)).status, 200, 'oscar configures before');
  // What `gatekeeper user remove|passwd` does: a second store on the same directory.
  const cli = StateStore.open(s.stateDir, { warn: () => undefined }, { recover: false });
  const newHash = await hashSecret('vera-new-password-1');
  cli.saveUsers(cli.users().filter((u) => u.name !== operator.name).map((u) => (u.name === viewer.name ? { ...u, passwordHash: newHash } : u)));
  t.equal((await s.call(oscar, 'PUT', '/api/v1/settings/syslog', syslog)).status, 401, 'removed user: session ended');
  t.equal((await s.call(vera, 'GET', '/api/v1/status')).status, 401, 'changed password: session ended');
  t.equal((await s.call(alice, 'GET', '/api/v1/status')).status, 200, 'other users keep theirs');
  cli.saveUsers(cli.users().map((u) => (u.name === admin.name ? { ...u, role: 'viewer' as const } : u)));
  t.equal((await s.call(alice, 'GET', '/api/v1/status')).status, 401, 'changed role: session ended');
  // Changing your own password keeps the session it was changed from.
  const v2 = await s.login(viewer.name, 'vera-new-password-1');
  t.equal((await s.call(v2, 'POST', '/api/v1/auth/password', { current: 'vera-new-password-1', password: 'vera-newer-password-1' })).status, 204);
  t.equal((await s.call(v2, 'GET', '/api/v1/status')).status, 200, 'own password change keeps this session');
});

t.test('first-admin setup: two concurrent requests with the token create one admin', async (t) => {
  const stateDir = tempStateDir(t);
  const s = await startTestServer(t, { stateDir });
  const token = readFileSync(join(stateDir, 'setup-token'), 'utf8').trim();
  const results = await Promise.all(['first', 'second'].map((username) =>
    s.call(undefined, 'POST', '/api/v1/auth/setup', { token, username, password: 'first-password-1' })));
  t.same(results.map((r) => r.status).sort(), [201, 409], 'one succeeds, the other finds setup done');
  const cli = StateStore.open(stateDir, { warn: () => undefined });
  t.equal(cli.users().length, 1, 'one user');
});

t.test('users: concurrent changes cannot remove the last admin or add a name twice', async (t) => {
  const s = await startTestServer(t);
  await seedUsers(s.stateDir, [...USERS, { name: 'bob', role: 'admin', password: 'bob-password-111' }]);
  const alice = await s.login(admin.name, admin.password);
  const bob = await s.login('bob', 'bob-password-111');
  const demoted = await Promise.all([
    s.call(alice, 'PATCH', '/api/v1/users/bob', { role: 'viewer', password: 'bob-password-222' }),
    s.call(bob, 'PATCH', '/api/v1/users/alice', { role: 'viewer', password: 'alice-password-2' }),
  ]);
  const statuses = demoted.map((r) => r.status);
  t.ok(statuses.includes(409), `one demotion refused (${statuses})`);
  const admins = StateStore.open(s.stateDir, { warn: () => undefined }).users().filter((u) => u.role === 'admin');
  t.equal(admins.length, 1, 'an admin is left');

  // The refused change left the remaining admin's password as it was.
  const left = admins[0].name === admin.name ? await s.login(admin.name, admin.password) : await s.login('bob', 'bob-password-111');
  const carl = { name: 'carl', role: 'viewer', password: 'carl-password-11' };
  const added = await Promise.all([s.call(left, 'POST', '/api/v1/users', carl), s.call(left, 'POST', '/api/v1/users', carl)]);
  t.same(added.map((r) => r.status).sort(), [201, 409]);
  t.equal(StateStore.open(s.stateDir, { warn: () => undefined }).users().filter((u) => u.name === 'carl').length, 1, 'carl once');
});

t.test('brute force: concurrent wrong logins still lock after the limit', async (t) => {
  const s = await startTestServer(t);
  const results = await Promise.all(Array.from({ length: 25 }, (_, i) =>
    s.call(undefined, 'POST', '/api/v1/auth/login', { username: viewer.name, password: `wrong-${i}` })));
  const statuses = results.map((r) => r.status);
  t.equal(statuses.filter((x) => x === 401).length, MAX_FAILURES, `${MAX_FAILURES} verified`);
  t.equal(statuses.filter((x) => x === 429).length, 25 - MAX_FAILURES, 'the rest refused');
  t.equal((await s.call(undefined, 'POST', '/api/v1/auth/login', { username: viewer.name, password: viewer.password })).status, 429,
    'and the name is locked');
});

t.test('brute force: a flood of other names never unlocks a locked name', async (t) => {
  const throttle = new LoginThrottle();
  const attempt = (user: string, now: number) => {
    const wait = throttle.begin(user, now);
    if (wait === 0) {
      throttle.fail(user, now);
      throttle.end(user, now);
    }
    return wait;
  };
  for (let i = 0; i < MAX_FAILURES; i++) attempt('admin', 1000);
  t.ok(throttle.retryAfterS('admin', 1000) > 0, 'admin locked');
  let refused = 0;
  for (let i = 0; i < MAX_TRACKED + 10; i++) if (attempt(`n${i}`, 2000) > 0) refused++;
  t.equal(refused, 0, 'new names still get their attempts: unlocked names make room, oldest first');
  t.ok(throttle.retryAfterS('admin', 2000) > 0, 'admin still locked');
  t.equal(throttle.begin('operator1', 2000), 0, 'a real user can still try to log in');
  throttle.end('operator1', 2000);
  // A table full of locked names refuses new names rather than unlock one.
  const locked = new LoginThrottle();
  for (let i = 0; i < MAX_TRACKED; i++) for (let k = 0; k < MAX_FAILURES; k++) {
    if (locked.begin(`l${i}`, 3000) === 0) {
      locked.fail(`l${i}`, 3000);
      locked.end(`l${i}`, 3000);
    }
  }
  t.ok(locked.begin('newcomer', 3000) > 0, 'no room while every tracked name is locked');
  t.ok(locked.retryAfterS('l0', 3000) > 0, 'and the oldest locked name stays locked');
  t.equal(locked.begin('newcomer', 3000 + LOCK_MS + WINDOW_MS), 0, 'room again once the locks and failures have expired');
});

t.test('syslog changes are audited with format, filter and TLS settings, never the PEM', async (t) => {
  const s = await startTestServer(t);
  const op = await s.login(operator.name, operator.password);
  const target = { name: 'siem', enabled: true, host: '198.18.0.5', port: 6514, transport: 'tls', format: 'rfc5424', minSeverity: 'info',
    types: [], tls: { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM', serverName: 'siem.example' } };
  const lastDetail = async () => (await s.call(op, 'GET', '/api/v1/audit?limit=1')).json.entries[0].detail as string;
  t.equal((await s.call(op, 'PUT', '/api/v1/settings/syslog', { targets: [target] })).status, 200);
  const caPrint = createHash('sha256').update('CA PEM').digest('hex').slice(0, 12);
  t.equal(await lastDetail(), `siem=tls://198.18.0.5:6514 rfc5424 info types=all ca=${caPrint} key=set cert=set sn=siem.example`);
  const changed = { ...target, format: 'cef', minSeverity: 'error', types: ['auth.login'], tls: { ca: 'OTHER CA', hasKey: true, hasCert: true } };
  t.equal((await s.call(op, 'PUT', '/api/v1/settings/syslog', { targets: [changed] })).status, 200);
  const detail = await lastDetail();
  t.match(detail, /cef error types=auth\.login ca=[0-9a-f]{12} key=set cert=set sn=-$/);
  t.notMatch(detail, new RegExp(caPrint), 'a new CA shows as a new fingerprint');
  t.notMatch(detail, /PEM/, 'no key material in the audit');
});
