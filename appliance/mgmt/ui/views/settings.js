// @ts-check
// Settings: syslog targets for the SIEM (add, edit, remove, send a test message, live status per
// target), access settings, and the signed-in user's own password.

import {
  badge, confirmDialog, field, formatCount, formatTime, h, message, notify, openDialog, poll, replace, select, table,
} from '../lib.js';

/** Labels for the transports and formats of the syslog target schema (api-types SyslogTargetIn). */
const transports = /** @type {[SyslogTarget['transport'], string][]} */ ([['udp', 'UDP'], ['tcp', 'TCP'], ['tls', 'TLS (TCP)'],
  ['relp', 'RELP (acknowledged: no loss, no duplicates)']]);
/** The usual port of each transport, followed when the user has not picked another. */
const usualPorts = { udp: '514', tcp: '514', tls: '6514', relp: '2514' };
const formats = /** @type {[SyslogTarget['format'], string][]} */ ([['rfc5424', 'RFC 5424 (structured)'], ['rfc3164', 'RFC 3164 (BSD)'], ['cef', 'CEF (ArcSight)']]);

/**
 * A syslog target as sent to the API; what it returns fits too (TLS key never returned, only hasKey).
 * @typedef {import('../api-types').SyslogTargetIn} SyslogTarget
 */

/**
 * @param {HTMLElement} root
 * @param {import('../app.js').ViewContext} ctx
 */
export function mount(root, ctx) {
  const canEdit = ctx.can('settings');
  const targetsEl = h('div');
  const accessEl = h('div');
  const add = h('button', { type: 'button', class: 'primary' }, 'Add target…');
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Settings')),
    h('section', { class: 'card', 'aria-labelledby': 'syslog-title' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'syslog-title' }, 'Syslog targets (SIEM export)'),
        canEdit ? add : h('span', { class: 'muted' }, `Read-only: your role (${ctx.user.role}) cannot change settings.`)),
      h('p', { class: 'muted' }, 'Every event is also written to the local event log. TCP and TLS targets that are down are spooled on disk and caught up when they return.'),
      targetsEl),
    h('section', { class: 'card', 'aria-labelledby': 'access-title' }, h('h2', { id: 'access-title' }, 'Access'), accessEl),
    passwordCard(ctx));

  /** @type {SyslogTarget[]} */
  let targets = [];
  /** @type {Map<string, import('../api-types').SyslogStatus['targets'][number]>} */
  let status = new Map();

  const statusCell = (/** @type {SyslogTarget} */ t) => {
    const s = status.get(t.name);
    if (!t.enabled) return badge('disabled', 'plain');
    if (!s) return badge('no status yet', 'plain');
    return h('div', { class: 'target-status' },
      badge(s.connected ? 'connected' : 'not connected', s.connected ? 'ok' : 'bad'),
      h('span', { class: 'num' }, ` sent ${formatCount(s.sent)} · spooled ${formatCount(s.spooled)} · dropped ${formatCount(s.droppedFromSpool)}`),
      s.spoolDiskFull ? h('div', { class: 'text-bad small' }, 'The state disk is full: new events for this target are dropped, not spooled, until there is room again.') : null,
      s.droppedDiskFull ? h('div', { class: 'small' }, `${formatCount(s.droppedDiskFull)} events dropped because the disk was full`) : null,
      s.lastError ? h('div', { class: 'text-bad small' }, `${s.lastError}${s.lastErrorAt ? ` (${formatTime(s.lastErrorAt)})` : ''}`) : null);
  };

  const render = () => {
    replace(targetsEl, table('Syslog targets', ['Name', 'Destination', 'Format', 'Sends', 'Status', ''], targets.map((t) => [
      h('strong', null, t.name),
      h('code', null, `${t.transport}://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`),
      t.format,
      `${t.minSeverity} and more severe${t.types.length ? ` · ${t.types.length} event types` : ' · all types'}`,
      statusCell(t),
      h('div', { class: 'row-actions' },
        h('button', { type: 'button', 'aria-label': `Send a test message to ${t.name}`, onclick: () => sendTest(t) }, 'Send test'),
        canEdit ? h('button', { type: 'button', 'aria-label': `Edit ${t.name}`, onclick: () => edit(t) }, 'Edit…') : null,
        canEdit ? h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${t.name}`, onclick: () => remove(t) }, 'Remove') : null),
    ]), 'No syslog target: events are only kept on the appliance.'));
  };

  /** @param {SyslogTarget[]} next */
  const save = async (next) => {
    const result = await ctx.api('PUT', '/settings/syslog', { targets: next });
    targets = result.targets;
    render();
  };

  /** @param {SyslogTarget} t */
  const sendTest = async (t) => {
    try {
      const result = await ctx.api('POST', '/settings/syslog/test', { target: t.name });
      if (result.ok) notify(`Test message sent to ${t.name}.`);
      else notify(`Test message to ${t.name} failed: ${result.error ?? 'unknown error'}`, 'error');
    } catch (err) {
      ctx.reportError(err);
    }
  };
  /** @param {SyslogTarget | null} t */
  const edit = async (t) => {
    const updated = await targetDialog(ctx.meta, t, targets.filter((x) => x !== t).map((x) => x.name), async (candidate) => {
      await save(t ? targets.map((x) => (x === t ? candidate : x)) : [...targets, candidate]);
    });
    if (updated) notify(`Syslog target ${updated} saved.`);
  };
  /** @param {SyslogTarget} t */
  const remove = async (t) => {
    if (!await confirmDialog('Remove syslog target', `Stop sending events to ${t.name} and discard its spool?`, `Remove ${t.name}`)) return;
    try {
      await save(targets.filter((x) => x !== t));
      notify(`Syslog target ${t.name} removed.`);
    } catch (err) {
      ctx.reportError(err);
    }
  };
  add.addEventListener('click', () => edit(null));

  ctx.api('GET', '/settings').then((s) => {
    targets = s.syslog.targets;
    render();
    replace(accessEl, accessSettings(ctx, s));
  }, (err) => replace(targetsEl, message(`Could not load settings: ${err.message}`, 'error')));

  const stop = poll(3000, async () => {
    const s = await ctx.api('GET', '/settings/syslog/status');
    status = new Map(s.targets.map((x) => [x.name, x]));
    render();
  }, () => { /* status is optional decoration: the table stays usable without it */ });
  return stop;
}

/**
 * Add or edit a target. `save` sends the whole list; its errors are shown in the dialog.
 * @param {import('../api-types').Meta} meta the event types and severities to offer
 * @param {SyslogTarget | null} target
 * @param {string[]} otherNames
 * @param {(t: SyslogTarget) => Promise<void>} save
 * @returns {Promise<string | null>} the saved name
 */
async function targetDialog(meta, target, otherNames, save) {
  const { eventTypes, severities } = meta;
  const t = target ?? /** @type {SyslogTarget} */ ({ name: '', enabled: true, host: '', port: 514, transport: 'udp', format: 'rfc5424', minSeverity: 'info', types: [] });
  const name = /** @type {HTMLInputElement} */ (h('input', { required: true, value: t.name, autocomplete: 'off' }));
  const enabled = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'target-enabled', checked: t.enabled }));
  const host = /** @type {HTMLInputElement} */ (h('input', { required: true, value: t.host, autocomplete: 'off', placeholder: 'siem.example.net or 192.0.2.10' }));
  const port = /** @type {HTMLInputElement} */ (h('input', { type: 'number', min: 1, max: 65535, required: true, value: String(t.port) }));
  const transport = select('Transport', transports, t.transport);
  const format = select('Format', formats, t.format);
  const minSeverity = select('Minimum severity', severities.map((s) => /** @type {[string, string]} */ ([s, s])), t.minSeverity);
  const types = eventTypes.map((type) => {
    const box = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', value: type, id: `type-${type}`, checked: t.types.includes(type) }));
    return { type, box, el: h('div', { class: 'check' }, box, h('label', { for: box.id }, type)) };
  });
  const serverName = /** @type {HTMLInputElement} */ (h('input', { value: t.tls?.serverName ?? '', autocomplete: 'off', placeholder: 'defaults to the host' }));
  const ca = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 3, class: 'code', value: t.tls?.ca ?? '', placeholder: '-----BEGIN CERTIFICATE----- (system CAs when empty)' }));
  const cert = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 3, class: 'code', placeholder: t.tls?.hasCert ? 'a certificate is stored: leave empty to keep it' : 'only for receivers that require a client certificate' }));
  const key = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 3, class: 'code', placeholder: t.tls?.hasKey ? 'a key is stored: leave empty to keep it' : '-----BEGIN PRIVATE KEY-----' }));
  const tlsFields = h('fieldset', null, h('legend', null, 'TLS'),
    field('Server name to verify', serverName), field('CA certificate (PEM)', ca), field('Client certificate (PEM)', cert), field('Client key (PEM)', key));
  const transportSelect = /** @type {HTMLSelectElement} */ (transport.querySelector('select'));
  const showTls = () => { tlsFields.hidden = transportSelect.value !== 'tls'; };
  transportSelect.addEventListener('change', () => {
    // Follow the usual port for the transport unless the user chose another.
    if (Object.values(usualPorts).includes(port.value)) port.value = usualPorts[/** @type {SyslogTarget['transport']} */ (transportSelect.value)];
    showTls();
  });
  showTls();
  const feedback = h('div', { class: 'feedback' });
  /** @type {string | null} */
  let saved = null;

  await openDialog(target ? `Edit syslog target ${target.name}` : 'Add syslog target', (close) => {
    const form = h('form', { class: 'target-form' },
      h('div', { class: 'grid-2' },
        field('Name', name),
        h('div', { class: 'check check-field' }, enabled, h('label', { for: 'target-enabled' }, 'Enabled')),
        field('Host', host), field('Port', port),
        transport, format, minSeverity),
      h('fieldset', null, h('legend', null, 'Event types (none checked: all)'), h('div', { class: 'type-grid' }, types.map((x) => x.el))),
      tlsFields,
      feedback,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close('') }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary' }, 'Save')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const problems = [];
      const n = name.value.trim();
      if (!n) problems.push('Name is required.');
      if (otherNames.includes(n)) problems.push(`Another target is already named ${n}.`);
      if (!host.value.trim()) problems.push('Host is required.');
      const p = Number(port.value);
      if (!Number.isInteger(p) || p < 1 || p > 65535) problems.push('Port must be a whole number from 1 to 65535.');
      if (problems.length) return replace(feedback, message(problems.join(' '), 'error'));
      /** @type {SyslogTarget} */
      const candidate = {
        name: n, enabled: enabled.checked, host: host.value.trim(), port: p,
        // The selects offer only the schema's values.
        transport: /** @type {SyslogTarget['transport']} */ (transportSelect.value),
        format: /** @type {SyslogTarget['format']} */ (/** @type {HTMLSelectElement} */ (format.querySelector('select')).value),
        minSeverity: /** @type {SyslogTarget['minSeverity']} */ (/** @type {HTMLSelectElement} */ (minSeverity.querySelector('select')).value),
        types: types.filter((x) => x.box.checked).map((x) => x.type),
      };
      if (candidate.transport === 'tls') {
        // Only what was entered: an absent key keeps the stored one (hasKey).
        candidate.tls = {};
        if (serverName.value.trim()) candidate.tls.serverName = serverName.value.trim();
        if (ca.value.trim()) candidate.tls.ca = ca.value.trim();
        if (cert.value.trim()) candidate.tls.cert = cert.value.trim();
        else if (t.tls?.hasCert) candidate.tls.hasCert = true;
        if (key.value.trim()) candidate.tls.key = key.value.trim();
        else if (t.tls?.hasKey) candidate.tls.hasKey = true;
      }
      try {
        await save(candidate);
        saved = n;
        close('ok');
      } catch (err) {
        replace(feedback, message(err instanceof Error ? err.message : String(err), 'error'));
      }
    });
    return form;
  }, 'dialog-wide');
  return saved;
}

/**
 * Session timeout and the metrics token: shown to everyone, changed by admins.
 * @param {import('../app.js').ViewContext} ctx
 * @param {{ metricsToken: boolean, sessionTimeoutMin: number }} settings
 */
function accessSettings(ctx, settings) {
  const admin = ctx.can('users');
  const feedback = h('div', { class: 'feedback' });
  const tokenState = h('span');
  const showToken = (/** @type {boolean} */ set) => replace(tokenState, set
    ? h('span', null, badge('set', 'ok'), ' Prometheus scrapes ', h('code', null, '/metrics'), ' with ', h('code', null, 'Authorization: Bearer <token>'))
    : h('span', null, badge('not set', 'plain'), ' ', h('code', null, '/metrics'), ' needs a signed-in session'));
  showToken(settings.metricsToken);
  const summary = h('dl', { class: 'kv' },
    h('dt', null, 'Session timeout'), h('dd', null, `${settings.sessionTimeoutMin} min of inactivity`),
    h('dt', null, 'Metrics token'), h('dd', null, tokenState));
  if (!admin) return h('div', null, summary, h('p', { class: 'muted' }, 'Only admins change these.'));

  /** @param {() => Promise<string>} action returns what to report */
  const run = async (action) => {
    try {
      replace(feedback, message(await action(), 'ok'));
    } catch (err) {
      replace(feedback, message(err instanceof Error ? err.message : String(err), 'error'));
    }
  };
  const timeout = /** @type {HTMLInputElement} */ (h('input', { type: 'number', min: 1, max: 720, value: String(settings.sessionTimeoutMin) }));
  const timeoutForm = h('form', { class: 'inline-form' }, field('Session timeout (minutes)', timeout, 'Idle time before a session ends (1 to 720).'),
    h('button', { type: 'submit' }, 'Save timeout'));
  timeoutForm.addEventListener('submit', (e) => {
    e.preventDefault();
    run(async () => {
      const n = Number(timeout.value);
      if (!Number.isInteger(n) || n < 1 || n > 720) throw new Error('The session timeout must be a whole number of minutes from 1 to 720.');
      const r = await ctx.api('PUT', '/settings/session', { sessionTimeoutMin: n });
      return `Sessions now end after ${r.sessionTimeoutMin} min of inactivity.`;
    });
  });
  const token = /** @type {HTMLInputElement} */ (h('input', { type: 'password', autocomplete: 'off', minlength: 16, maxlength: 256 }));
  const removeToken = h('button', { type: 'button', class: 'danger' }, 'Remove token');
  const tokenForm = h('form', { class: 'inline-form' }, field('New metrics token', token, '16 to 256 characters; only its hash is stored.'),
    h('button', { type: 'submit' }, 'Set token'), removeToken);
  tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    run(async () => {
      if (token.value.length < 16) throw new Error('The metrics token needs at least 16 characters.');
      await ctx.api('PUT', '/settings/metrics-token', { token: token.value });
      token.value = '';
      showToken(true);
      return 'Metrics token set.';
    });
  });
  removeToken.addEventListener('click', () => run(async () => {
    await ctx.api('PUT', '/settings/metrics-token', { token: null });
    showToken(false);
    return 'Metrics token removed: /metrics needs a signed-in session.';
  }));
  return h('div', null, summary, h('div', { class: 'grid-2' }, timeoutForm, tokenForm), feedback);
}

/** @param {import('../app.js').ViewContext} ctx */
function passwordCard(ctx) {
  const min = ctx.meta.passwordMinLength;
  const current = /** @type {HTMLInputElement} */ (h('input', { type: 'password', autocomplete: 'current-password', required: true }));
  const next = /** @type {HTMLInputElement} */ (h('input', { type: 'password', autocomplete: 'new-password', required: true }));
  const confirm = /** @type {HTMLInputElement} */ (h('input', { type: 'password', autocomplete: 'new-password', required: true }));
  const feedback = h('div', { class: 'feedback' });
  const form = h('form', { class: 'narrow-form' },
    field('Current password', current), field('New password', next, `At least ${min} characters.`), field('Confirm new password', confirm),
    feedback, h('div', { class: 'actions actions-left' }, h('button', { type: 'submit', class: 'primary' }, 'Change password')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (next.value.length < min) return replace(feedback, message(`The new password needs at least ${min} characters.`, 'error'));
    if (next.value !== confirm.value) return replace(feedback, message('The two new passwords differ.', 'error'));
    try {
      await ctx.api('POST', '/auth/password', { current: current.value, password: next.value });
      for (const input of [current, next, confirm]) input.value = '';
      replace(feedback, message('Password changed.', 'ok'));
    } catch (err) {
      replace(feedback, message(err instanceof Error ? err.message : String(err), 'error'));
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'account-title' },
    h('h2', { id: 'account-title' }, `Your account: ${ctx.user.name} (${ctx.user.role})`), form);
}
