// @ts-check
// Events: what the dataplanes and management reported (flows, denied traffic, refused Modbus requests,
// links, policy, logins), filtered on the appliance by type, severity and pair, with text search and
// paging to older events; and the audit trail of every change made through management, with policy diffs.

import {
  addressRange, badge, connection, field, formatCount, formatDuration, formatTime, functionCounts, h, message, poll, replace, select, table,
  violationBadge,
} from '../lib.js';

/**
 * @param {HTMLElement} root
 * @param {import('../app.js').ViewContext} ctx
 */
export function mount(root, ctx) {
  const eventsTab = h('button', { type: 'button', role: 'tab', id: 'tab-events', 'aria-controls': 'panel-events', 'aria-selected': 'true' }, 'Events');
  const auditTab = h('button', { type: 'button', role: 'tab', id: 'tab-audit', 'aria-controls': 'panel-audit', 'aria-selected': 'false', tabindex: '-1' }, 'Audit trail');
  const eventsPanel = h('div', { role: 'tabpanel', id: 'panel-events', 'aria-labelledby': 'tab-events' });
  const auditPanel = h('div', { role: 'tabpanel', id: 'panel-audit', 'aria-labelledby': 'tab-audit', hidden: true });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Events')),
    h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Events' }, eventsTab, auditTab),
    eventsPanel, auditPanel);

  const eventList = createEventList(ctx);
  const audit = createAudit(ctx);
  replace(eventsPanel, eventList.el);
  replace(auditPanel, audit.el);

  /** @param {HTMLElement} tab */
  const selectTab = (tab) => {
    for (const [t, panel] of [[eventsTab, eventsPanel], [auditTab, auditPanel]]) {
      t.setAttribute('aria-selected', String(t === tab));
      t.setAttribute('tabindex', t === tab ? '0' : '-1');
      panel.hidden = t !== tab;
    }
    if (tab === auditTab) audit.load();
  };
  for (const tab of [eventsTab, auditTab]) {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const other = tab === eventsTab ? auditTab : eventsTab;
      selectTab(other);
      other.focus();
    });
  }
  return eventList.stop;
}

/** @param {import('../app.js').ViewContext} ctx */
function createEventList(ctx) {
  // The server's lists (GET /meta): event types, and severities from the most severe.
  const { eventTypes, severities } = ctx.meta;
  const type = select('Type', [['', 'All types'], ...eventTypes.map((t) => /** @type {[string, string]} */ ([t, t]))]);
  const severity = select('Minimum severity', severities.map((s) => /** @type {[string, string]} */ ([s, s])), 'debug');
  const pair = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'any pair' }));
  const search = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'in the loaded events' }));
  const limit = select('Show', [['100', '100'], ['500', '500'], ['1000', '1000']], '100');
  const auto = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'events-auto', checked: true }));
  const feedback = h('div');
  const results = h('div');
  const older = h('button', { type: 'button' }, 'Load older events');
  const form = h('form', { class: 'filters', 'aria-label': 'Event filter' },
    type, severity, field('Pair', pair), limit, field('Search', search),
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit', class: 'primary' }, 'Show events'),
      h('div', { class: 'check' }, auto, h('label', { for: 'events-auto' }, 'Refresh every 5 s'))));
  const el = h('section', { class: 'card' }, form, feedback, results, h('div', { class: 'actions' }, older));

  /** @type {import('../api-types').Event[]} */
  let events = [];
  const value = (/** @type {HTMLElement} */ wrap) => /** @type {HTMLSelectElement} */ (wrap.querySelector('select')).value;

  const render = () => {
    const q = search.value.trim().toLowerCase();
    const rows = events.filter((e) => !q || JSON.stringify(e).toLowerCase().includes(q));
    replace(results, table('Events', ['Time', 'Severity', 'Type', 'Pair', 'What happened'], rows.map((e) => [
      h('span', { class: 'nowrap' }, formatTime(e.time)),
      severityBadge(severities, e.severity),
      h('code', null, e.type),
      e.pair ?? h('span', { class: 'muted' }, 'management'),
      describe(e),
    ]), q ? 'No loaded event matches the search.' : 'No event matches the filter.'));
  };
  search.addEventListener('input', render);

  /** @param {string} [before] ISO time: load events older than this */
  const load = async (before) => {
    const params = new URLSearchParams({ limit: value(limit), minSeverity: value(severity) });
    if (value(type)) params.set('type', value(type));
    if (pair.value.trim()) params.set('pair', pair.value.trim());
    if (before) params.set('before', before);
    const page = (await ctx.api('GET', `/events?${params}`)).events;
    events = before ? [...events, ...page] : page;
    older.toggleAttribute('disabled', page.length < Number(value(limit)));
    replace(feedback);
    render();
  };
  /** @param {unknown} err */
  const showError = (err) => replace(feedback, message(`Could not load events: ${err instanceof Error ? err.message : err}`, 'error'));

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    load().catch(showError);
  });
  older.addEventListener('click', () => {
    const oldest = events[events.length - 1];
    if (oldest) {
      // Paging back means looking at history: stop the refresh so the list stays put.
      auto.checked = false;
      setAuto();
      load(oldest.time).catch(showError);
    }
  });

  /** @type {(() => void) | null} */
  let stopPoll = null;
  const setAuto = () => {
    stopPoll?.();
    stopPoll = auto.checked ? poll(5000, () => load(), showError) : null;
  };
  auto.addEventListener('change', setAuto);
  setAuto();
  return { el, stop: () => stopPoll?.() };
}

/**
 * @param {readonly string[]} severities most severe first
 * @param {string} severity
 */
function severityBadge(severities, severity) {
  const rank = severities.indexOf(severity);
  return badge(severity, rank <= 3 ? 'bad' : rank === 4 ? 'warn' : rank === 5 ? 'info' : 'plain');
}

/**
 * One line saying what an event means.
 * @param {import('../api-types').Event} e
 */
function describe(e) {
  const conn = (/** @type {Parameters<typeof connection>[0]} */ c) => h('code', null, connection(c));
  switch (e.type) {
    case 'flow.start':
      return h('span', null, conn(e), ' allowed by ', h('code', null, e.rule), e.monitor ? [' ', badge('monitor', 'warn')] : null);
    case 'flow.end':
      return h('span', null, conn(e), ` ended (${e.reason}) after ${formatDuration(e.durationMs)}, ${formatCount(e.packetsOut)}/${formatCount(e.packetsIn)} packets out/in`,
        e.functions && Object.keys(e.functions).length ? h('span', { class: 'muted' }, ` · requests: ${functionCounts(e.functions)}`) : null);
    case 'ot.violation':
      return h('span', null, violationBadge(e.action), ' ', conn(e), ` ${formatCount(e.count)} ${e.protocol} `,
        e.function ? h('code', null, e.function) : 'unnamed', ` request${e.count === 1 ? '' : 's'}`,
        e.unit >= 0 ? ` to unit ${e.unit}` : '',
        e.addressFirst !== undefined ? `, ${e.addressFirst === e.addressLast ? 'address' : 'addresses'} ${addressRange(e.addressFirst, e.addressLast)}` : '',
        ` ${e.monitor ? 'would be ' : ''}refused by `, h('code', null, e.rule), ': ', h('code', null, e.reason));
    case 'deny.summary':
      return h('span', null, badge(e.monitor ? `would ${e.action}` : e.action, e.monitor ? 'warn' : 'bad'), ' ',
        conn(e), ` ${formatCount(e.count)} packets by `, h('code', null, e.rule));
    case 'spoof.summary':
      return h('span', null, badge(e.monitor ? 'would drop' : 'spoofed', e.monitor ? 'warn' : 'bad'), ' ',
        `${formatCount(e.count)} ${e.kind === 'arp' ? 'ARP ' : ''}packets claiming `, h('code', null, e.address),
        e.groups.length ? ` (${e.groups.join(', ')})` : '', ' from ', h('code', null, e.mac), ` on the ${e.side} port; the address is bound to `,
        h('code', null, e.boundMac));
    case 'link.up':
    case 'link.down':
      return h('span', null, `${e.side} port `, h('code', null, e.port), ' link ', badge(e.type === 'link.up' ? 'up' : 'down', e.type === 'link.up' ? 'ok' : 'bad'));
    case 'dataplane.start':
    case 'dataplane.stop':
    case 'dataplane.connected':
    case 'dataplane.disconnected':
      return `dataplane ${e.type.split('.')[1]}${e.pid ? ` (pid ${e.pid})` : ''}${e.detail ? `: ${e.detail}` : ''}`;
    case 'bypass.on':
      return h('span', null, badge('BYPASS', 'bad'), ` the kernel bridges the ports without enforcement: ${e.reason}`);
    case 'bypass.off':
      return h('span', null, badge('bypass ended', 'warn'), ` after ${formatDuration(e.durationMs ?? 0)}, enforcing again (${e.reason})`);
    case 'events.dropped':
      return `${formatCount(e.count)} events were lost (queue full while management was away)`;
    case 'policy.applied':
    case 'policy.rollback':
    case 'policy.refused':
      return h('span', null, `${e.type === 'policy.refused' ? 'refused' : e.type === 'policy.rollback' ? 'rolled back to' : 'applied'}`,
        e.version ? ` v${e.version}` : '', ` by ${e.author}`, e.comment ? ` — “${e.comment}”` : '',
        e.errors?.length ? h('span', { class: 'text-bad' }, `: ${e.errors.join('; ')}`) : '');
    case 'mode.change':
      return `mode ${e.from} → ${e.to} by ${e.author}`;
    case 'auth.login':
    case 'auth.login_failed':
    case 'auth.lockout':
    case 'auth.logout':
    case 'admin.change':
      return `${e.user} from ${e.from}${e.action ? `: ${e.action}` : ''}`;
    case 'counters.snapshot':
      return `generation ${e.generation}: ${formatCount(e.rxPackets)} received, ${formatCount(e.txPackets)} sent, ${formatCount(e.dropped)} dropped, ${formatCount(e.flowsActive)} active flows`;
    default:
      return h('code', null, JSON.stringify(e));
  }
}

/** @param {import('../app.js').ViewContext} ctx */
function createAudit(ctx) {
  const search = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'user, action, address…' }));
  const results = h('div');
  const el = h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', null, 'Changes made through management'), field('Filter audit trail', search)),
    results);
  /** @type {import('../api-types').AuditEntry[]} */
  let entries = [];
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const rows = entries.filter((e) => !q || [e.user, e.from, e.action, e.detail].some((s) => String(s ?? '').toLowerCase().includes(q)));
    replace(results, table('Audit trail', ['Time', 'User', 'From', 'Action', 'Detail'], rows.map((e) => [
      h('span', { class: 'nowrap' }, formatTime(e.time)),
      e.user,
      h('code', null, e.from),
      h('code', null, e.action),
      h('div', null, e.detail ?? '', e.diff ? h('details', null, h('summary', null, 'Policy diff'), h('pre', { class: 'diff' }, e.diff)) : null),
    ]), q ? 'No entry matches the filter.' : 'Nothing has been changed yet.'));
  };
  search.addEventListener('input', render);
  const load = () => ctx.api('GET', '/audit?limit=500').then((r) => {
    entries = r.entries;
    render();
  }, (err) => replace(results, message(`Could not load the audit trail: ${err.message}`, 'error')));
  return { el, load };
}
