// @ts-check
// Flows: the connections the dataplanes track right now, filtered on the appliance (pair, address,
// port, rule, verdict), optionally refreshed every 2 seconds. Inspected flows (a rule with e.g. a
// `modbus:` block) show the requests seen per function under the rule. Other views link here with
// the filters in the address (#/flows?pair=&address=&peer=&port=); "other end" (peer) narrows the
// appliance's answer to flows between two addresses, in the browser (the API filters on one).

import {
  badge, endpoint, field, formatBytes, formatCount, formatTime, functionList, h, hashParams, message, poll, replace, select, service, table, timeCell,
} from '../lib.js';

/**
 * @param {HTMLElement} root
 * @param {import('../app.js').ViewContext} ctx
 */
export function mount(root, ctx) {
  const pair = select('Pair', [['', 'All pairs']]);
  const pairSelect = /** @type {HTMLSelectElement} */ (pair.querySelector('select'));
  const given = hashParams();
  const address = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'either endpoint', value: given.get('address') ?? '' }));
  const peer = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'the other endpoint', value: given.get('peer') ?? '' }));
  const port = /** @type {HTMLInputElement} */ (h('input', { type: 'number', min: 0, max: 65535, placeholder: 'either end', value: given.get('port') ?? '' }));
  const rule = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'rule name', value: given.get('rule') ?? '' }));
  const verdict = select('Verdict', [['', 'Any'], ['allow', 'Allowed'], ['monitor', 'Passed in monitor mode']], given.get('verdict') ?? '');
  const limit = select('Show at most', [['50', '50'], ['200', '200'], ['1000', '1000']], '200');
  const auto = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'flows-auto', checked: true }));
  const summary = h('div', { class: 'muted', 'aria-live': 'polite' });
  const feedback = h('div');
  const results = h('div');
  const form = h('form', { class: 'filters', 'aria-label': 'Flow filter' },
    pair, field('Address', address), field('Other end', peer), field('Port', port), field('Rule', rule), verdict, limit,
    h('div', { class: 'filter-buttons' },
      h('button', { type: 'submit', class: 'primary' }, 'Show flows'),
      h('div', { class: 'check' }, auto, h('label', { for: 'flows-auto' }, 'Refresh every 2 s'))));
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Flows'), summary),
    h('section', { class: 'card' }, form, feedback, results));

  const value = (/** @type {HTMLElement} */ wrap) => /** @type {HTMLSelectElement} */ (wrap.querySelector('select')).value;

  /** Query string from the form, or an error message for a bad field. */
  const query = () => {
    const params = new URLSearchParams();
    if (pairSelect.value) params.set('pair', pairSelect.value);
    if (address.value.trim()) params.set('address', address.value.trim());
    if (port.value !== '') {
      const n = Number(port.value);
      if (!Number.isInteger(n) || n < 0 || n > 65535) return { error: 'Port must be a whole number from 0 to 65535.' };
      params.set('port', String(n));
    }
    if (rule.value.trim()) params.set('rule', rule.value.trim());
    if (value(verdict)) params.set('verdict', value(verdict));
    params.set('limit', value(limit));
    return { params };
  };

  const load = async () => {
    const q = query();
    if (!q.params) {
      replace(feedback, message(q.error ?? '', 'error'));
      return;
    }
    replace(feedback);
    const result = await ctx.api('GET', `/flows?${q.params}`);
    const other = peer.value.trim();
    const flows = other ? result.flows.filter((f) => f.src === other || f.dst === other) : result.flows;
    summary.textContent = other
      ? `Showing ${formatCount(flows.length)} flows with ${other} among ${formatCount(result.flows.length)} of ${formatCount(result.matched)} matching · ${formatCount(result.total)} tracked · ${formatTime(Date.now())}`
      : `Showing ${formatCount(flows.length)} of ${formatCount(result.matched)} matching flows · ${formatCount(result.total)} tracked · ${formatTime(Date.now())}`;
    replace(results, table('Tracked flows',
      ['Pair', 'Service', 'Initiator', 'Responder', 'Rule', 'Verdict', 'State', 'Packets out / in', 'Bytes out / in', 'Started', 'Last seen'],
      flows.map((f) => [
        h('span', { class: 'nowrap' }, f.pair),
        h('span', { class: 'nowrap' }, service(f.proto, f.dstPort), f.vlan ? ` · VLAN ${f.vlan}` : ''),
        h('span', { class: 'nowrap' }, h('code', null, endpoint(f.proto, f.src, f.srcPort)), h('span', { class: 'muted' }, ` via ${f.initiatorSide}`)),
        h('code', { class: 'nowrap' }, endpoint(f.proto, f.dst, f.dstPort)),
        h('div', null, h('code', { class: 'nowrap' }, f.rule),
          f.app ? h('div', { class: 'small muted' }, `${f.app.protocol}: `, inspected(f.app.functions)) : null),
        f.verdict === 'monitor' ? badge('monitor', 'warn', 'Passes only because the policy is in monitor mode') : badge('allowed', 'ok'),
        f.state,
        h('span', { class: 'num' }, `${formatCount(f.packetsOut)} / ${formatCount(f.packetsIn)}`),
        h('span', { class: 'num' }, `${formatBytes(f.bytesOut)} / ${formatBytes(f.bytesIn)}`),
        timeCell(f.firstSeen),
        timeCell(f.lastSeen),
      ]),
      'No tracked flow matches. Denied traffic is never a flow: see Top denied flows on the dashboard and deny events.'));
  };

  /** Failures show in place (not as a notice every 2 s). @param {unknown} err */
  const showError = (err) => replace(feedback, message(`Could not list flows: ${err instanceof Error ? err.message : err}`, 'error'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    load().catch(showError);
  });

  // Pair names for the filter, from the status.
  ctx.api('GET', '/status').then((status) => {
    for (const p of status.pairs) pairSelect.appendChild(h('option', { value: p.pair }, p.pair));
    const wanted = given.get('pair');
    if (wanted && !status.pairs.some((p) => p.pair === wanted)) pairSelect.appendChild(h('option', { value: wanted }, wanted));
    if (wanted && pairSelect.value !== wanted) {
      pairSelect.value = wanted;
      load().catch(showError);
    }
  }, ctx.reportError);

  /** @type {(() => void) | null} */
  let stopPoll = null;
  const setAuto = () => {
    stopPoll?.();
    stopPoll = auto.checked ? poll(2000, load, showError) : null;
  };
  auto.addEventListener('change', setAuto);
  setAuto();
  return () => stopPoll?.();
}

/**
 * Each function unbroken, the list wrapping between them.
 * @param {Record<string, number>} functions
 */
function inspected(functions) {
  const list = functionList(functions);
  if (list.length === 0) return 'no request yet';
  return list.map((item, i) => [i > 0 ? ', ' : '', h('span', { class: 'nowrap' }, item)]);
}
