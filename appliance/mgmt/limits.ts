// Management's limits against abuse and slow clients, with their numbers in one place: body sizes
// per route, the Node server's timeouts, connection caps (in total and per client address), and
// the counters and rate-limited log lines an operator sees when a limit refuses something. The
// login and session limits are auth/'s (lockout.ts, passwords.ts, sessions.ts). Wiring only: no
// routes, no state. docs/operations.md ("Management under abuse") lists the same numbers.

import { STATUS_CODES, type ServerOptions as HttpServerOptions, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, RouteOptions } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The largest legitimate body: a policy text of up to 1 Mi characters (schemas.ts), 4 bytes each
 * at most in UTF-8, plus its comment and the JSON around it.
 */
export const LARGEST_BODY_BYTES = 4 * 1024 * 1024 + 64 * 1024;
/** Every other body (users, settings, rollback...) is a few KiB. */
export const SMALL_BODY_BYTES = 64 * 1024;
/** "METHOD url" of the routes that take LARGEST_BODY_BYTES: policy texts, syslog targets with their PEMs. */
export const LARGE_BODY_ROUTES: ReadonlySet<string> = new Set([
  'POST /api/v1/policy/validate',
  'POST /api/v1/policy/diff',
  'POST /api/v1/policy/dry-run',
  'POST /api/v1/policy/apply',
  'PUT /api/v1/settings/syslog',
]);

/** The whole header must arrive within this (a slowloris sending half a header is cut off). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** The whole request, body included: a 4 MiB policy needs about 0.6 Mbit/s. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** How often Node checks the two timeouts above: a stalled client is cut off within timeout + this. */
export const TIMEOUT_CHECK_MS = 1_000;
/** A socket silent this long is closed, even mid-request: above the longest apply (a 10k-rule compile). */
export const IDLE_TIMEOUT_MS = 120_000;
/** An idle keep-alive connection is closed after this; the UI polls every second, so it stays open. */
export const KEEP_ALIVE_TIMEOUT_MS = 10_000;
/** Open connections in all: bounds what sockets hold (a TLS socket some tens of KiB), about 25 MiB. */
export const MAX_CONNECTIONS = 512;
/** Open connections per client address: a browser opens 6, a NATed control room a few dozen. */
export const MAX_CONNECTIONS_PER_ADDRESS = 64;
/** A refusal is logged at most this often per reason, with the count since the last line. */
const LOG_EVERY_MS = 10_000;

/** Options for Node's http(s).createServer (fastify sets requestTimeout, the idle timeout and keep-alive itself). */
export const nodeServerOptions: HttpServerOptions = {
  headersTimeout: HEADERS_TIMEOUT_MS,
  connectionsCheckingInterval: TIMEOUT_CHECK_MS,
};

/** The fastify options that carry the limits above. */
export const fastifyLimits = {
  bodyLimit: LARGEST_BODY_BYTES,
  requestTimeout: REQUEST_TIMEOUT_MS,
  connectionTimeout: IDLE_TIMEOUT_MS,
  keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
};

/** A route that does not declare its own bodyLimit and is not a large-body route gets SMALL_BODY_BYTES. */
export function limitBody(route: RouteOptions): void {
  if (route.bodyLimit !== undefined) return;
  const methods = ([] as string[]).concat(route.method);
  if (methods.some((m) => LARGE_BODY_ROUTES.has(`${m} ${route.url}`))) return;
  route.bodyLimit = SMALL_BODY_BYTES;
}

export type RefusalReason =
  | 'too_many_connections' | 'too_many_from_address' | 'request_timeout' | 'idle_timeout' | 'header_too_large' | 'bad_request';

/**
 * What the limits refused, as counters on management's registry (GET /metrics), and refused
 * connections as log lines of at most one per reason every LOG_EVERY_MS (a flood must not flood the log).
 */
export class LimitCounters {
  readonly connectionsRefused: Counter<'reason'>;
  readonly sessionsEvicted: Counter<'reason'>;
  readonly stateWriteErrors: Counter<'code'>;
  private readonly sinceLog = new Map<RefusalReason, { count: number; at: number }>();

  constructor(registry: Registry, private readonly log: FastifyBaseLogger, loginNames: () => Record<string, number>) {
    this.connectionsRefused = new Counter({
      name: 'gatekeeper_mgmt_connections_refused_total',
      help: 'Connections closed by a limit: too_many_connections, too_many_from_address, request_timeout, idle_timeout, header_too_large, bad_request',
      labelNames: ['reason'] as const, registers: [registry],
    });
    this.sessionsEvicted = new Counter({
      name: 'gatekeeper_mgmt_sessions_evicted_total',
      help: 'Sessions ended to make room for a new login: user_cap (per user), total_cap (in all)',
      labelNames: ['reason'] as const, registers: [registry],
    });
    this.stateWriteErrors = new Counter({
      name: 'gatekeeper_mgmt_state_write_errors_total',
      help: 'API changes refused because a state file could not be written, by error code (ENOSPC: the disk is full)',
      labelNames: ['code'] as const, registers: [registry],
    });
    new Gauge({
      name: 'gatekeeper_mgmt_login_names_tracked', help: 'Names the login lockout holds in memory: failing, locked, pending',
      labelNames: ['table'] as const, registers: [registry],
      collect() {
        for (const [table, n] of Object.entries(loginNames())) this.set({ table }, n);
      },
    });
  }

  refused(reason: RefusalReason, from: string | undefined, now = Date.now()): void {
    this.connectionsRefused.inc({ reason });
    const seen = this.sinceLog.get(reason) ?? { count: 0, at: 0 };
    seen.count++;
    this.sinceLog.set(reason, seen);
    if (now - seen.at < LOG_EVERY_MS) return;
    this.log.warn({ reason, count: seen.count, lastFrom: from }, 'management refused connections (a limit was reached)');
    seen.count = 0;
    seen.at = now;
  }
}

/** Caps open connections in all and per address, and counts idle sockets as they are closed. */
export function guardConnections(server: Server, counters: LimitCounters): void {
  server.maxConnections = MAX_CONNECTIONS;
  server.on('drop', (data?: { remoteAddress?: string }) => counters.refused('too_many_connections', data?.remoteAddress));
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const from = socket.remoteAddress ?? '?';
    const count = (open.get(from) ?? 0) + 1;
    if (count > MAX_CONNECTIONS_PER_ADDRESS) {
      counters.refused('too_many_from_address', from);
      socket.destroy();
      return;
    }
    open.set(from, count);
    socket.once('close', () => {
      const left = (open.get(from) ?? 1) - 1;
      if (left > 0) open.set(from, left);
      else open.delete(from);
    });
  });
  // With a listener here Node no longer closes idle sockets itself (http.Server 'timeout').
  server.on('timeout', (socket: Socket) => {
    counters.refused('idle_timeout', socket.remoteAddress);
    socket.destroy();
  });
}

/**
 * fastify's clientErrorHandler: a request that timed out or does not parse gets a short answer in
 * the API's error shape ({error}), and the socket is closed.
 */
export function clientErrorHandler(counters: LimitCounters) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status: number;
    let error: string;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      counters.refused('request_timeout', socket.remoteAddress);
      status = 408;
      error = `request timeout: headers must arrive within ${HEADERS_TIMEOUT_MS / 1000} s and the whole request within ${REQUEST_TIMEOUT_MS / 1000} s`;
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      counters.refused('header_too_large', socket.remoteAddress);
      status = 431;
      error = 'request headers too large';
    } else {
      counters.refused('bad_request', socket.remoteAddress);
      status = 400;
      error = 'malformed HTTP request';
    }
    const body = JSON.stringify({ error });
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}
