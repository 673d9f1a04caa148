// @ts-check
// Assets: the hosts the inventory found behind each port pair, filtered on the appliance (text,
// side, liveness, pair) and refreshed every 10 s; #/assets?id=N shows one asset: what it said about
// itself (LLDP, DHCP, Modbus identification), its addresses, liveness and conversations, each with a
// link to its live flows. Filters stay in the address so Back returns to the same list. Read-only
// for every role: nothing here changes the appliance.

import { listAssets, getAsset } from '../inventory-api.js';
import {
  actionBadge, badge, field, formatBytes, formatCount, formatTime, functionList, h, hashLink, hashParams, keepInHash, message, poll, replace,
  select, table, timeCell, debounce,
} from '../lib.js';

/** @typedef {import('../api-types').Asset} Asset */
/** @typedef {import('../api-types').Conversation} Conversation */
/** @typedef {import('../app.js').ViewContext} ViewContext */

/** The table's filters, as kept in the address. */
const filterKeys = /** @type {const} */ (['pair', 'q', 'side', 'liveness']);

/**
 * @param {HTMLElement} root
 * @param {ViewContext} ctx
 */
export function mount(root, ctx) {
  const params = hashParams();
  const id = Number(params.get('id'));
  /** @type {Record<string, string>} */
  const filters = {};
  for (const key of filterKeys) filters[key] = params.get(key) ?? '';
  if (params.has('id') && Number.isInteger(id) && id > 0) return mountDetail(root, ctx, id, filters);
  return mountTable(root, ctx, filters);
}

// ---------------------------------------------------------------------------------------------------
// Shared cells

/**
 * Up (green, with the round trip), down (red), not probed or not known yet (plain).
 * @param {Asset['liveness']} l
 */
function livenessBadge(l) {
  if (l.state === 'up') return badge(l.rttMs === null ? 'up' : `up · ${l.rttMs < 10 ? l.rttMs.toFixed(1) : Math.round(l.rttMs)} ms`, 'ok', `answered ${formatTime(l.checkedAt)}`);
  if (l.state === 'down') return badge('down', 'bad', `no answer since ${formatTime(l.changedAt)}`);
  if (l.state === 'off') return badge('not probed', 'plain', 'Liveness probing is off for this asset\'s group');
  return badge('unknown', 'plain', 'Not probed yet');
}

/** @param {Asset} a */
export function assetName(a) {
  return a.name ?? (a.addresses[0] ? `host ${a.addresses[0]}` : a.mac);
}

/** @param {Asset} a */
function sideCell(a) {
  return h('span', { class: 'nowrap' }, a.side === 'inside' ? 'inside' : 'outside', a.vlan ? h('span', { class: 'muted' }, ` · VLAN ${a.vlan}`) : '');
}

/**
 * Modbus requests per function, each unbroken, and the units they named.
 * @param {Record<string, number>} functions
 * @param {number[]} units
 */
function functionsCell(functions, units) {
  const list = functionList(functions);
  if (list.length === 0) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'small' }, list.map((item, i) => [i > 0 ? ', ' : '', h('span', { class: 'nowrap' }, item)]),
    units.length > 0 ? h('span', { class: 'muted nowrap' }, ` · unit${units.length > 1 ? 's' : ''} ${units.join(', ')}`) : '');
}

// ---------------------------------------------------------------------------------------------------
// The table

/**
 * @param {HTMLElement} root
 * @param {ViewContext} ctx
 * @param {Record<string, string>} filters
 */
function mountTable(root, ctx, filters) {
  const pair = select('Pair', [['', 'All pairs']]);
  const pairSelect = /** @type {HTMLSelectElement} */ (pair.querySelector('select'));
  const q = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'name, MAC, address, vendor', value: filters.q }));
  const side = select('Side', [['', 'Both sides'], ['inside', 'Inside'], ['outside', 'Outside']], filters.side);
  const liveness = select('Liveness', [['', 'Any'], ['up', 'Up'], ['down', 'Down'], ['unknown', 'Not known yet'], ['off', 'Not probed']], filters.liveness);
  const limit = select('Show at most', [['100', '100'], ['500', '500'], ['2000', '2000']], '500');
  const summary = h('div', { class: 'muted', 'aria-live': 'polite' });
  const feedback = h('div');
  const results = h('div');
  const search = field('Search', q);
  search.classList.add('search-field');
  const form = h('form', { class: 'filters asset-filters', 'aria-label': 'Asset filter' }, search, pair, side, liveness, limit);
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Assets'), summary),
    h('section', { class: 'card' }, form, feedback, results));

  const value = (/** @type {HTMLElement} */ wrap) => /** @type {HTMLSelectElement} */ (wrap.querySelector('select')).value;
  const current = () => ({ pair: pairSelect.value, q: q.value.trim(), side: value(side), liveness: value(liveness) });

  /** Set when the user left: a late answer or a pending search must not touch the next view's address. */
  let stopped = false;
  const load = async () => {
    if (stopped) return;
    const f = current();
    keepInHash('assets', f);
    const assets = await listAssets(ctx.api, { ...f, limit: Number(value(limit)) });
    if (stopped) return;
    replace(feedback);
    const filtered = f.q || f.side || f.liveness || f.pair;
    summary.textContent = `${formatCount(assets.length)} asset${assets.length === 1 ? '' : 's'}${filtered ? ' match the filter' : ''} · ${formatTime(Date.now())}`;
    replace(results, table('Assets',
      ['Name', 'Vendor', 'MAC', 'Addresses', 'Side', 'First seen', 'Last seen', 'Packets / bytes', 'Services', 'Liveness'],
      assets.map((a) => [
        h('div', null,
          h('a', { href: hashLink('assets', { id: a.id, ...f }), class: 'asset-link' }, assetName(a)),
          a.router ? [' ', badge('router', 'info', 'Many source addresses behind this MAC: a router or gateway')] : null,
          h('div', { class: 'small muted nowrap' }, a.pair)),
        a.vendor ?? h('span', { class: 'muted' }, 'unknown'),
        h('code', { class: 'nowrap' }, a.mac),
        addressesCell(a.addresses),
        sideCell(a),
        timeCell(a.firstSeen),
        timeCell(a.lastSeen),
        h('span', { class: 'num nowrap' }, `${formatCount(a.packets)} / ${formatBytes(a.bytes)}`),
        servicesCell(a),
        livenessBadge(a.liveness),
      ]),
      filtered ? 'No asset matches the filter.' : 'No asset seen yet: assets appear once traffic crosses a port pair.'));
  };
  /** Failures show in place (not as a notice every 10 s). @param {unknown} err */
  const showError = (err) => replace(feedback, message(`Could not list assets: ${err instanceof Error ? err.message : err}`, 'error'));
  const reload = () => { load().catch(showError); };

  form.addEventListener('submit', (e) => { e.preventDefault(); reload(); });
  q.addEventListener('input', debounce(300, reload));
  for (const s of [pairSelect, side, liveness, limit]) s.addEventListener('change', reload);

  ctx.api('GET', '/status').then((status) => {
    for (const p of status.pairs) pairSelect.appendChild(h('option', { value: p.pair }, p.pair));
    if (filters.pair) {
      if (!status.pairs.some((p) => p.pair === filters.pair)) pairSelect.appendChild(h('option', { value: filters.pair }, filters.pair));
      pairSelect.value = filters.pair;
      reload();
    }
  }, ctx.reportError);

  const stopPoll = poll(10_000, load, showError);
  return () => {
    stopped = true;
    stopPoll();
  };
}

/** The latest two, and how many more (all in the title). @param {string[]} addresses */
function addressesCell(addresses) {
  if (addresses.length === 0) return h('span', { class: 'muted' }, 'none seen');
  const shown = addresses.slice(0, 2);
  return h('div', { title: addresses.join('\n') },
    shown.map((a) => h('div', null, h('code', { class: 'nowrap' }, a))),
    addresses.length > 2 ? h('div', { class: 'small muted' }, `+${addresses.length - 2} more`) : null);
}

/** What it answers (server) and uses (client). @param {Asset} a */
function servicesCell(a) {
  if (a.offers.length === 0 && a.uses.length === 0) return h('span', { class: 'muted' }, '—');
  return h('div', { class: 'small' },
    a.offers.length ? h('div', null, h('span', { class: 'muted' }, 'serves '), a.offers.join(', ')) : null,
    a.uses.length ? h('div', null, h('span', { class: 'muted' }, 'uses '), a.uses.join(', ')) : null);
}

// ---------------------------------------------------------------------------------------------------
// One asset

/**
 * @param {HTMLElement} root
 * @param {ViewContext} ctx
 * @param {number} id
 * @param {Record<string, string>} filters the table's, for the way back
 */
function mountDetail(root, ctx, id, filters) {
  const back = h('a', { href: hashLink('assets', filters), class: 'back-link' }, '← All assets');
  const title = h('h1', null, `Asset ${id}`);
  const status = h('div');
  const body = h('div', null, message('Loading…', 'info'));
  replace(root, back, h('div', { class: 'page-head' }, title, status), body);

  const load = async () => {
    const [{ asset: a, conversations }, peers] = await Promise.all([getAsset(ctx.api, id), listAssets(ctx.api, { pair: undefined })]);
    const names = new Map(peers.map((p) => [p.id, p]));
    document.title = `${assetName(a)} · Assets · gatekeeper`;
    replace(title, assetName(a));
    replace(status, h('span', { class: 'badges' }, livenessBadge(a.liveness), ' ', badge(a.side, 'plain', 'The port of the pair it is behind'),
      a.router ? [' ', badge('router', 'info', 'Many source addresses behind this MAC: a router or gateway')] : null));
    replace(body,
      h('div', { class: 'detail-grid' },
        h('section', { class: 'card', 'aria-labelledby': 'asset-identity' },
          h('h2', { id: 'asset-identity' }, 'Identity'),
          kv([
            ['MAC', h('code', null, a.mac)],
            ['Vendor (from the MAC)', a.vendor ?? h('span', { class: 'muted' }, 'unknown or locally administered')],
            ['Pair', a.pair],
            ['Side', a.side],
            ['VLAN', a.vlan ? String(a.vlan) : 'untagged'],
            ['First seen', formatTime(a.firstSeen)],
            ['Last seen', formatTime(a.lastSeen)],
            ['Traffic', `${formatCount(a.packets)} packets · ${formatBytes(a.bytes)}`],
            ['Serves', a.offers.length ? a.offers.join(', ') : '—'],
            ['Uses', a.uses.length ? a.uses.join(', ') : '—'],
          ]),
          identitySections(a)),
        h('div', null,
          h('section', { class: 'card', 'aria-labelledby': 'asset-addresses' },
            h('h2', { id: 'asset-addresses' }, 'Addresses'),
            a.addresses.length
              ? h('ul', { class: 'plain-list' }, a.addresses.map((addr, i) => h('li', null, h('code', null, addr), i === 0 ? h('span', { class: 'muted' }, ' (latest)') : null)))
              : h('p', { class: 'muted' }, 'No IP address seen from this MAC yet.'),
            a.router ? h('p', { class: 'small muted' }, 'A router or gateway: the addresses behind it are the hosts it forwards for, not moves of this host.') : null),
          h('section', { class: 'card', 'aria-labelledby': 'asset-liveness' },
            h('h2', { id: 'asset-liveness' }, 'Liveness'),
            kv([
              ['State', livenessBadge(a.liveness)],
              ['Round trip', a.liveness.rttMs === null ? '—' : `${a.liveness.rttMs} ms`],
              ['Last probe', formatTime(a.liveness.checkedAt)],
              ['State since', formatTime(a.liveness.changedAt)],
            ]),
            a.liveness.state === 'off' ? h('p', { class: 'small muted' }, 'Probing is off for this asset\'s group: the appliance sends nothing to it.') : null)),
      ),
      h('section', { class: 'card', 'aria-labelledby': 'asset-conversations' },
        h('div', { class: 'card-head' }, h('h2', { id: 'asset-conversations' }, 'Conversations'),
          h('span', { class: 'muted' }, `${formatCount(conversations.length)} · summed over the retention period`)),
        conversationTable(a, conversations, names)));
  };
  const showError = (/** @type {unknown} */ err) => {
    if (/** @type {any} */ (err).status === 404) replace(body, message(`There is no asset ${id} (any more).`, 'warn'));
    else replace(body, message(`Could not load the asset: ${err instanceof Error ? err.message : err}`, 'error'));
  };
  load().catch(showError);
  return () => {};
}

/** @param {[string, import('../lib.js').Child][]} rows */
function kv(rows) {
  return h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** What the host announced (LLDP), asked for (DHCP) and answered (Modbus device identification). @param {Asset} a */
function identitySections(a) {
  const { lldp, dhcp, modbus } = a.identity;
  /** @param {string} title @param {[string, string | undefined][]} rows */
  const section = (title, rows) => {
    const seen = rows.filter(([, v]) => v !== undefined && v !== '');
    return seen.length ? h('div', { class: 'identity', role: 'group', 'aria-label': title }, h('h3', null, title), kv(seen.map(([k, v]) => [k, String(v)]))) : null;
  };
  const parts = [
    lldp && section('LLDP (what it announces)', [
      ['System name', lldp.systemName], ['Description', lldp.systemDescription], ['Chassis ID', lldp.chassisId],
      ['Port ID', lldp.portId], ['Port description', lldp.portDescription], ['Management address', lldp.managementAddress]]),
    dhcp && section('DHCP (what it asked for)', [['Host name', dhcp.hostName], ['Vendor class', dhcp.vendorClass]]),
    modbus && section('Modbus device identification', [
      ['Vendor', modbus.vendorName], ['Product code', modbus.productCode], ['Revision', modbus.revision], ['Product name', modbus.productName],
      ['Model name', modbus.modelName], ['Vendor URL', modbus.vendorUrl], ['Unit', modbus.unit]]),
  ].filter(Boolean);
  return parts.length ? parts : h('p', { class: 'small muted identity' }, 'It has not identified itself: no LLDP, DHCP or Modbus identification seen from it.');
}

/**
 * @param {Asset} a
 * @param {Conversation[]} conversations
 * @param {Map<number, Asset>} names
 */
function conversationTable(a, conversations, names) {
  const sorted = [...conversations].sort((x, y) => y.lastSeen - x.lastSeen);
  return table('Conversations of this asset',
    ['', 'Peer', 'Service', 'Rule', 'Verdict', 'Flows', 'Packets / bytes', 'Modbus functions', 'First seen', 'Last seen', ''],
    sorted.map((c) => {
      const asClient = c.clientAsset === a.id || (c.clientAsset === null && a.addresses.includes(c.client));
      const peerAddress = asClient ? c.server : c.client;
      const peerId = asClient ? c.serverAsset : c.clientAsset;
      const peer = peerId === null ? undefined : names.get(peerId);
      return [
        h('span', { class: 'nowrap', title: asClient ? 'This asset asked (client)' : 'This asset answered (server)' }, asClient ? '→ to' : '← from'),
        h('div', null,
          peerId !== null ? h('a', { href: hashLink('assets', { id: peerId }) }, peer ? assetName(peer) : `asset ${peerId}`) : h('span', { class: 'muted' }, 'not an asset'),
          h('div', null, h('code', { class: 'small nowrap' }, peerAddress))),
        h('span', { class: 'nowrap' }, c.service, c.vlan ? h('span', { class: 'muted' }, ` · VLAN ${c.vlan}`) : ''),
        h('code', { class: 'nowrap' }, c.rule),
        actionBadge(c.verdict),
        h('span', { class: 'num' }, formatCount(c.flows)),
        h('span', { class: 'num nowrap' }, `${formatCount(c.packets)} / ${formatBytes(c.bytes)}`),
        functionsCell(c.functions, c.units),
        timeCell(c.firstSeen),
        timeCell(c.lastSeen),
        c.verdict === 'deny'
          ? h('span', { class: 'small muted', title: 'Denied traffic never becomes a flow' }, 'denied')
          : h('a', { href: flowsLink(c), class: 'nowrap' }, 'Live flows'),
      ];
    }),
    'No conversation recorded for this asset.');
}

/**
 * The flows view filtered on one conversation's two ends and port.
 * @param {{ pair: string, client: string, server: string, proto: string, port: number }} c
 */
export function flowsLink(c) {
  const ported = c.proto === 'tcp' || c.proto === 'udp' || c.proto === 'sctp';
  return hashLink('flows', { pair: c.pair, address: c.server, peer: c.client, port: ported ? c.port : undefined });
}
