// @ts-check
// Helpers shared by every view: DOM building (never innerHTML, so nothing from the API can become
// markup, and the strict CSP holds), formatting, polling that pauses with the tab, and dialogs.

/**
 * What can be put inside an element: nodes, text, nothing, or (nested) arrays of these.
 * @typedef {Node | string | number | null | undefined | false | readonly unknown[]} Child
 */

/**
 * Build an element. Attributes: `on<event>` functions become listeners, `style` an object of CSS
 * properties, `value`/`checked` are set as properties, `true` gives an empty attribute, and
 * null/undefined/false leave the attribute out.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else if (key === 'value' || key === 'checked') {
      /** @type {any} */ (el)[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Node} parent
 * @param {Child} child
 */
function append(parent, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) for (const c of child) append(parent, /** @type {Child} */ (c));
  else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
}

/**
 * Replace an element's children.
 * @param {Element} el
 * @param {...Child} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// ---------------------------------------------------------------------------------------------------
// The view's parameters in the address (#/flows?address=...): links between views carry filters, and
// Back returns to what was shown.

/** The query of the current hash route. */
export function hashParams() {
  const hash = location.hash;
  const at = hash.indexOf('?');
  return new URLSearchParams(at < 0 ? '' : hash.slice(at + 1));
}

/**
 * "#/path?k=v" for a link, leaving out empty values.
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} [params]
 */
export function hashLink(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const text = q.toString();
  return `#/${path}${text ? `?${text}` : ''}`;
}

/**
 * Record the current filters in the address without reloading the view (no hashchange).
 * @param {string} path
 * @param {Record<string, string | number | undefined | null>} params
 */
export function keepInHash(path, params) {
  history.replaceState(null, '', hashLink(path, params));
}

// ---------------------------------------------------------------------------------------------------
// Formatting. Times are local, with seconds, in one unambiguous shape everywhere.

const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');

/**
 * @param {string | number | null | undefined} time ISO string or epoch ms
 * @returns {string} "2026-11-21 14:03:07" in local time, or "—"
 */
export function formatTime(time) {
  if (time === null || time === undefined || time === '') return '—';
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return String(time);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * Local clock time with seconds for today ("14:03:07"), the full form for other days; for dense
 * tables. The full time is in the title.
 * @param {string | number} time ISO string or epoch ms
 */
export function timeCell(time) {
  const full = formatTime(time);
  const date = new Date(time);
  const today = formatTime(Date.now()).slice(0, 10);
  return h('time', { class: 'nowrap', datetime: Number.isNaN(date.getTime()) ? undefined : date.toISOString(), title: full },
    full.startsWith(today) ? full.slice(11) : full);
}

/** @param {number} ms */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** @param {number | null | undefined} n */
export function formatCount(n) {
  return typeof n === 'number' && Number.isFinite(n) ? integer.format(n) : '—';
}

/**
 * Compact SI form for rates and charts: 950, 12.3 k, 4.56 M.
 * @param {number | null | undefined} n
 * @param {string} [unit]
 */
export function formatSi(n, unit = '') {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  const abs = Math.abs(n);
  const [div, prefix] = abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : abs >= 1e3 ? [1e3, 'k'] : [1, ''];
  const v = n / div;
  const text = div === 1 ? integer.format(v) : v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return `${text}${prefix || unit ? ' ' : ''}${prefix}${unit}`;
}

/** @param {number | null | undefined} bytes */
export function formatBytes(bytes) {
  return formatSi(bytes, 'B');
}

/** Bits per second from the API's rxBps. @param {number | null | undefined} bps */
export function formatBps(bps) {
  return formatSi(bps, 'bit/s');
}

/** @param {string} hash */
export function shortHash(hash) {
  return hash ? hash.slice(0, 12) : '—';
}

const portProtocols = new Set(['tcp', 'udp', 'sctp']);

/**
 * "198.18.1.10:5201", with IPv6 addresses bracketed; the address alone where ports mean nothing
 * (ICMP, other protocols) or are unknown (0, as in deny summaries).
 * @param {string} proto
 * @param {string} address
 * @param {number} port
 */
export function endpoint(proto, address, port) {
  if (!portProtocols.has(proto) || !port) return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * "tcp/502", or the ICMP type for ICMP.
 * @param {string} proto
 * @param {number} port destination port, or the ICMP type
 */
export function service(proto, port) {
  if (proto === 'icmp' || proto === 'icmpv6') return `${proto} type ${port}`;
  if (portProtocols.has(proto)) return `${proto}/${port}`;
  return proto;
}

/**
 * One connection on one line: "198.18.1.10:40984 → 198.18.1.100:8080 (tcp/8080)".
 * @param {{ proto: string, src: string, srcPort: number, dst: string, dstPort: number }} c
 */
export function connection(c) {
  return `${endpoint(c.proto, c.src, c.srcPort)} → ${endpoint(c.proto, c.dst, c.dstPort)} (${service(c.proto, c.dstPort)})`;
}

/**
 * What an inspector saw, most used first: ["read-holding-registers ×120", "write-single-register ×1"].
 * @param {Record<string, number>} functions requests per function name
 */
export function functionList(functions) {
  return Object.entries(functions).sort(([a, m], [b, n]) => n - m || (a < b ? -1 : 1)).map(([name, n]) => `${name} ×${integer.format(n)}`);
}

/** The same on one line: "read-holding-registers ×120, write-single-register ×1". @param {Record<string, number>} functions */
export function functionCounts(functions) {
  return functionList(functions).join(', ');
}

/**
 * The data addresses a refused request touched: "40", "10–41", or "—" when none was named.
 * @param {number | undefined} first
 * @param {number | undefined} last
 */
export function addressRange(first, last) {
  if (first === undefined || last === undefined) return '—';
  return first === last ? String(first) : `${first}–${last}`;
}

/**
 * What the dataplane did with a refused application-layer request: reset, exception or drop (red),
 * or only counted in monitor mode (amber).
 * @param {string} action reset | exception | drop | monitor
 */
export function violationBadge(action) {
  return action === 'monitor' ? badge('monitor: passed', 'warn', 'Monitor mode: counted, not refused') : badge(action, 'bad');
}

// ---------------------------------------------------------------------------------------------------
// Small components.

/**
 * A status pill. kind: ok (green, allowed/up), bad (red, denied/down), warn (amber, monitor),
 * info (blue) or plain.
 * @param {string} text
 * @param {'ok' | 'bad' | 'warn' | 'info' | 'plain'} [kind]
 * @param {string} [title]
 */
export function badge(text, kind = 'plain', title) {
  return h('span', { class: `badge badge-${kind}`, title }, text);
}

/** @param {string} action allow | deny | reject | monitor */
export function actionBadge(action) {
  const kind = action === 'allow' ? 'ok' : action === 'monitor' ? 'warn' : action === 'deny' || action === 'reject' ? 'bad' : 'plain';
  return badge(action, kind);
}

/**
 * A table with a header row; `rows` are arrays of cells. A caption names it for screen readers.
 * @param {string} caption
 * @param {string[]} columns
 * @param {Child[][]} rows
 * @param {string} emptyText shown in one row when there are no rows
 */
export function table(caption, columns, rows, emptyText) {
  return h('div', { class: 'table-wrap' },
    h('table', null,
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.length === 0
        ? h('tr', null, h('td', { class: 'empty', colspan: columns.length }, emptyText))
        : rows.map((cells) => h('tr', null, cells.map((c) => h('td', null, c)))))));
}

/** Source of unique element ids (labels, dialogs). */
let idCounter = 0;

/**
 * A labelled form field. The input gets an id so <label for> ties them together.
 * @param {string} label
 * @param {HTMLElement} input
 * @param {string} [hint]
 */
export function field(label, input, hint) {
  const id = input.id || `f${++idCounter}`;
  input.id = id;
  const hintEl = hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

/**
 * @param {string} label
 * @param {[string, string][]} options value, text
 * @param {string} [value]
 */
export function select(label, options, value) {
  const el = /** @type {HTMLSelectElement} */ (h('select', null, options.map(([v, text]) => h('option', { value: v }, text))));
  if (value !== undefined) el.value = value;
  return field(label, el);
}

/**
 * A message area: role=alert for errors so screen readers announce them.
 * @param {string} text
 * @param {'error' | 'ok' | 'warn' | 'info'} kind
 */
export function message(text, kind) {
  return h('div', { class: `message message-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

// ---------------------------------------------------------------------------------------------------
// Notifications and dialogs.

/**
 * A short notice in the corner, announced to screen readers.
 * @param {string} text
 * @param {'ok' | 'error' | 'info'} [kind]
 */
export function notify(text, kind = 'ok') {
  const area = document.getElementById('notices');
  if (!area) return;
  const note = h('div', { class: `notice notice-${kind}` }, text);
  area.appendChild(note);
  setTimeout(() => note.remove(), kind === 'error' ? 10_000 : 5000);
}

/**
 * A modal <dialog> (focus trapped by the browser, Escape closes). Resolves when closed.
 * @param {string} title
 * @param {(close: (value: string) => void) => Child} body builds the content; call close to finish
 * @param {string} [className]
 * @returns {Promise<string>} the value passed to close, or "" when dismissed
 */
export function openDialog(title, body, className = '') {
  return new Promise((resolve) => {
    const titleId = `dlg${++idCounter}`;
    const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { class: `dialog ${className}`, 'aria-labelledby': titleId }));
    const close = (/** @type {string} */ value) => {
      dialog.returnValue = value;
      dialog.close();
    };
    replace(dialog,
      h('header', { class: 'dialog-header' },
        h('h2', { id: titleId }, title),
        h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close', onclick: () => close('') }, '×')),
      h('div', { class: 'dialog-body' }, body(close)));
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/**
 * Ask before doing something that cannot be undone.
 * @param {string} title
 * @param {string} text
 * @param {string} confirmLabel
 * @returns {Promise<boolean>}
 */
export async function confirmDialog(title, text, confirmLabel) {
  const answer = await openDialog(title, (close) => [
    h('p', null, text),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => close('') }, 'Cancel'),
      h('button', { type: 'button', class: 'danger', onclick: () => close('yes') }, confirmLabel)),
  ]);
  return answer === 'yes';
}

// ---------------------------------------------------------------------------------------------------
// Polling.

/**
 * Run `task` now and then every `intervalMs` after it finishes, paused while the tab is hidden
 * (resumed at once when it shows again). Errors are reported to `onError` and polling goes on.
 * @param {number} intervalMs
 * @param {() => Promise<void>} task
 * @param {(err: unknown) => void} onError
 * @returns {() => void} stop
 */
export function poll(intervalMs, task, onError) {
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let running = false;
  const run = async () => {
    timer = undefined;
    if (stopped || running || document.hidden) return;
    running = true;
    try {
      await task();
    } catch (err) {
      onError(err);
    } finally {
      running = false;
    }
    if (!stopped && !document.hidden) timer = setTimeout(run, intervalMs);
  };
  const onVisibility = () => {
    if (!document.hidden && timer === undefined && !running) run();
  };
  document.addEventListener('visibilitychange', onVisibility);
  run();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}

/**
 * Call fn once input has been quiet for `ms`.
 * @template {unknown[]} A
 * @param {number} ms
 * @param {(...args: A) => void} fn
 * @returns {(...args: A) => void}
 */
export function debounce(ms, fn) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  return (...args) => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
