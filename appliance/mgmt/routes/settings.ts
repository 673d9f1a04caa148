// /api/v1/settings (registered with that prefix): syslog targets and liveness probes (operator+),
// metrics token and session timeout (admin). TLS client keys and certificates are stored but never sent back: clients
// see hasKey/hasCert and send hasKey: true / hasCert: true to keep what is stored. A plugin: the
// state and the sink are decorators; nothing here keeps state.

import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hashMetricsToken, sessionOf } from '../auth/access';
import { HttpError } from '../http-error';
import * as s from '../schemas';
import { validateTarget } from '../siem/exporter';
import { livenessProblems, livenessSettings, type LivenessSettings, type SyslogTarget, type SyslogTlsOptions } from '../state/settings';

type TlsInput = SyslogTlsOptions & { hasKey?: boolean; hasCert?: boolean };
type TargetInput = Omit<SyslogTarget, 'tls'> & { tls?: TlsInput };

function publicTarget(t: SyslogTarget) {
  const { tls, ...rest } = t;
  if (!tls) return rest;
  return { ...rest, tls: { ca: tls.ca, serverName: tls.serverName, hasKey: tls.key !== undefined, hasCert: tls.cert !== undefined } };
}

/** The target to store, keeping the previously stored key/cert where the client asks to. */
function storedTarget(input: TargetInput, index: number, previous: SyslogTarget | undefined): SyslogTarget {
  const { tls, ...rest } = input;
  if (!tls) return rest;
  const where = `targets[${index}].tls`;
  const keep = (given: string | undefined, keepStored: boolean | undefined, stored: string | undefined, field: string) => {
    if (given !== undefined || !keepStored) return given;
    if (stored === undefined) throw new HttpError(400, `${where}.has${field}: there is no stored ${field.toLowerCase()} to keep`);
    return stored;
  };
  const key = keep(tls.key, tls.hasKey, previous?.tls?.key, 'Key');
  const cert = keep(tls.cert, tls.hasCert, previous?.tls?.cert, 'Cert');
  if ((key === undefined) !== (cert === undefined)) throw new HttpError(400, `${where}: a client key needs its certificate, and the reverse`);
  const out: SyslogTlsOptions = {};
  if (tls.ca !== undefined) out.ca = tls.ca;
  if (tls.serverName !== undefined) out.serverName = tls.serverName;
  if (key !== undefined && cert !== undefined) Object.assign(out, { key, cert });
  return { ...rest, tls: out };
}

/**
 * A target as the audit trail shows it: everything that changes where events go and who may read
 * them, with the CA as a fingerprint and the client key and certificate as set or not (never the PEM).
 */
function auditTarget(t: SyslogTarget): string {
  const tls = t.tls ?? {};
  const ca = tls.ca ? createHash('sha256').update(tls.ca).digest('hex').slice(0, 12) : '-';
  return `${t.name}=${t.transport}://${t.host}:${t.port}${t.enabled ? '' : ' (disabled)'} ${t.format} ${t.minSeverity}` +
    ` types=${t.types.join('|') || 'all'} ca=${ca} key=${tls.key ? 'set' : '-'} cert=${tls.cert ? 'set' : '-'} sn=${tls.serverName ?? '-'}`;
}

/** The liveness settings as the audit trail shows them: every value that changes what is sent. */
function auditLiveness(l: LivenessSettings): string {
  const timing = (g: { intervalSeconds?: number; timeoutMs?: number; downAfter?: number }) =>
    [g.intervalSeconds === undefined ? '' : ` every ${g.intervalSeconds}s`, g.timeoutMs === undefined ? '' : ` timeout ${g.timeoutMs}ms`,
      g.downAfter === undefined ? '' : ` down after ${g.downAfter}`].join('');
  const groups = Object.entries(l.groups).map(([name, g]) => `${name}=${g.enabled ? 'on' : 'off'}${timing(g)}`);
  return `${l.enabled ? 'on' : 'off'}${timing(l)}, at most ${l.maxProbesPerSecond}/s; groups: ${groups.join(', ') || 'none'}`;
}

export async function settingsRoutes(app: FastifyInstance): Promise<void> {
  const audit = (req: FastifyRequest, action: string, detail: string) =>
    app.recorder.audit({ type: 'admin.change', severity: 'notice', user: sessionOf(req).user, from: req.ip, action, detail });

  app.get('', {
    schema: { summary: 'Settings', response: s.responses({ 200: s.settingsResponse }) },
    config: { role: 'viewer' },
  }, async () => {
    const st = app.store.settings();
    return { syslog: { targets: st.syslog.targets.map(publicTarget) }, metricsToken: st.metricsTokenHash !== null,
      sessionTimeoutMin: st.sessionTimeoutMin };
  });

  app.put('/syslog', {
    schema: { summary: 'Replace the syslog targets', body: s.syslogBody, response: s.responses({ 200: s.syslogResponse }) },
    config: { role: 'operator' },
  }, async (req: FastifyRequest<{ Body: s.SyslogBody }>) => {
    const st = app.store.settings();
    const seen = new Set<string>();
    const targets = req.body.targets.map((t, i) => {
      if (seen.has(t.name)) throw new HttpError(400, `targets[${i}].name: '${t.name}' is used by another target`);
      seen.add(t.name);
      const target = storedTarget(t, i, st.syslog.targets.find((old) => old.name === t.name));
      const problems = validateTarget(target);
      if (problems.length) throw new HttpError(400, `targets[${i}]: ${problems.join('; ')}`);
      return target;
    });
    app.store.saveSettings({ ...st, syslog: { targets } });
    app.sink.configure(targets);
    audit(req, 'settings.syslog', targets.map(auditTarget).join(', ') || 'no targets');
    return { targets: targets.map(publicTarget) };
  });

  app.post('/syslog/test', {
    schema: { summary: 'Send a test message to one target', body: s.syslogTestBody, response: s.responses({ 200: s.syslogTestResponse }) },
    config: { role: 'operator' },
  }, async (req: FastifyRequest<{ Body: s.SyslogTestBody }>) => {
    const name = req.body.target;
    if (!app.store.settings().syslog.targets.some((t) => t.name === name)) throw new HttpError(404, `target: no syslog target '${name}'`);
    return app.sink.sendTest(name);
  });

  app.get('/syslog/status', {
    schema: { summary: 'Delivery status per syslog target', response: s.responses({ 200: s.syslogStatusResponse }) },
    config: { role: 'viewer' },
  }, async () => ({ targets: app.sink.status() }));

  app.get('/liveness', {
    schema: { summary: 'Liveness probes (ICMP echo to the assets of chosen policy groups)', response: s.responses({ 200: s.livenessSettings }) },
    config: { role: 'viewer' },
  }, async () => livenessSettings(app.store.settings()));

  app.put('/liveness', {
    schema: { summary: 'Replace the liveness probe settings', body: s.livenessSettings, response: s.responses({ 200: s.livenessSettings }) },
    config: { role: 'operator' },
  }, async (req: FastifyRequest<{ Body: s.LivenessSettingsBody }>) => {
    const liveness: LivenessSettings = req.body;
    const problems = livenessProblems(liveness);
    if (problems.length) throw new HttpError(400, problems.join('; '));
    app.store.saveSettings({ ...app.store.settings(), liveness });
    audit(req, 'settings.liveness', auditLiveness(liveness));
    return liveness;
  });

  app.put('/metrics-token', {
    schema: { summary: 'Set (or with null remove) the bearer token that may read /metrics', body: s.metricsTokenBody,
      response: s.responses({ 204: s.noContent }) },
    config: { role: 'admin' },
  }, async (req: FastifyRequest<{ Body: s.MetricsTokenBody }>, reply) => {
    const { token } = req.body;
    app.store.saveSettings({ ...app.store.settings(), metricsTokenHash: token === null ? null : hashMetricsToken(token) });
    audit(req, 'settings.metrics_token', token === null ? 'removed' : 'set');
    return reply.code(204).send();
  });

  app.put('/session', {
    schema: { summary: 'Session idle timeout', body: s.sessionSettingsBody, response: s.responses({ 200: s.sessionSettingsResponse }) },
    config: { role: 'admin' },
  }, async (req: FastifyRequest<{ Body: s.SessionSettingsBody }>) => {
    const { sessionTimeoutMin } = req.body;
    app.store.saveSettings({ ...app.store.settings(), sessionTimeoutMin });
    audit(req, 'settings.session', `idle timeout ${sessionTimeoutMin} min`);
    return { sessionTimeoutMin };
  });
}
