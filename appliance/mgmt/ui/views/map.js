// @ts-check
// Map: who talks to whom behind one port pair, drawn with cytoscape (bundled, loaded from
// /ui/vendor/ when the map first opens). Assets are boxes in two columns, outside and inside (the
// appliance sits between them, so every conversation crosses); lines are conversations from client
// to server labelled with their services, allowed grey, monitor-only amber, denied red and dashed.
// A click on a host opens its asset page, a click on a line the live flows between the two ends.
// The same connections are listed as a table under the map (for keyboards and screen readers).
// Read-only; must not load anything from another origin.

import { listAssets, listConversations } from '../inventory-api.js';
import { actionBadge, formatCount, formatTime, h, hashLink, hashParams, keepInHash, message, replace, select, table } from '../lib.js';
import { assetName, flowsLink } from './assets.js';

/** @typedef {import('../api-types').Asset} Asset */
/** @typedef {import('../api-types').Conversation} Conversation */
/** @typedef {import('../app.js').ViewContext} ViewContext */
/** @typedef {typeof import('cytoscape')} Cytoscape */

const CYTOSCAPE_URL = '/ui/vendor/cytoscape/cytoscape.esm.min.mjs';
/** Hosts per column before a side takes another column. */
const COLUMN_ROWS = 10;

/** @type {Promise<Cytoscape> | null} */
let loading = null;
/** cytoscape, loaded once (440 kB: only when the map is opened). */
function loadCytoscape() {
  // cytoscape adds a <style> element unless one with this id exists; the CSP refuses inline style,
  // so a marker stands in and style.css carries its one rule (cytoscape.js PR #2318).
  const marker = '__________cytoscape_stylesheet';
  if (!document.getElementById(marker)) document.head.appendChild(h('meta', { id: marker, name: 'cytoscape-container-style', content: 'style.css' }));
  loading ??= import(CYTOSCAPE_URL).then((m) => /** @type {Cytoscape} */ (m.default));
  return loading;
}

/** Time windows the map can show. */
const windows = /** @type {[string, string][]} */ ([['3600000', 'Last hour'], ['86400000', 'Last 24 hours'], ['604800000', 'Last 7 days'], ['', 'Everything kept']]);

/**
 * One line on the map: the conversations between two hosts with one kind of verdict.
 * @typedef {object} Link
 * @property {string} id
 * @property {string} source node id (client)
 * @property {string} target node id (server)
 * @property {Conversation['verdict']} verdict
 * @property {Conversation[]} conversations
 */

/**
 * @param {HTMLElement} root
 * @param {ViewContext} ctx
 */
export function mount(root, ctx) {
  const given = hashParams();
  const pair = select('Pair', []);
  const pairSelect = /** @type {HTMLSelectElement} */ (pair.querySelector('select'));
  const since = select('Conversations', windows, given.get('since') ?? '86400000');
  const sinceSelect = /** @type {HTMLSelectElement} */ (since.querySelector('select'));
  const summary = h('div', { class: 'muted', 'aria-live': 'polite' });
  const feedback = h('div');
  const canvas = h('div', { class: 'map-canvas', role: 'img', 'aria-label': 'Map of conversations' });
  const info = h('div', { class: 'map-info', 'aria-live': 'polite' }, h('span', { class: 'muted' }, 'Point at a host or a line for details. Click a host for its asset page, a line for its live flows.'));
  const list = h('div');
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Map'), summary),
    h('section', { class: 'card' },
      h('form', { class: 'filters map-filters', 'aria-label': 'Map filter' }, pair, since,
        h('div', { class: 'map-legend', 'aria-label': 'Legend' },
          h('span', { class: 'legend-line legend-allow' }, 'allowed'),
          h('span', { class: 'legend-line legend-monitor' }, 'passes in monitor mode only'),
          h('span', { class: 'legend-line legend-deny' }, 'denied'),
          h('span', { class: 'legend-node legend-up' }, 'host up'),
          h('span', { class: 'legend-node legend-down' }, 'host down'),
          h('span', { class: 'legend-node legend-unknown' }, 'not probed / not an asset'))),
      feedback, canvas, info),
    h('section', { class: 'card' }, h('details', null, h('summary', null, 'The same connections as a table'), list)));

  /** @type {import('cytoscape').Core | null} */
  let cy = null;
  let stopped = false;

  const load = async () => {
    if (stopped) return;
    const pairName = pairSelect.value;
    const period = sinceSelect.value;
    keepInHash('map', { pair: pairName, since: period });
    const [assets, conversations, cytoscape] = await Promise.all([
      listAssets(ctx.api, { pair: pairName, limit: 2000 }),
      listConversations(ctx.api, { pair: pairName, since: period ? Date.now() - Number(period) : undefined, limit: 5000 }),
      loadCytoscape(),
    ]);
    if (stopped) return;
    replace(feedback);
    const graph = buildGraph(assets, conversations);
    const denied = graph.links.filter((l) => l.verdict === 'deny').length;
    summary.textContent = `${formatCount(graph.hosts)} hosts · ${formatCount(graph.links.length)} connections${denied ? ` (${denied} denied)` : ''} · ${formatTime(Date.now())}`;
    cy?.destroy();
    cy = cytoscape({
      container: canvas,
      elements: graph.elements,
      style: mapStyle,
      layout: { name: 'preset', fit: true, padding: 24 },
      minZoom: 0.2,
      maxZoom: 3,
      autoungrabify: false,
      boxSelectionEnabled: false,
    });
    cy.on('tap', 'node[kind = "asset"]', (e) => { location.hash = hashLink('assets', { id: e.target.data('asset') }); });
    cy.on('tap', 'node[kind = "address"]', (e) => { location.hash = hashLink('flows', { pair: pairName, address: e.target.data('address') }); });
    cy.on('tap', 'edge', (e) => { location.hash = e.target.data('flows'); });
    cy.on('mouseover', 'node[kind != "side"], edge', (e) => { replace(info, e.target.data('info')); canvas.classList.add('pointing'); });
    cy.on('mouseout', 'node, edge', () => canvas.classList.remove('pointing'));
    replace(list, linkTable(graph.links, graph.names));
    if (graph.hosts === 0) replace(feedback, message('No asset or conversation seen on this pair in this period.', 'info'));
  };
  const showError = (/** @type {unknown} */ err) => replace(feedback, message(`Could not draw the map: ${err instanceof Error ? err.message : err}`, 'error'));
  const reload = () => { load().catch(showError); };
  pairSelect.addEventListener('change', reload);
  sinceSelect.addEventListener('change', reload);

  ctx.api('GET', '/status').then((status) => {
    const names = status.pairs.map((p) => p.pair);
    const wanted = given.get('pair');
    if (wanted && !names.includes(wanted)) names.push(wanted);
    for (const name of names) pairSelect.appendChild(h('option', { value: name }, name));
    if (wanted) pairSelect.value = wanted;
    if (names.length === 0) replace(feedback, message('No port pair is known yet.', 'info'));
    else reload();
  }, ctx.reportError);

  return () => {
    stopped = true;
    cy?.destroy();
  };
}

/**
 * Nodes, lines and their positions: per side, hosts sorted by name in columns of COLUMN_ROWS;
 * outside on the left, inside on the right. An end that is no asset (yet) becomes an address node
 * on the other side from its peer.
 * @param {Asset[]} assets
 * @param {Conversation[]} conversations
 */
function buildGraph(assets, conversations) {
  /** @type {Map<string, { id: string, label: string, side: 'inside' | 'outside', data: Record<string, unknown> }>} */
  const nodes = new Map();
  /** @type {Map<number, Asset>} */
  const byId = new Map(assets.map((a) => [a.id, a]));
  /** Node labels for the table. @type {Map<string, string>} */
  const names = new Map();
  for (const a of assets) {
    const id = `a${a.id}`;
    // An unnamed host is its address: saying it twice ("host 198.18.0.1" over "198.18.0.1") tells nothing; its vendor may.
    const label = a.name !== null || a.addresses.length === 0 ? `${assetName(a)}\n${a.addresses[0] ?? a.mac}` : `${a.vendor ?? 'unnamed host'}\n${a.addresses[0]}`;
    nodes.set(id, { id, label, side: a.side, data: { kind: 'asset', asset: a.id, liveness: a.liveness.state,
      info: `${assetName(a)} · ${a.addresses.join(', ') || 'no address'} · ${a.mac}${a.vendor ? ` (${a.vendor})` : ''} · ${a.side} · liveness ${a.liveness.state}` } });
    names.set(id, assetName(a));
  }
  /**
   * @param {number | null} assetId
   * @param {string} address
   * @param {'inside' | 'outside' | undefined} peerSide
   */
  const endNode = (assetId, address, peerSide) => {
    if (assetId !== null && byId.has(assetId)) return `a${assetId}`;
    const id = `x${address}`;
    if (!nodes.has(id)) {
      nodes.set(id, { id, label: `${address}\nnot an asset`, side: peerSide === 'inside' ? 'outside' : 'inside',
        data: { kind: 'address', address, liveness: 'none', info: `${address}: not in the inventory (no MAC of its own seen, e.g. behind a router)` } });
      names.set(id, address);
    }
    return id;
  };
  /** @type {Map<string, Link>} */
  const links = new Map();
  for (const c of conversations) {
    const clientSide = c.clientAsset !== null ? byId.get(c.clientAsset)?.side : undefined;
    const serverSide = c.serverAsset !== null ? byId.get(c.serverAsset)?.side : undefined;
    const source = endNode(c.clientAsset, c.client, serverSide);
    const target = endNode(c.serverAsset, c.server, clientSide ?? nodes.get(source)?.side);
    const id = `${source}>${target}:${c.verdict}`;
    const link = links.get(id) ?? { id, source, target, verdict: c.verdict, conversations: [] };
    link.conversations.push(c);
    links.set(id, link);
  }

  /** @type {import('cytoscape').ElementDefinition[]} */
  const elements = [
    { data: { id: 'side-outside', kind: 'side', label: 'Outside' }, selectable: false },
    { data: { id: 'side-inside', kind: 'side', label: 'Inside' }, selectable: false },
  ];
  for (const side of /** @type {const} */ (['outside', 'inside'])) {
    const members = [...nodes.values()].filter((n) => n.side === side).sort((x, y) => (x.label < y.label ? -1 : x.label > y.label ? 1 : 0));
    const columns = Math.ceil(members.length / COLUMN_ROWS);
    members.forEach((n, i) => {
      const column = Math.floor(i / COLUMN_ROWS);
      // Outside columns grow to the left, inside ones to the right: the space between stays for the lines.
      const x = side === 'outside' ? -(columns - 1 - column) * 210 : 520 + column * 210;
      elements.push({ data: { id: n.id, parent: `side-${side}`, label: n.label, ...n.data }, position: { x, y: (i % COLUMN_ROWS) * 80 } });
    });
  }
  for (const l of links.values()) {
    const services = [...new Set(l.conversations.map((c) => c.service))].sort();
    const latest = l.conversations.reduce((x, y) => (y.lastSeen > x.lastSeen ? y : x));
    const ports = new Set(l.conversations.map((c) => `${c.proto}/${c.port}`));
    const flows = l.conversations.reduce((n, c) => n + c.flows, 0);
    const suffix = l.verdict === 'deny' ? ' · denied' : l.verdict === 'monitor' ? ' · monitor' : '';
    elements.push({ data: {
      id: l.id, source: l.source, target: l.target, verdict: l.verdict, label: `${services.join(', ')}${suffix}`,
      flows: ports.size === 1 ? flowsLink(latest) : flowsLink({ ...latest, proto: '', port: 0 }),
      info: `${names.get(l.source)} → ${names.get(l.target)} · ${services.join(', ')} · ${l.verdict === 'deny' ? 'denied' : l.verdict === 'monitor' ? 'passes in monitor mode only' : 'allowed'} by ${[...new Set(l.conversations.map((c) => c.rule))].join(', ')} · ${formatCount(flows)} flows · last ${formatTime(latest.lastSeen)}`,
    } });
  }
  return { elements, links: [...links.values()], names, hosts: nodes.size };
}

/**
 * @param {Link[]} links
 * @param {Map<string, string>} names
 */
function linkTable(links, names) {
  return table('Connections on the map', ['From (client)', 'To (server)', 'Services', 'Verdict', 'Rule', 'Flows', 'Last seen', ''], links.map((l) => {
    const latest = l.conversations.reduce((x, y) => (y.lastSeen > x.lastSeen ? y : x));
    return [
      names.get(l.source) ?? l.source,
      names.get(l.target) ?? l.target,
      [...new Set(l.conversations.map((c) => c.service))].join(', '),
      actionBadge(l.verdict),
      h('code', null, [...new Set(l.conversations.map((c) => c.rule))].join(', ')),
      formatCount(l.conversations.reduce((n, c) => n + c.flows, 0)),
      formatTime(latest.lastSeen),
      l.verdict === 'deny' ? h('span', { class: 'muted small' }, 'denied: no flows') : h('a', { href: flowsLink(latest) }, 'Live flows'),
    ];
  }), 'No conversation in this period.');
}

/** Colours as style.css's (green allowed/up, red denied/down, amber monitor). @type {import('cytoscape').StylesheetJson} */
const mapStyle = [
  { selector: 'node', style: {
    shape: 'round-rectangle', width: 170, height: 48, 'background-color': '#ffffff', 'border-width': 2, 'border-color': '#8c959f',
    label: 'data(label)', 'text-wrap': 'wrap', 'text-valign': 'center', 'text-halign': 'center', 'font-size': 12, color: '#1f2328',
    'font-family': 'system-ui, "DejaVu Sans", sans-serif', 'text-max-width': '160px',
  } },
  { selector: 'node[liveness = "up"]', style: { 'border-color': '#1a7f37', 'border-width': 3 } },
  { selector: 'node[liveness = "down"]', style: { 'border-color': '#cf222e', 'border-width': 3, 'background-color': '#ffebe9' } },
  { selector: 'node[kind = "address"]', style: { 'border-style': 'dashed', 'background-color': '#f6f8fa', color: '#59636e' } },
  { selector: 'node[kind = "side"]', style: {
    shape: 'round-rectangle', 'background-color': '#eef1f4', 'background-opacity': 0.6, 'border-width': 1, 'border-color': '#d1d9e0',
    label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'font-size': 14, 'font-weight': 'bold', color: '#59636e',
    'padding': '18px', 'text-margin-y': -4,
  } },
  { selector: 'edge', style: {
    width: 2, 'line-color': '#6e7781', 'target-arrow-color': '#6e7781', 'target-arrow-shape': 'triangle', 'curve-style': 'bezier',
    label: 'data(label)', 'font-size': 11, 'text-rotation': 'autorotate', 'text-background-color': '#ffffff', 'text-background-opacity': 0.9,
    'text-background-padding': '2px', color: '#1f2328', 'font-family': 'system-ui, "DejaVu Sans", sans-serif',
  } },
  { selector: 'edge[verdict = "monitor"]', style: { 'line-color': '#bf8700', 'target-arrow-color': '#bf8700', color: '#9a6700' } },
  { selector: 'edge[verdict = "deny"]', style: { 'line-color': '#cf222e', 'target-arrow-color': '#cf222e', 'line-style': 'dashed', color: '#cf222e', width: 2.5 } },
  { selector: 'node:selected', style: { 'overlay-opacity': 0.08 } },
];
