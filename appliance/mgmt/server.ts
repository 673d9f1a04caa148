// The management service's HTTP side: one fastify instance serving the API (/api/v1), the
// Prometheus metrics (/metrics) and the web UI's static files, over HTTPS unless plain HTTP is
// asked for. The dataplane side (DataplaneHub) and the SIEM export (EventSink) are handed in.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type RouteOptions } from 'fastify';
import type { GatekeeperEvent } from '../ipc/events';
import { projectRoot } from '../paths';
import { isProtectedUrl, PUBLIC_ROUTES, requireRole } from './auth/access';
import { LoginThrottle } from './auth/lockout';
import { SessionStore } from './auth/sessions';
import { ensureCertificate } from './auth/tls';
import type { DataplaneHub } from './dataplanes/types';
import { EventLog } from './events-log';
import { authRoutes, SETUP_TOKEN_FILE } from './routes/auth';
import { HttpError, type MgmtContext } from './routes/context';
import { eventRoutes } from './routes/events';
import { MgmtMetrics, metricsRoutes } from './routes/metrics';
import { policyRoutes, seedInitialPolicy } from './routes/policy';
import { settingsRoutes } from './routes/settings';
import { statusRoutes } from './routes/status';
import { userRoutes } from './routes/users';
import * as s from './schemas';
import type { EventSink } from './siem/types';
import { writeFileAtomic } from '../wire/atomic-file';
import { StateStore } from './state/store';

export interface ServerOptions {
  stateDir: string;
  /** Plain HTTP instead of HTTPS (a lab on loopback); cookies then lose the Secure flag. */
  http: boolean;
  hub: DataplaneHub;
  events: EventSink;
  log: FastifyBaseLogger;
  /** Web UI files (default appliance/mgmt/ui in the project). */
  uiDir?: string;
  /** Stored as version 1 by "system" when no policy is stored yet. */
  initialPolicy?: { text: string; file: string };
  /** Sees every route as it is registered (the security test walks the route table with it). */
  onRoute?: (route: RouteOptions) => void;
}

export const DEFAULT_UI_DIR = join(projectRoot, 'appliance', 'mgmt', 'ui');
export const packageVersion = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { log, hub, events: sink } = opts;
  const store = StateStore.open(opts.stateDir, log);
  if (opts.initialPolicy) {
    const refused = seedInitialPolicy(store, opts.initialPolicy.text, opts.initialPolicy.file);
    if (refused) throw new Error(`initial policy refused:\n${refused}`);
  }
  const eventLog = new EventLog(opts.stateDir, log);
  const sessions = new SessionStore(() => store.settings().sessionTimeoutMin * 60_000);
  const https = opts.http ? null : await ensureCertificate(opts.stateDir, log);

  const ctx: MgmtContext = {
    store,
    sessions,
    throttle: new LoginThrottle(),
    eventLog,
    hub,
    sink,
    metrics: new MgmtMetrics(() => sessions.count()),
    secureCookies: !opts.http,
    version: packageVersion,
    startedAt: Date.now(),
    setupToken: null,
    publish(event: GatekeeperEvent) {
      try {
        eventLog.add(event);
      } catch (err) {
        // A full or failing disk must not stop events reaching the SIEM, nor break the caller.
        this.metrics.eventStoreErrors.inc();
        log.error({ err, type: event.type }, 'could not store an event');
      }
      sink.publish(event);
    },
    audit(r) {
      const time = new Date().toISOString();
      store.appendAudit({ time, user: r.user, from: r.from, action: r.action, detail: r.detail, ...(r.diff ? { diff: r.diff } : {}) });
      this.publish({ type: r.type, time, severity: r.severity, user: r.user, from: r.from,
        action: r.detail ? `${r.action} ${r.detail}` : r.action });
    },
  };
  openSetup(ctx, log);

  // One ajv for all routes; unknown body properties are refused (400), not silently removed.
  const app = fastify({
    loggerInstance: log,
    ...(https ? { https } : {}),
    bodyLimit: 4 * 1024 * 1024,
    // The UI polls every second; errors and the service's own messages are what the log is for.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  app.setErrorHandler((err: FastifyError & Partial<HttpError>, req, reply) => {
    if (err.validation) {
      const first = err.validation[0];
      const field = `${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
      const extra = first?.keyword === 'additionalProperties'
        ? `: unknown field '${String((first.params as { additionalProperty?: string }).additionalProperty)}'` : '';
      return reply.code(400).send({
        error: `${field} ${first?.message ?? 'is invalid'}${extra}`,
        details: err.validation.map((v) => ({ field: `${err.validationContext ?? ''}${v.instancePath}`, message: v.message ?? '' })),
      });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500 && !(err instanceof HttpError)) {
      req.log.error({ err }, 'request failed');
      return reply.code(500).send({ error: 'internal error; see the service log' });
    }
    if (status === 429 && err.retryAfterS) void reply.header('retry-after', String(err.retryAfterS));
    return reply.code(status).send({
      error: err.message,
      ...(err.details ? { details: err.details } : {}),
      ...(err.retryAfterS ? { retryAfterS: err.retryAfterS } : {}),
    });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no such route: ${req.method} ${req.url.split('?')[0]}` }));

  // Every API route gets the access check unless it is public (auth/access.ts).
  app.addHook('onRoute', (route) => {
    opts.onRoute?.(route);
    const methods = ([] as string[]).concat(route.method);
    if (!isProtectedUrl(route.url) || methods.every((m) => PUBLIC_ROUTES.has(`${m} ${route.url}`))) return;
    const guard = requireRole(route.config?.role ?? 'admin', ctx);
    route.onRequest = [...([] as unknown[]).concat(route.onRequest ?? []), guard] as typeof route.onRequest;
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.routeOptions.url && isProtectedUrl(req.routeOptions.url)) {
      ctx.metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url, status: String(reply.statusCode) });
    }
  });

  await app.register(fastifyCookie);
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'self'"], formAction: ["'self'"], objectSrc: ["'none'"],
      },
    },
    hsts: opts.http ? false : { maxAge: 31_536_000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    frameguard: { action: 'deny' },
  });
  await app.register(fastifyRateLimit, {
    global: false,
    errorResponseBuilder: (_req, c) => {
      const retryAfterS = Math.max(1, Math.ceil(c.ttl / 1000));
      return new HttpError(429, `too many attempts from this address; try again in ${retryAfterS} s`, undefined, retryAfterS);
    },
  });
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'gatekeeper management API', version: packageVersion },
      components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: 'gk_session' } } },
      security: [{ session: [] }],
    },
  });

  app.get('/api/v1/openapi.json', {
    schema: { summary: 'This API as OpenAPI 3', response: s.responses({ 200: { type: 'object', additionalProperties: true } }) },
    config: { role: 'viewer' },
  }, async () => app.swagger());
  authRoutes(app, ctx);
  statusRoutes(app, ctx);
  policyRoutes(app, ctx);
  eventRoutes(app, ctx);
  userRoutes(app, ctx);
  settingsRoutes(app, ctx);
  metricsRoutes(app, ctx);
  await serveUi(app, opts.uiDir ?? DEFAULT_UI_DIR);

  hub.onEvent((event) => ctx.publish(event));
  const active = store.activePolicy();
  if (active) hub.setActivePolicy(active.text, active.hash);
  try {
    sink.configure(store.settings().syslog.targets);
  } catch (err) {
    // A hand-edited settings file must not keep management from starting.
    log.error({ err }, 'stored syslog targets refused; export disabled until they are fixed in settings');
    sink.configure([]);
  }
  app.addHook('onClose', async () => eventLog.close());
  return app;
}

/** While no user exists: a one-time setup token in the log and in <stateDir>/setup-token (0600). */
function openSetup(ctx: MgmtContext, log: FastifyBaseLogger): void {
  const path = join(ctx.store.dir, SETUP_TOKEN_FILE);
  if (ctx.store.users().length > 0) {
    rmSync(path, { force: true });
    return;
  }
  ctx.setupToken = randomBytes(24).toString('base64url');
  writeFileAtomic(path, `${ctx.setupToken}\n`, { mode: 0o600 });
  log.warn({ setupToken: ctx.setupToken, file: path },
    'no user exists: create the first admin in the web UI with this one-time setup token, or with `gatekeeper user add NAME --role admin`');
}

async function serveUi(app: FastifyInstance, uiDir: string): Promise<void> {
  const uplotDir = join(dirname(require.resolve('uplot/package.json')), 'dist');
  await app.register(fastifyStatic, { root: uplotDir, prefix: '/ui/vendor/uplot/', decorateReply: false, index: false });
  if (!existsSync(join(uiDir, 'index.html'))) {
    app.log.warn({ uiDir }, 'the web UI is not installed; serving the API only');
    return;
  }
  await app.register(fastifyStatic, { root: uiDir, prefix: '/ui/', index: false });
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.sendFile('index.html'));
}
