// Management under abuse: bodies over the route's limit, slow clients and a slowloris over real
// sockets, a login flood from many names and addresses, thousands of sessions. Each limit must give
// a clear answer (status and error body) and a counter on /metrics, and memory must stay bounded
// (measured after a forced GC; the numbers are printed as test comments).

import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { LoginThrottle, MAX_TRACKED } from '../appliance/mgmt/auth/lockout';
import { MAX_CONCURRENT_HASHES, MAX_WAITING_HASHES } from '../appliance/mgmt/auth/passwords';
import { MAX_SESSIONS, MAX_SESSIONS_PER_USER, SessionStore, type EvictionReason } from '../appliance/mgmt/auth/sessions';
import { AUTH_BODY_BYTES } from '../appliance/mgmt/routes/auth';
import {
  HEADERS_TIMEOUT_MS, IDLE_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, LARGE_BODY_ROUTES, LARGEST_BODY_BYTES, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS,
  REQUEST_TIMEOUT_MS, SMALL_BODY_BYTES, TIMEOUT_CHECK_MS,
} from '../appliance/mgmt/limits';
import { startTestServer, USERS, type TestServer } from './lib/mgmt-fixture';

const [admin, operator] = USERS;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Heap in use after a full collection, in MiB. */
function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / (1 << 20);
}

/** One sample of a metric from /metrics text ('' labels: the unlabelled sample); 0 when absent. */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function metrics(s: TestServer): Promise<string> {
  const res = await s.call(await s.login(admin.name, admin.password), 'GET', '/metrics');
  return res.json as string;
}

t.test('body limits: 413 in the API error shape, naming the route\'s limit; policy texts still fit', async (t) => {
  const s = await startTestServer(t);
  const op = await s.login(operator.name, operator.password);

  const login = await s.app.inject({ method: 'POST', url: '/api/v1/auth/login',
    payload: { username: 'x', password: 'p'.repeat(AUTH_BODY_BYTES) } });
  t.equal(login.statusCode, 413, 'a login body over 16 KiB');
  t.same(login.json(), { error: `request body too large: POST /api/v1/auth/login takes at most ${AUTH_BODY_BYTES} bytes` });

  const big = 'x'.repeat(SMALL_BODY_BYTES);
  const rollback = await s.call(op, 'POST', '/api/v1/policy/rollback', { version: 1, comment: big });
  t.equal(rollback.status, 413, 'a small-body route refuses 64 KiB');
  t.match(rollback.json.error, `takes at most ${SMALL_BODY_BYTES} bytes`);

  // The largest legitimate body: a policy text at its schema limit of 1 Mi characters.
  const largest = await s.call(op, 'POST', '/api/v1/policy/validate', { text: `# ${'x'.repeat(1024 * 1024 - 2)}` });
  t.not(largest.status, 413, `a 1 MiB policy text is not refused for its size (got ${largest.status})`);
  const tooBig = await s.call(op, 'POST', '/api/v1/policy/validate', { text: 'x'.repeat(LARGEST_BODY_BYTES) });
  t.equal(tooBig.status, 413);
  t.match(tooBig.json.error, `takes at most ${LARGEST_BODY_BYTES} bytes`);

  // Every route has a limit, and only the listed ones take the large one.
  for (const route of s.routes) {
    const key = ([] as string[]).concat(route.method).map((m) => `${m} ${route.url}`);
    const authPost = route.method === 'POST' && route.url.startsWith('/api/v1/auth/');
    const expected = key.some((k) => LARGE_BODY_ROUTES.has(k)) ? undefined : authPost ? AUTH_BODY_BYTES : SMALL_BODY_BYTES;
    if (route.bodyLimit !== expected) t.fail(`${key.join(',')}: bodyLimit ${route.bodyLimit}, expected ${expected ?? 'the global limit'}`);
  }
  t.equal(metric(await metrics(s), 'gatekeeper_mgmt_http_requests_total', 'method="POST",route="/api/v1/policy/validate",status="413"'), 1,
    'the 413 is counted per route');
});

/** Opens a raw socket (from `from`), sends `send`, and resolves when the server closes it. */
function rawSocket(port: number, send: string, from = '127.0.0.1') {
  const socket: Socket = connect({ host: '127.0.0.1', port, localAddress: from });
  const opened = Date.now();
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', () => undefined);
  socket.on('connect', () => socket.write(send));
  const closed = new Promise<{ afterMs: number; received: string }>((resolve) =>
    socket.on('close', () => resolve({ afterMs: Date.now() - opened, received })));
  return { socket, closed };
}

t.test('slow clients: half a header is cut off within the bound; a slowloris does not block others', async (t) => {
  const s = await startTestServer(t);
  await s.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (s.app.server.address() as { port: number }).port;
  // The timeout, the check interval, and slack for a loaded test box.
  const bound = HEADERS_TIMEOUT_MS + TIMEOUT_CHECK_MS + 1500;

  const half = rawSocket(port, 'GET /api/v1/meta HTTP/1.1\r\nHost: gk\r\nX-Slow: ');
  // A trickle: a byte a second keeps the socket busy, so only the headers timeout can end it.
  const trickle = rawSocket(port, 'GET /api/v1/meta HTTP/1.1\r\n');
  const drip = setInterval(() => trickle.socket.write('X'), 1000);
  t.teardown(() => clearInterval(drip));
  // A connection that never sends a byte.
  const silent = rawSocket(port, '');
  // A finished request on a keep-alive connection, then silence.
  const kept = rawSocket(port, 'GET /api/v1/meta HTTP/1.1\r\nHost: gk\r\n\r\n');

  // A slowloris from another address: twice the per-address cap of half-sent requests.
  const loris = Array.from({ length: 2 * MAX_CONNECTIONS_PER_ADDRESS }, () => rawSocket(port, 'GET / HTTP/1.1\r\nHost: gk\r\n', '127.0.0.2'));
  await new Promise((r) => setTimeout(r, 1000));
  const refusedAtOnce = (await Promise.all(loris.map((l) => Promise.race([l.closed.then(() => 1), new Promise<number>((r) => setTimeout(() => r(0), 50))]))))
    .reduce((a: number, b) => a + b, 0);
  t.equal(refusedAtOnce, MAX_CONNECTIONS_PER_ADDRESS, 'connections beyond the per-address cap are closed at once');

  const started = Date.now();
  const normal = await fetch(`http://127.0.0.1:${port}/api/v1/meta`);
  t.equal(normal.status, 200, 'a normal client is answered during the slowloris');
  t.ok(Date.now() - started < 2000, `and quickly (${Date.now() - started} ms)`);

  const cut = await half.closed;
  t.ok(cut.afterMs >= HEADERS_TIMEOUT_MS - 500 && cut.afterMs <= bound, `half a header: closed after ${cut.afterMs} ms (bound ${bound} ms)`);
  t.match(cut.received, /^HTTP\/1\.1 408 Request Timeout\r\n/, 'with 408');
  t.match(JSON.parse(cut.received.split('\r\n\r\n')[1]), { error: /request timeout: headers must arrive within 10 s/ }, 'and the API error shape');
  const trickled = await trickle.closed;
  t.ok(trickled.afterMs <= bound, `a trickling header: closed after ${trickled.afterMs} ms`);
  const mute = await silent.closed;
  t.ok(mute.afterMs <= bound, `a silent connection: closed after ${mute.afterMs} ms`);
  const idle = await kept.closed;
  t.match(idle.received, /^HTTP\/1\.1 200 /, 'the keep-alive request was answered');
  t.ok(idle.afterMs >= KEEP_ALIVE_TIMEOUT_MS - 500 && idle.afterMs <= KEEP_ALIVE_TIMEOUT_MS + 2000, `an idle keep-alive connection: closed after ${idle.afterMs} ms`);
  const lorisTimes = await Promise.all(loris.map((l) => l.closed));
  t.ok(lorisTimes.every((c) => c.afterMs <= bound), `every slowloris socket closed within ${bound} ms`);

  const text = await metrics(s);
  t.equal(metric(text, 'gatekeeper_mgmt_connections_refused_total', 'reason="too_many_from_address"'), MAX_CONNECTIONS_PER_ADDRESS);
  t.equal(metric(text, 'gatekeeper_mgmt_connections_refused_total', 'reason="request_timeout"'), MAX_CONNECTIONS_PER_ADDRESS + 3,
    'the held slowloris sockets, the half header, the trickle and the silent one');
  t.ok(s.log.some((l) => /management refused connections/.test(l)), 'and a log line says so');
});

t.test('the HTTPS server gets the same limits as plain HTTP', async (t) => {
  for (const http of [true, false]) {
    const s = await startTestServer(t, { http });
    const server = s.app.server as Server;
    t.match({ headersTimeout: server.headersTimeout, requestTimeout: server.requestTimeout, keepAliveTimeout: server.keepAliveTimeout,
      timeout: server.timeout, maxConnections: server.maxConnections },
    { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, timeout: IDLE_TIMEOUT_MS,
      maxConnections: MAX_CONNECTIONS }, http ? 'HTTP' : 'HTTPS');
  }
});

t.test('login flood: 100 000 names keep the lockout table bounded and fast', async (t) => {
  const throttle = new LoginThrottle();
  const before = heapMiB();
  const started = process.hrtime.bigint();
  const now = Date.now();
  for (let i = 0; i < 100_000; i++) {
    const name = `flood-${i}-${'n'.repeat(40)}`;
    if (throttle.begin(name, now) !== 0) continue;
    throttle.fail(name, now);
    throttle.end(name, now);
  }
  const perAttemptUs = Number(process.hrtime.bigint() - started) / 1000 / 100_000;
  const after = heapMiB();
  t.comment(`lockout: 100 000 names, heap ${before.toFixed(1)} → ${after.toFixed(1)} MiB, ${perAttemptUs.toFixed(1)} µs per attempt`);
  t.same(throttle.tracked(), { failing: MAX_TRACKED, locked: 0, pending: 0 }, 'at most MAX_TRACKED names held');
  t.ok(after - before < 8, `heap grew ${(after - before).toFixed(1)} MiB (< 8)`);
  t.ok(perAttemptUs < 50, 'an attempt costs microseconds');
  t.equal(throttle.begin(admin.name, now), 0, 'a real name still gets its attempt');
});

t.test('login flood from many addresses: quick 401/503 answers, bounded hashing, the real user gets in', async (t) => {
  const s = await startTestServer(t);
  const flood = 300;
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: flood }, (_, i) => s.app.inject({
    method: 'POST', url: '/api/v1/auth/login', remoteAddress: `10.1.${i >> 8}.${i & 255}`,
    payload: { username: `nobody-${i}`, password: 'wrong-password' },
  }).then((r) => ({ status: r.statusCode, json: r.json(), retry: r.headers['retry-after'], ms: Date.now() - started }))));
  const busy = answers.filter((a) => a.status === 503);
  const failed = answers.filter((a) => a.status === 401);
  t.equal(busy.length + failed.length, flood, 'every attempt is answered 401 or 503');
  t.ok(failed.length >= MAX_CONCURRENT_HASHES + MAX_WAITING_HASHES, `${failed.length} verified (401)`);
  t.ok(busy.length > flood / 2, `${busy.length} refused at once (503) instead of queueing`);
  t.same(busy[0].json, { error: 'too many password checks at once; try again in 1 s', retryAfterS: 1 });
  t.equal(busy[0].retry, '1', 'with Retry-After');
  const slowestBusy = Math.max(...busy.map((a) => a.ms));
  t.comment(`flood of ${flood}: ${failed.length} × 401, ${busy.length} × 503; slowest 503 after ${slowestBusy} ms, all done after ${Date.now() - started} ms`);

  // A real user during a flood is told to wait (503, Retry-After) and gets in when retrying.
  const again = Array.from({ length: 100 }, (_, i) => s.app.inject({
    method: 'POST', url: '/api/v1/auth/login', remoteAddress: `10.2.0.${i}`, payload: { username: `nobody-${i}`, password: 'x' } }));
  let status = 0;
  let tries = 0;
  let toldToWait = 0;
  for (; tries < 20 && status !== 200; tries++) {
    const res = await s.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: '10.3.0.1',
      payload: { username: admin.name, password: admin.password } });
    status = res.statusCode;
    if (status === 503) {
      toldToWait++;
      await new Promise((r) => setTimeout(r, Number(res.headers['retry-after']) * 1000));
    } else {
      t.equal(status, 200, 'the real user is either told to wait or logged in');
    }
  }
  const secondFlood = (await Promise.all(again)).filter((r) => r.statusCode === 503).length;
  t.equal(status, 200, `the real user logged in (attempt ${tries}, told to wait ${toldToWait} times)`);
  const text = await metrics(s);
  t.equal(metric(text, 'gatekeeper_mgmt_logins_total', 'result="busy"'), busy.length + secondFlood + toldToWait, 'every 503 is counted as a busy login');
});

t.test('thousands of sessions: capped per user and in all, least recently used ended first', async (t) => {
  const evicted: Record<EvictionReason, number> = { user_cap: 0, total_cap: 0 };
  const sessions = new SessionStore(() => 30 * 60_000, (_s, reason) => evicted[reason]++);
  const users = 100;
  const perUser = 50;
  const before = heapMiB();
  const now = Date.now();
  const first = sessions.create({ name: 'u0', role: 'viewer', passwordHash: 'h'.repeat(100) }, now);
  for (let u = 0; u < users; u++) {
    for (let i = u === 0 ? 1 : 0; i < perUser; i++) sessions.create({ name: `u${u}`, role: 'viewer', passwordHash: 'h'.repeat(100) }, now);
  }
  const after = heapMiB();
  t.comment(`sessions: ${users * perUser} created, ${sessions.count(now)} kept, heap ${before.toFixed(2)} → ${after.toFixed(2)} MiB`);
  t.equal(sessions.count(now), MAX_SESSIONS, 'the total cap holds');
  t.equal(sessions.countOf('u99'), MAX_SESSIONS_PER_USER, 'the per-user cap holds');
  t.equal(sessions.countOf('u0'), 0, 'the least recently used users went first at the total cap');
  t.same(evicted, { user_cap: users * (perUser - MAX_SESSIONS_PER_USER), total_cap: users * MAX_SESSIONS_PER_USER - MAX_SESSIONS });
  t.notOk(sessions.get(first.id, now), 'an ended session no longer logs in');
  t.ok(after - before < 4, `heap grew ${(after - before).toFixed(2)} MiB (< 4)`);
});

t.test('a user logging in again and again ends their own oldest session, counted and logged', async (t) => {
  const s = await startTestServer(t);
  const login = async (i: number) => {
    const res = await s.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: `10.4.0.${i}`,
      payload: { username: operator.name, password: operator.password } });
    t.equal(res.statusCode, 200);
    return { cookie: String(res.headers['set-cookie']).split(';')[0], csrfToken: (res.json() as { csrfToken: string }).csrfToken };
  };
  const logins = [];
  for (let i = 0; i <= MAX_SESSIONS_PER_USER; i++) logins.push(await login(i));
  t.equal((await s.call(logins[0], 'GET', '/api/v1/auth/session')).status, 401, 'the oldest session ended');
  t.equal((await s.call(logins[1], 'GET', '/api/v1/auth/session')).status, 200, 'the next one still works');
  t.equal((await s.call(logins[MAX_SESSIONS_PER_USER], 'GET', '/api/v1/auth/session')).status, 200, 'the new one works');
  t.equal(s.app.sessions.countOf(operator.name), MAX_SESSIONS_PER_USER);
  t.equal(metric(await metrics(s), 'gatekeeper_mgmt_sessions_evicted_total', 'reason="user_cap"'), 1);
  t.ok(s.log.some((l) => /ended the least recently used session/.test(l) && l.includes(operator.name)), 'logged with the user');
});
