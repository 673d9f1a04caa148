// @ts-check
// Dashboard: one card per port pair (connection, mode, policy, ports and links, live rates, charts of
// the last 5 minutes, inspection counters when the pair inspects, per-rule counters), the top denied
// flows and the most refused Modbus requests. Refreshed every second while the tab is visible.

import {
  actionBadge, addressRange, badge, endpoint, formatBps, formatCount, formatDuration, formatSi, formatTime, h, replace, service, shortHash,
  table, timeCell, poll, violationBadge,
} from '../lib.js';

/** Seconds of history the charts show. */
const WINDOW_S = 300;
/** A pair whose last report is older than this is shown as stale. */
const STALE_MS = 5000;

const colours = { allowed: '#1a7f37', denied: '#cf222e', traffic: '#0969da' };

/** @typedef {import('../api-types').HistoryPoint} HistoryPoint */
/** @typedef {import('../api-types').PairStatus} PairStatus */

/**
 * Everything drawn for one pair, built once and updated in place (no flicker, focus kept).
 * @typedef {object} PairCard
 * @property {HTMLElement} el
 * @property {HTMLElement} header
 * @property {HTMLElement} numbers
 * @property {HTMLElement} ports
 * @property {HTMLElement} inspect inspection counters, hidden while the pair inspects nothing
 * @property {HTMLElement} rulesSummary
 * @property {HTMLElement} rulesBody inside a <details> built once, so it stays open across refreshes
 * @property {HTMLElement} ppsChart
 * @property {HTMLElement} bpsChart
 * @property {any} pps uPlot instance (null until the first history arrives)
 * @property {any} bps
 * @property {HistoryPoint[]} points
 * @property {boolean} loaded whether the full window was fetched once
 */

/**
 * @param {HTMLElement} root
 * @param {import('../app.js').ViewContext} ctx
 */
export function mount(root, ctx) {
  const pairsEl = h('div', { class: 'pairs' });
  const deniedFilter = /** @type {HTMLInputElement} */ (h('input', { type: 'search', id: 'denied-filter', placeholder: 'address, rule, port…' }));
  const deniedEl = h('div');
  const violationsEl = h('div');
  const updated = h('span', { class: 'muted', 'aria-live': 'off' });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Dashboard'), updated),
    pairsEl,
    h('section', { class: 'card', 'aria-labelledby': 'denied-title' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'denied-title' }, 'Top denied flows (last hour)'),
        h('div', { class: 'inline-field' }, h('label', { for: 'denied-filter' }, 'Filter'), deniedFilter)),
      deniedEl),
    h('section', { class: 'card', 'aria-labelledby': 'violations-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'violations-title' }, 'Modbus violations (last hour)')),
      violationsEl));

  /** @type {Map<string, PairCard>} */
  const cards = new Map();
  /** @type {import('../api-types').DeniedEntry[]} */
  let denied = [];
  /** @type {import('../api-types').ViolationEntry[]} */
  let violations = [];
  let tick = 0;
  const resize = new ResizeObserver(() => {
    for (const card of cards.values()) sizeCharts(card);
  });

  const renderDenied = () => {
    const q = deniedFilter.value.trim().toLowerCase();
    const rows = denied.filter((d) => !q || [d.pair, d.src, d.dst, d.rule, d.action, d.proto, String(d.dstPort), ...d.srcGroups, ...d.dstGroups]
      .some((v) => String(v).toLowerCase().includes(q)));
    replace(deniedEl, table('Top denied flows',
      ['Last seen', 'Pair', 'Source', 'Destination', 'Service', 'Rule', 'Action', 'Packets'],
      rows.map((d) => [
        timeCell(d.lastSeen),
        h('span', { class: 'nowrap' }, d.pair),
        withGroups(d.src, d.srcGroups),
        withGroups(d.dst, d.dstGroups),
        h('code', null, service(d.proto, d.dstPort)),
        h('code', { class: 'nowrap' }, d.rule),
        badge(d.action, 'bad'),
        h('span', { class: 'num' }, formatCount(d.count)),
      ]),
      q ? 'No denied flow matches the filter.' : 'Nothing was denied in the last hour.'));
  };
  deniedFilter.addEventListener('input', renderDenied);

  const renderViolations = () => {
    replace(violationsEl, table('Modbus violations',
      ['Last seen', 'Pair', 'Client', 'Server', 'Rule', 'Function', 'Unit', 'Addresses', 'Reason', 'Action', 'Requests'],
      violations.map((v) => [
        timeCell(v.lastSeen),
        h('span', { class: 'nowrap' }, v.pair),
        withGroups(v.src, v.srcGroups),
        withGroups(endpoint('tcp', v.dst, v.dstPort), v.dstGroups),
        h('code', { class: 'nowrap' }, v.rule),
        v.function ? h('code', { class: 'nowrap' }, v.function) : h('span', { class: 'muted', title: 'The refused message named no function (a broken stream)' }, 'none'),
        v.unit >= 0 ? h('span', { class: 'num' }, String(v.unit)) : h('span', { class: 'muted' }, '—'),
        h('span', { class: 'num' }, addressRange(v.addressFirst, v.addressLast)),
        h('code', null, v.reason),
        violationBadge(v.action),
        h('span', { class: 'num', title: `since ${formatTime(v.firstSeen)}` }, formatCount(v.count)),
      ]),
      'No Modbus request was refused in the last hour. Rules with a modbus: block list here the requests they refuse '
        + '(or in monitor mode would refuse): function, unit, addresses, why, and what was done.'));
  };

  const refresh = async () => {
    const status = await ctx.api('GET', '/status');
    const pairs = status.pairs;
    if (pairs.length === 0) {
      replace(pairsEl, h('section', { class: 'card empty-state' },
        h('h2', null, 'No port pair has connected yet'),
        h('p', null, 'Each port pair runs its own dataplane (', h('code', null, 'gatekeeper run --inside IF --outside IF --policy FILE --mgmt-socket SOCKET'),
          '). It appears here as soon as it connects to the management socket.')));
      cards.clear();
    }
    for (const pair of pairs) {
      let card = cards.get(pair.pair);
      if (!card) {
        if (cards.size === 0) replace(pairsEl);
        card = createCard(pair.pair);
        cards.set(pair.pair, card);
        pairsEl.appendChild(card.el);
        resize.observe(card.ppsChart);
      }
      updateCard(card, pair, status.policy);
      const history = await ctx.api('GET', `/status/history?pair=${encodeURIComponent(pair.pair)}&seconds=${card.loaded ? 10 : WINDOW_S}`);
      mergeHistory(card, history.points);
      card.loaded = true;
      drawCharts(card);
    }
    // The denied list changes slowly (summaries), so every 5 s is enough.
    if (tick % 5 === 0) {
      denied = (await ctx.api('GET', '/denied/top?limit=10')).entries;
      renderDenied();
      violations = (await ctx.api('GET', '/violations/top?limit=10')).entries;
      renderViolations();
    }
    tick++;
    updated.textContent = `Updated ${formatTime(Date.now())}`;
  };

  const stop = poll(1000, refresh, (err) => {
    updated.textContent = '';
    updated.appendChild(badge('not updating', 'bad', String(err instanceof Error ? err.message : err)));
  });
  return () => {
    stop();
    resize.disconnect();
    for (const card of cards.values()) {
      card.pps?.destroy();
      card.bps?.destroy();
    }
  };
}

/**
 * @param {string} address
 * @param {string[]} groups
 */
function withGroups(address, groups) {
  return h('span', null, h('code', null, address), groups.length ? h('span', { class: 'groups' }, ` ${groups.join(', ')}`) : null);
}

/** @param {string} name */
function createCard(name) {
  const header = h('div', { class: 'card-head pair-head' });
  const numbers = h('div', { class: 'numbers' });
  const ports = h('div', { class: 'ports' });
  const ppsChart = h('div', { class: 'chart', role: 'img', 'aria-label': `Allowed and denied packets per second on ${name}, last 5 minutes` });
  const bpsChart = h('div', { class: 'chart', role: 'img', 'aria-label': `Received bits per second on ${name}, last 5 minutes` });
  const inspect = h('div', { class: 'ports inspect', hidden: true });
  const rulesSummary = h('summary');
  const rulesBody = h('div');
  const el = h('section', { class: 'card pair', 'aria-label': `Port pair ${name}` },
    header, numbers,
    h('div', { class: 'charts' },
      h('figure', null, h('figcaption', null, 'Packets per second: ', h('span', { class: 'text-ok' }, 'allowed'), ' / ', h('span', { class: 'text-bad' }, 'denied')), ppsChart),
      h('figure', null, h('figcaption', null, 'Received traffic (bit/s)'), bpsChart)),
    ports,
    inspect,
    h('details', { class: 'rules' }, rulesSummary, rulesBody));
  return /** @type {PairCard} */ ({
    el, header, numbers, ports, inspect, rulesSummary, rulesBody, ppsChart, bpsChart, pps: null, bps: null, points: [], loaded: false,
  });
}

/**
 * @param {PairCard} card
 * @param {PairStatus} pair
 * @param {import('../api-types').Status['policy']} policy the active policy, or null
 */
function updateCard(card, pair, policy) {
  const stale = pair.connected && Date.now() - pair.lastSeen > STALE_MS;
  const sameAsActive = policy && pair.policyHash === policy.hash;
  replace(card.header,
    h('h2', null, pair.pair),
    pair.connected
      ? badge(stale ? `no report for ${formatDuration(Date.now() - pair.lastSeen)}` : 'connected', stale ? 'warn' : 'ok')
      : badge('disconnected', 'bad', `last seen ${formatTime(pair.lastSeen)}`),
    pair.bypass ? badge('BYPASS: bridged without enforcement', 'bad', 'Fail-open: the dataplane is gone and the kernel bridges the ports') : null,
    pair.mode === 'monitor'
      ? badge('monitor mode: nothing blocked', 'warn', 'Would-be drops are counted and forwarded')
      : badge('enforcing', 'ok'),
    h('span', { class: sameAsActive ? 'meta' : 'meta text-bad', title: `policy hash ${pair.policyHash}` },
      pair.policyVersion !== null && pair.policyVersion !== undefined ? `policy v${pair.policyVersion}` : `policy ${shortHash(pair.policyHash)} (not a stored version)`,
      policy && !sameAsActive ? ' · differs from the active policy' : ''),
    h('span', { class: 'meta' }, `generation ${pair.generation} · pid ${pair.pid} · up ${formatDuration(pair.uptimeMs)}`));

  replace(card.numbers,
    bigNumber('Allowed', formatSi(pair.rates.allowedPps), 'packets/s', 'ok'),
    bigNumber('Denied', formatSi(pair.rates.deniedPps), 'packets/s', pair.rates.deniedPps > 0 ? 'bad' : 'plain'),
    bigNumber('Received', formatSi(pair.rates.rxPps), 'packets/s', 'plain'),
    bigNumber('Throughput', formatBps(pair.rates.rxBps), '', 'plain'),
    bigNumber('Active flows', formatCount(pair.flows.active), `of ${formatCount(pair.flows.capacity)} · ${formatCount(pair.flows.evicted)} evicted`, 'plain'));

  replace(card.ports, /** @type {const} */ (['outside', 'inside']).map((side) => portPanel(side, pair.ports[side])));
  updateInspection(card, pair);
  updateRules(card, pair);
}

/** @param {Record<string, number>} byReason */
const total = (byReason) => Object.values(byReason).reduce((a, b) => a + b, 0);

/** "function_not_allowed 5, unit_not_allowed 1", largest first. @param {Record<string, number>} byReason */
function reasonList(byReason) {
  return Object.entries(byReason).filter(([, n]) => n > 0).sort(([, m], [, n]) => n - m).map(([r, n]) => `${r} ${formatCount(n)}`).join(', ');
}

/**
 * One box per inspected protocol, only once the pair has inspected something (most pairs never do).
 * @param {PairCard} card
 * @param {PairStatus} pair
 */
function updateInspection(card, pair) {
  const inspected = Object.entries(pair.inspect).filter(([, i]) => i.flows > 0 || i.active > 0 || total(i.violations) > 0 || total(i.held) > 0);
  card.inspect.hidden = inspected.length === 0;
  replace(card.inspect, inspected.map(([protocol, i]) => {
    const name = protocol.charAt(0).toUpperCase() + protocol.slice(1);
    const refused = total(i.violations);
    return h('div', { class: 'port', role: 'group', 'aria-label': `${name} inspection on ${pair.pair}` },
      h('h3', null, `${name} inspection`),
      h('dl', { class: 'kv' },
        h('dt', null, 'Flows'), h('dd', null, `${formatCount(i.active)} inspected now · ${formatCount(i.flows)} since start`),
        h('dt', null, pair.mode === 'monitor' ? 'Would refuse' : 'Refused'),
        h('dd', { class: refused > 0 ? 'text-bad' : '' }, formatCount(refused), refused > 0 ? h('span', { class: 'muted' }, ` (${reasonList(i.violations)})`) : null),
        h('dt', { title: 'Segments kept back until TCP resends what came before them: not violations' }, 'Held'),
        h('dd', null, formatCount(total(i.held)), total(i.held) > 0 ? h('span', { class: 'muted' }, ` (${reasonList(i.held)})`) : null)));
  }));
}

/**
 * @param {PairCard} card
 * @param {PairStatus} pair
 */
function updateRules(card, pair) {
  const refused = pair.rules.reduce((n, r) => n + r.violations, 0);
  replace(card.rulesSummary, `Rule counters (${pair.rules.length} rule${pair.rules.length === 1 ? '' : 's'})`,
    refused > 0 ? [' · ', h('span', { class: 'text-bad' }, `${formatCount(refused)} violations`)] : null);
  replace(card.rulesBody, table(`Rule counters of ${pair.pair}`, ['Rule', 'Action', 'Packets', 'Flows', 'Violations'],
    pair.rules.map((r) => [
      h('code', { class: 'nowrap' }, r.name),
      actionBadge(r.action),
      h('span', { class: 'num' }, formatCount(r.packets)),
      h('span', { class: 'num' }, formatCount(r.flows)),
      h('span', { class: r.violations > 0 ? 'num text-bad' : 'num', title: 'Messages its application-layer block (e.g. modbus:) refused' },
        formatCount(r.violations)),
    ]),
    'No counters yet: the dataplane has not reported.'));
}

/**
 * @param {string} label
 * @param {string} value
 * @param {string} unit
 * @param {'ok' | 'bad' | 'plain'} kind
 */
function bigNumber(label, value, unit, kind) {
  return h('div', { class: `big big-${kind}` },
    h('div', { class: 'big-label' }, label),
    h('div', { class: 'big-value' }, value),
    h('div', { class: 'big-unit' }, unit));
}

/**
 * @param {'inside' | 'outside'} side
 * @param {PairStatus['ports']['inside'] | undefined} port
 */
function portPanel(side, port) {
  if (!port) return h('div', { class: 'port' }, h('h3', null, side), 'no data');
  const up = port.link === 'up';
  const reasons = Object.entries(port.droppedByReason ?? {}).filter(([, n]) => n > 0);
  return h('div', { class: 'port' },
    h('h3', null, `${side === 'inside' ? 'Inside' : 'Outside'} port `, h('code', null, port.name), ' ', badge(`link ${port.link}`, up ? 'ok' : 'bad')),
    h('dl', { class: 'kv' },
      h('dt', null, 'Receiving'), h('dd', null, `${formatSi(port.rxPps)} packets/s · ${formatBps(port.rxBps)}`),
      h('dt', null, 'Received'), h('dd', null, `${formatCount(port.rxPackets)} packets · ${formatSi(port.rxBytes, 'B')}`),
      h('dt', null, 'Sent'), h('dd', null, `${formatCount(port.txPackets)} packets · ${formatSi(port.txBytes, 'B')}`),
      h('dt', null, 'Dropped'), h('dd', { class: port.dropped > 0 ? 'text-bad' : '' }, formatCount(port.dropped),
        reasons.length ? h('span', { class: 'muted' }, ` (${reasons.map(([r, n]) => `${r} ${formatCount(n)}`).join(', ')})`) : null),
      // Not a decision: the kernel had no room left for them because the dataplane read too slowly.
      h('dt', null, 'Lost before inspection'), h('dd', { class: port.kernelDropped > 0 ? 'text-bad' : '',
        title: 'Frames the kernel dropped because the receive ring was full: the box was too slow, not the policy' },
        formatCount(port.kernelDropped), h('span', { class: 'muted' }, ' (box too slow, not the policy)'))));
}

/**
 * Append new points (by time) and keep the window.
 * @param {PairCard} card
 * @param {HistoryPoint[]} points
 */
function mergeHistory(card, points) {
  const last = card.points.length ? card.points[card.points.length - 1].t : -Infinity;
  for (const p of points) if (p.t > last) card.points.push(p);
  const cutoff = Date.now() - WINDOW_S * 1000;
  const first = card.points.findIndex((p) => p.t >= cutoff);
  if (first > 0) card.points.splice(0, first);
}

/** @param {PairCard} card */
function drawCharts(card) {
  const uPlot = /** @type {any} */ (window).uPlot;
  if (!uPlot) return;
  const t = card.points.map((p) => p.t / 1000);
  const ppsData = [t, card.points.map((p) => p.allowedPps), card.points.map((p) => p.deniedPps)];
  const bpsData = [t, card.points.map((p) => p.rxBps)];
  if (!card.pps) {
    const width = chartWidth(card.ppsChart);
    const grid = { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' } };
    // Local clock time on the x axis and in the legend, like every other time in the UI.
    const timeAxis = { ...grid, values: (/** @type {any} */ _u, /** @type {number[]} */ ticks) => ticks.map((t) => clock(t)) };
    const siAxis = { ...grid, size: 64, values: (/** @type {any} */ _u, /** @type {number[]} */ ticks) => ticks.map((v) => formatSi(v)) };
    /** @param {(v: number) => string} format */
    const legend = (format) => (/** @type {any} */ _u, /** @type {number | null} */ v) => (v === null || v === undefined ? '—' : format(v));
    const timeSeries = { label: 'Time', value: legend((t) => formatTime(t * 1000)) };
    const base = { width, height: 180, axes: [timeAxis, siAxis] };
    card.pps = new uPlot({
      ...base,
      scales: { x: { time: true }, y: { range: (/** @type {any} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => [0, Math.max(10, max * 1.1)] } },
      series: [
        timeSeries,
        { label: 'Allowed', stroke: colours.allowed, fill: 'rgba(26,127,55,0.08)', width: 2, points: { show: false }, value: legend((v) => `${formatSi(v)} pps`) },
        { label: 'Denied', stroke: colours.denied, fill: 'rgba(207,34,46,0.08)', width: 2, points: { show: false }, value: legend((v) => `${formatSi(v)} pps`) },
      ],
    }, ppsData, card.ppsChart);
    card.bps = new uPlot({
      ...base,
      scales: { x: { time: true }, y: { range: (/** @type {any} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => [0, Math.max(1000, max * 1.1)] } },
      series: [
        timeSeries,
        { label: 'Received', stroke: colours.traffic, fill: 'rgba(9,105,218,0.08)', width: 2, points: { show: false }, value: legend(formatBps) },
      ],
    }, bpsData, card.bpsChart);
  } else {
    card.pps.setData(ppsData);
    card.bps.setData(bpsData);
  }
}

/** "14:03:07" local, from epoch seconds. @param {number} seconds */
function clock(seconds) {
  return formatTime(seconds * 1000).slice(11);
}

/** @param {HTMLElement} el */
function chartWidth(el) {
  return Math.max(240, Math.floor(el.getBoundingClientRect().width));
}

/** @param {PairCard} card */
function sizeCharts(card) {
  if (!card.pps) return;
  const width = chartWidth(card.ppsChart);
  card.pps.setSize({ width, height: 180 });
  card.bps.setSize({ width, height: 180 });
}
