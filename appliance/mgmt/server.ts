// The management service's HTTP side: one fastify instance serving the API (/api/v1), the
// Prometheus metrics (/metrics) and the web UI's static files, over HTTPS unless plain HTTP is
// asked for. The dataplane side (DataplaneHub) and the SIEM export (EventSink) are handed in.
// buildServer wires: state and services → decorators (decorators.ts) → root hooks and security
// plugins → one encapsulated plugin per feature, each under its prefix. The limits against abuse
// (body sizes, timeouts, connection caps: limits.ts) are set here on fastify and its Node server,
// and so is the answer to a state write that failed (507 on a full disk). No route or domain logic here.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest,
  type RouteOptions } from 'fastify';
import { projectRoot } from '../paths';
import { guardRoutes, isProtectedUrl } from './auth/access';
import { LoginThrottle } from './auth/lockout';
import { SessionStore } from './auth/sessions';
import { SetupToken } from './auth/setup-token';
import { ensureCertificate } from './auth/tls';
import { decorate, type MgmtDecorators } from './decorators';
import type { DataplaneHub } from './dataplanes/types';
import { EventLog } from './events-log';
import { HttpError, replyError, replyNotFound } from './http-error';
import { INVENTORY_FILE, openInventory } from './inventory/inventory';
import { LivenessProber } from './inventory/liveness';
import { LEARN_FILE, LearnService, PolicyModeControl, systemClock } from './learn/learn-service';
import type { Inventory } from './inventory/types';
import { clientErrorHandler, fastifyLimits, guardConnections, LimitCounters, limitBody, nodeServerOptions } from './limits';
import { MgmtMetrics } from './metrics';
import { assetRoutes } from './routes/assets';
import { authRoutes } from './routes/auth';
import { eventRoutes } from './routes/events';
import { metaRoutes } from './routes/meta';
import { metricsRoutes } from './routes/metrics';
import { learnRoutes } from './routes/learn';
import { policyRoutes } from './routes/policy';
import { settingsRoutes } from './routes/settings';
import { statusRoutes } from './routes/status';
import { trafficRoutes } from './routes/traffic';
import { uiRoutes } from './routes/ui';
import { userRoutes } from './routes/users';
import { PolicyService } from './services/policy';
import { Recorder } from './services/recorder';
import { UserService } from './services/users';
import type { EventSink } from './siem/types';
import { isDiskFull, StateWriteError } from './state/atomic';
import { livenessSettings } from './state/settings';
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
  /**
   * The asset inventory, when the caller opened it (gatekeeper mgmt does, to hand it to the hub too)
   * and closes it; absent, one is opened at <stateDir>/inventory.db and closed with the app.
   */
  inventory?: Inventory;
}

export const DEFAULT_UI_DIR = join(projectRoot, 'appliance', 'mgmt', 'ui');
export const packageVersion = (JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { parts, limits } = await openParts(opts);
  const https = opts.http ? null : await ensureCertificate(opts.stateDir, opts.log);
  // One ajv for all routes; unknown body properties are refused (400), not silently removed.
  const app = fastify({
    loggerInstance: opts.log,
    ...(https ? { https: { ...https, ...nodeServerOptions } } : { http: nodeServerOptions }),
    ...fastifyLimits,
    clientErrorHandler: clientErrorHandler(limits),
    // The UI polls every second; errors and the service's own messages are what the log is for.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  decorate(app, parts);
  guardConnections(app.server, limits);

  app.setErrorHandler((err: FastifyError & Partial<HttpError>, req, reply) => replyLimitOrStateError(err, req, reply, limits));
  app.setNotFoundHandler(replyNotFound);
  app.addHook('onRoute', limitBody);
  if (opts.onRoute) app.addHook('onRoute', opts.onRoute);
  guardRoutes(app, parts);
  app.addHook('onResponse', async (req, reply) => {
    if (req.routeOptions.url && isProtectedUrl(req.routeOptions.url)) {
      app.metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url, status: String(reply.statusCode) });
    }
  });
  await registerSecurity(app, opts.http);
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'gatekeeper management API', version: packageVersion },
      components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: 'gk_session' } } },
      security: [{ session: [] }],
    },
  });

  await app.register(metaRoutes, { prefix: '/api/v1' });
  await app.register(authRoutes, { prefix: '/api/v1/auth' });
  await app.register(statusRoutes, { prefix: '/api/v1/status' });
  await app.register(trafficRoutes, { prefix: '/api/v1' });
  await app.register(assetRoutes, { prefix: '/api/v1' });
  await app.register(policyRoutes, { prefix: '/api/v1/policy' });
  await app.register(learnRoutes, { prefix: '/api/v1/learn' });
  await app.register(eventRoutes, { prefix: '/api/v1' });
  await app.register(userRoutes, { prefix: '/api/v1/users' });
  await app.register(settingsRoutes, { prefix: '/api/v1/settings' });
  await app.register(metricsRoutes, { prefix: '/metrics' });
  await app.register(uiRoutes, { uiDir: opts.uiDir ?? DEFAULT_UI_DIR });

  start(parts, opts.log);
  const liveness = new LivenessProber({
    inventory: parts.inventory,
    settings: () => livenessSettings(parts.store.settings()),
    activePolicy: () => parts.policies.active(),
    onEvent: (event) => parts.recorder.publish(event),
    log: opts.log.child({ component: 'liveness' }),
  });
  parts.metrics.watchLiveness(liveness);
  liveness.start();
  app.addHook('onClose', async () => {
    liveness.stop();
    parts.learn.close();
    if (opts.inventory === undefined) parts.inventory.close();
    parts.eventLog.close();
  });
  return app;
}

/**
 * The answers fastify's own handler does not give in the API's terms: a failed state write (507
 * on a full disk, naming the file), a body over the route's limit (413, naming the limit), and
 * Retry-After on every answer that says when to try again. The rest is replyError's.
 */
function replyLimitOrStateError(err: FastifyError & Partial<HttpError>, req: FastifyRequest, reply: FastifyReply, limits: LimitCounters) {
  const diskFull = isDiskFull(err) || err.statusCode === 507;
  if (diskFull || err instanceof StateWriteError) {
    limits.stateWriteErrors.inc({ code: diskFull ? 'ENOSPC' : (err as StateWriteError).code });
    req.log.error({ err, route: req.routeOptions.url }, diskFull ? 'a change could not be saved: the state disk is full' : 'a change could not be saved');
    return reply.code(diskFull ? 507 : 500).send({ error: diskFull ? `${err.message}; free space on the state disk and try again` : err.message });
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return reply.code(413).send({ error: `request body too large: ${req.method} ${req.routeOptions.url} takes at most ${req.routeOptions.bodyLimit} bytes` });
  }
  if (err instanceof HttpError && err.retryAfterS && err.statusCode !== 429) void reply.header('retry-after', String(err.retryAfterS));
  return replyError(err, req, reply);
}

/** The state, the services and what they share: everything the decorators hand to the plugins, and the limits' counters. */
async function openParts(opts: ServerOptions): Promise<{ parts: MgmtDecorators; limits: LimitCounters }> {
  const { log, hub, events: sink, stateDir } = opts;
  const store = StateStore.open(stateDir, log);
  const eventLog = new EventLog(stateDir, log);
  const sessions = new SessionStore(() => store.settings().sessionTimeoutMin * 60_000, (session, reason) => {
    limits.sessionsEvicted.inc({ reason });
    log.warn({ user: session.user, reason }, 'ended the least recently used session to make room for a new login');
  });
  const metrics = new MgmtMetrics(() => sessions.count());
  const inventory = opts.inventory ?? openInventory({ file: join(stateDir, INVENTORY_FILE), log });
  metrics.watchInventory(inventory);
  const throttle = new LoginThrottle();
  const limits = new LimitCounters(metrics.registry, log, () => throttle.tracked());
  const recorder = new Recorder(store, eventLog, sink, metrics, log);
  const policies = new PolicyService(store, hub, recorder);
  if (opts.initialPolicy) {
    const refused = await policies.seed(opts.initialPolicy.text, opts.initialPolicy.file);
    if (refused) {
      eventLog.close();
      if (opts.inventory === undefined) inventory.close();
      throw new Error(`initial policy refused:\n${refused}`);
    }
  }
  const learn = new LearnService({
    inventory, modes: new PolicyModeControl(policies),
    activeText: () => policies.active()?.text ?? null,
    pairs: () => hub.pairs().map((p) => p.pair),
    clock: systemClock, stateFile: join(stateDir, LEARN_FILE),
    onEvent: (event) => recorder.publish(event), log,
  });
  const setup = new SetupToken(stateDir);
  setup.issue(store.users().length, log);
  const parts = {
    store, sessions, throttle, eventLog, hub, sink, metrics, recorder, policies, inventory, learn,
    users: new UserService(store), setup,
    runtime: { version: packageVersion, startedAt: Date.now(), secureCookies: !opts.http },
  };
  return { parts, limits };
}

/** Connects the parts: dataplane and inventory events to the recorder, the active policy to the hub, the SIEM targets to the sink. */
function start(parts: MgmtDecorators, log: FastifyBaseLogger): void {
  parts.hub.onEvent((event) => parts.recorder.publish(event));
  parts.inventory.onEvent((event) => parts.recorder.publish(event));
  parts.policies.announce();
  // A period that ended while management was down ends now (its mode restore is a policy apply, which
  // a dataplane connecting later receives as the active policy).
  parts.learn.resume().catch((err: Error) => log.error({ err }, 'learning sessions could not be resumed'));
  try {
    parts.sink.configure(parts.store.settings().syslog.targets);
  } catch (err) {
    // A hand-edited settings file must not keep management from starting.
    log.error({ err }, 'stored syslog targets refused; export disabled until they are fixed in settings');
    parts.sink.configure([]);
  }
}

/** Cookies, security headers (a strict CSP, HSTS over HTTPS) and rate limits, for every route. */
async function registerSecurity(app: FastifyInstance, http: boolean): Promise<void> {
  await app.register(fastifyCookie);
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'self'"], formAction: ["'self'"], objectSrc: ["'none'"],
      },
    },
    hsts: http ? false : { maxAge: 31_536_000, includeSubDomains: true },
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
}
