// @ts-check
// The gatekeeper's web UI: API client (session cookie + CSRF header, 401 → sign-in page), the
// application shell, and a hash router that mounts one view module at a time.

import { badge, field, formatCount, h, message, notify, poll, replace, shortHash } from './lib.js';
import * as dashboard from './views/dashboard.js';
import * as assets from './views/assets.js';
import * as map from './views/map.js';
import * as flows from './views/flows.js';
import * as learn from './views/learn.js';
import * as policy from './views/policy.js';
import * as events from './views/events.js';
import * as users from './views/users.js';
import * as settings from './views/settings.js';

/** @typedef {import('./api-types').Role} Role */
/** @typedef {import('./api-types').User} User */
/** @typedef {import('./api-types').Meta} Meta */

/**
 * What every view receives.
 * @typedef {object} ViewContext
 * @property {typeof api} api
 * @property {User} user
 * @property {Meta} meta the server's roles, event types, severities and password minimum (GET /meta)
 * @property {(action: Action) => boolean} can
 * @property {(err: unknown) => void} reportError shows an API or network failure without crashing
 * @property {() => void} policyChanged refreshes what the header says is running (after apply/rollback)
 */

/** @typedef {'apply' | 'learn' | 'settings' | 'users'} Action */

/**
 * A view module: mount fills `root` and returns what stops its timers when the user leaves.
 * @typedef {{ mount: (root: HTMLElement, ctx: ViewContext) => (() => void) }} View
 */

/** An error answer from the API ({error, details?}) or a network failure (status 0). */
class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} text
   * @param {unknown[]} [details] per-line policy errors or per-pair failures
   */
  constructor(status, text, details) {
    super(text);
    this.status = status;
    this.details = details ?? [];
  }
}

/** @type {{ user: User | null, csrfToken: string | null }} */
const session = { user: null, csrfToken: null };
/** Loaded once, before anything is shown. @type {Meta} */
let meta;

/**
 * Call the management API. State-changing requests carry the CSRF token; a 401 outside /auth/
 * means the session ended, so the sign-in page is shown. The answer's type follows from the
 * method and path (api-types.d.ts).
 * @template {import('./api-types').ApiMethod} M
 * @template {import('./api-types').ApiPath<M>} P
 * @param {M} method
 * @param {P} path below /api/v1
 * @param {unknown} [body]
 * @returns {Promise<import('./api-types').ApiResult<M, P>>}
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session.csrfToken) headers['x-csrf-token'] = session.csrfToken;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'The appliance did not answer (network error). Check the connection.');
  }
  // The answer's shape is the server's (api-types.d.ts): JSON is taken as it comes.
  /** @type {any} */
  let data = null;
  if (response.status === 204) return data;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    // Only the first 401 of a session shows the sign-in page; late answers of other requests must
    // not reset a form the user is already typing in.
    if (response.status === 401 && !path.startsWith('/auth/') && session.user) {
      session.user = null;
      showSignIn('Your session has ended. Sign in again.');
    }
    throw new ApiError(response.status, data?.error ?? `The appliance answered HTTP ${response.status}`, data?.details);
  }
  return data;
}

/** @param {unknown} err */
function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------------
// Routes

/** @type {{ path: string, label: string, view: View, allowed: (role: Role) => boolean }[]} */
const routes = [
  { path: 'dashboard', label: 'Dashboard', view: dashboard, allowed: () => true },
  { path: 'assets', label: 'Assets', view: assets, allowed: () => true },
  { path: 'map', label: 'Map', view: map, allowed: () => true },
  { path: 'flows', label: 'Flows', view: flows, allowed: () => true },
  { path: 'policy', label: 'Policy', view: policy, allowed: () => true },
  { path: 'learn', label: 'Learn', view: learn, allowed: () => true },
  { path: 'events', label: 'Events', view: events, allowed: () => true },
  { path: 'users', label: 'Users', view: users, allowed: (role) => hasRole(role, permissions.users) },
  { path: 'settings', label: 'Settings', view: settings, allowed: () => true },
];

/** The least role each action needs (the server enforces the same per route). @type {Record<Action, Role>} */
const permissions = {
  apply: 'operator',
  learn: 'operator',
  settings: 'operator',
  users: 'admin',
};

/**
 * Roles are ordered, least privileged first (GET /meta), each including those before it.
 * @param {Role} actual
 * @param {Role} needed
 */
function hasRole(actual, needed) {
  const rank = (/** @type {Role} */ role) => meta.roles.findIndex((r) => r.name === role);
  return rank(actual) >= rank(needed);
}

const app = /** @type {HTMLElement} */ (document.getElementById('app'));
/** @type {(() => void) | null} */
let unmountView = null;
/** @type {(() => void) | null} */
let stopHeaderPoll = null;

function leaveCurrentView() {
  unmountView?.();
  unmountView = null;
}

function stopShell() {
  leaveCurrentView();
  stopHeaderPoll?.();
  stopHeaderPoll = null;
}

function currentPath() {
  return location.hash.replace(/^#\/?/, '').split('?')[0] || 'dashboard';
}

// ---------------------------------------------------------------------------------------------------
// Shell: header (product, navigation, what is running, who is signed in) and the view area.

/** @param {User} user */
function showShell(user) {
  stopShell();
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    h('ul', null, routes.filter((r) => r.allowed(user.role)).map((r) =>
      h('li', null, h('a', { href: `#/${r.path}`, 'data-path': r.path }, r.label)))));
  const running = h('div', { class: 'running', 'aria-live': 'polite' });
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(app,
    h('a', { class: 'skip-link', href: '#main', onclick: (/** @type {Event} */ e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('header', { class: 'topbar' },
      h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), h('span', null, 'gatekeeper')),
      nav,
      running,
      h('div', { class: 'who' },
        h('span', { class: 'who-name' }, user.name),
        badge(user.role, 'info', `Signed in as ${user.role}`),
        h('button', { type: 'button', class: 'link-button', onclick: signOut }, 'Sign out'))),
    main);

  // What is running, always visible: no surprises about monitor mode or a disconnected pair.
  const refreshRunning = async () => {
    const status = await api('GET', '/status');
    const pairs = status.pairs;
    const connected = pairs.filter((p) => p.connected).length;
    const p = status.policy;
    replace(running,
      p
        ? h('span', { title: `hash ${p.hash}` }, `Policy v${p.version} `, p.mode === 'monitor' ? badge('monitor mode', 'warn', 'Nothing is blocked: would-be drops are only counted') : badge('enforcing', 'ok'))
        : badge('no policy stored', 'warn'),
      ' ',
      badge(`${formatCount(connected)}/${formatCount(pairs.length)} pairs connected`, pairs.length > 0 && connected === pairs.length ? 'ok' : 'bad'),
      p && pairs.some((pair) => pair.connected && pair.policyHash !== p.hash)
        ? badge('a pair runs another policy', 'bad', pairs.filter((pair) => pair.policyHash !== p.hash).map((pair) => `${pair.pair}: ${shortHash(pair.policyHash)}`).join(', '))
        : null);
  };
  const runningUnknown = () => replace(running, badge('appliance not answering', 'bad'));

  /** @type {ViewContext} */
  const ctx = {
    api,
    user,
    meta,
    can: (action) => hasRole(user.role, permissions[action]),
    reportError: (err) => {
      if (err instanceof ApiError && err.status === 401) return;
      notify(errorText(err), 'error');
    },
    policyChanged: () => { refreshRunning().catch(runningUnknown); },
  };

  const route = () => {
    leaveCurrentView();
    const path = currentPath();
    const match = routes.find((r) => r.path === path);
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('data-path') === path) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    replace(main);
    if (!match) {
      replace(main, h('h1', null, 'Not found'), h('p', null, h('a', { href: '#/dashboard' }, 'Go to the dashboard')));
      return;
    }
    if (!match.allowed(user.role)) {
      replace(main, h('h1', null, match.label), message(`Your role (${user.role}) cannot open ${match.label}.`, 'warn'));
      return;
    }
    document.title = `${match.label} · gatekeeper`;
    unmountView = match.view.mount(main, ctx);
  };
  window.onhashchange = route;
  route();

  stopHeaderPoll = poll(5000, refreshRunning, runningUnknown);
}

async function signOut() {
  try {
    await api('POST', '/auth/logout');
  } catch (err) {
    notify(errorText(err), 'error');
  }
  session.user = null;
  session.csrfToken = null;
  showSignIn('You are signed out.');
}

// ---------------------------------------------------------------------------------------------------
// Sign-in and first-time setup

/** @param {string} [notice] */
function showSignIn(notice) {
  stopShell();
  document.title = 'Sign in · gatekeeper';
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const feedback = h('div', { class: 'feedback' }, notice ? message(notice, 'info') : null);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'auth-form', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    feedback,
    field('Username', username),
    field('Password', password),
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.setAttribute('disabled', '');
    try {
      const result = await api('POST', '/auth/login', {
        username: /** @type {HTMLInputElement} */ (username).value,
        password: /** @type {HTMLInputElement} */ (password).value,
      });
      startSession(result);
    } catch (err) {
      replace(feedback, message(errorText(err), 'error'));
      /** @type {HTMLInputElement} */ (password).value = '';
      password.focus();
    } finally {
      submit.removeAttribute('disabled');
    }
  });
  replace(app, authPage(form));
  username.focus();
}

function showSetup() {
  stopShell();
  document.title = 'First-time setup · gatekeeper';
  const token = h('input', { name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, value: 'admin' });
  const min = meta.passwordMinLength;
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: min });
  const confirm = h('input', { name: 'confirm', type: 'password', autocomplete: 'new-password', required: true });
  const feedback = h('div', { class: 'feedback' });
  const form = h('form', { class: 'auth-form', 'aria-labelledby': 'setup-title' },
    h('h1', { id: 'setup-title' }, 'Create the first administrator'),
    h('p', null, 'No user exists yet. The one-time setup token is in the management service log and in the file setup-token in its state directory.'),
    feedback,
    field('Setup token', token),
    field('Username', username),
    field('Password', password, `At least ${min} characters.`),
    field('Confirm password', confirm),
    h('button', { type: 'submit', class: 'primary' }, 'Create administrator'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const pw = /** @type {HTMLInputElement} */ (password).value;
    if (pw.length < min) return replace(feedback, message(`The password needs at least ${min} characters.`, 'error'));
    if (pw !== /** @type {HTMLInputElement} */ (confirm).value) return replace(feedback, message('The two passwords differ.', 'error'));
    try {
      startSession(await api('POST', '/auth/setup', {
        token: /** @type {HTMLInputElement} */ (token).value.trim(),
        username: /** @type {HTMLInputElement} */ (username).value.trim(),
        password: pw,
      }));
    } catch (err) {
      replace(feedback, message(errorText(err), 'error'));
    }
  });
  replace(app, authPage(form));
  token.focus();
}

/** @param {HTMLElement} form */
function authPage(form) {
  return h('main', { class: 'auth-page' },
    h('div', { class: 'auth-card' },
      h('div', { class: 'brand brand-large' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), h('span', null, 'gatekeeper')),
      h('p', { class: 'auth-sub' }, 'Inline micro-segmentation appliance · management'),
      form));
}

/** @param {{ user: User, csrfToken: string }} result */
function startSession(result) {
  session.user = result.user;
  session.csrfToken = result.csrfToken;
  showShell(result.user);
}

/** Continue a session that exists (cookie), or show setup / sign-in. */
async function resumeSession() {
  try {
    meta ??= await api('GET', '/meta');
    startSession(await api('GET', '/auth/session'));
    return;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      replace(app, authPage(h('div', null, message(`Cannot reach the management service: ${errorText(err)}`, 'error'),
        h('button', { type: 'button', onclick: resumeSession }, 'Try again'))));
      return;
    }
  }
  try {
    const setup = await api('GET', '/auth/setup');
    if (setup?.needed) return showSetup();
  } catch {
    // Setup state unknown: signing in is still possible.
  }
  showSignIn();
}

resumeSession();
