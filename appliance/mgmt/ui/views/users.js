// @ts-check
// Users (admins only): who can sign in and with which role; add, change role, set password, remove.

import {
  badge, confirmDialog, field, formatTime, h, message, notify, openDialog, replace, select, table,
} from '../lib.js';

/**
 * @param {HTMLElement} root
 * @param {import('../app.js').ViewContext} ctx
 */
export function mount(root, ctx) {
  const filter = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'name or role' }));
  const list = h('div');
  const add = h('button', { type: 'button', class: 'primary' }, 'Add user…');
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Users'), add),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Accounts'), field('Filter users', filter)),
      list,
      h('p', { class: 'muted' }, 'Viewers see everything and change nothing. Operators also apply and roll back policies and change settings. Admins also manage users.')));

  /** @type {import('../api-types').UserInfo[]} */
  let users = [];
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = users.filter((u) => !q || u.name.toLowerCase().includes(q) || u.role.includes(q));
    replace(list, table('Users', ['Name', 'Role', 'Created', 'Last sign-in', ''], rows.map((u) => {
      const self = u.name === ctx.user.name;
      return [
        h('strong', null, u.name, self ? h('span', { class: 'muted' }, ' (you)') : null),
        badge(u.role, u.role === 'admin' ? 'info' : 'plain'),
        h('span', { class: 'nowrap' }, formatTime(u.createdAt)),
        h('span', { class: 'nowrap' }, u.lastLoginAt ? formatTime(u.lastLoginAt) : 'never'),
        h('div', { class: 'row-actions' },
          h('button', { type: 'button', 'aria-label': `Edit ${u.name}`, onclick: () => edit(u) }, 'Edit…'),
          h('button', {
            type: 'button', class: 'danger', 'aria-label': `Remove ${u.name}`, disabled: self,
            title: self ? 'You cannot remove yourself.' : undefined, onclick: () => remove(u),
          }, 'Remove')),
      ];
    }), q ? 'No user matches the filter.' : 'No users.'));
  };
  filter.addEventListener('input', render);

  const load = async () => {
    users = (await ctx.api('GET', '/users')).users;
    users.sort((a, b) => a.name.localeCompare(b.name));
    render();
  };

  /** @param {{ name: string, role: string } | null} u null adds a user */
  const edit = async (u) => {
    if (await userDialog(ctx, u)) await load().catch(ctx.reportError);
  };
  add.addEventListener('click', () => edit(null));
  /** @param {import('../api-types').UserInfo} u */
  const remove = async (u) => {
    if (!await confirmDialog('Remove user', `Remove ${u.name}? Their sessions end at once.`, `Remove ${u.name}`)) return;
    try {
      await ctx.api('DELETE', `/users/${encodeURIComponent(u.name)}`);
      notify(`${u.name} removed.`);
      await load();
    } catch (err) {
      ctx.reportError(err);
    }
  };

  load().catch(ctx.reportError);
  return () => {};
}

/**
 * Add (user = null) or edit a user. Resolves true when something changed.
 * @param {import('../app.js').ViewContext} ctx
 * @param {{ name: string, role: string } | null} user
 */
async function userDialog(ctx, user) {
  // Roles and the password minimum are the server's (GET /meta).
  const roles = ctx.meta.roles.map((r) => /** @type {[string, string]} */ ([r.name, `${r.name}: ${r.description}`]));
  const minPassword = ctx.meta.passwordMinLength;
  const name = /** @type {HTMLInputElement} */ (h('input', { required: true, autocomplete: 'off', pattern: '[A-Za-z0-9][A-Za-z0-9_.@\\-]{0,63}', value: user?.name ?? '', disabled: Boolean(user) }));
  const role = select('Role', roles, user?.role ?? 'viewer');
  const roleSelect = /** @type {HTMLSelectElement} */ (role.querySelector('select'));
  if (user && user.name === ctx.user.name) roleSelect.disabled = true;
  const password = /** @type {HTMLInputElement} */ (h('input', { type: 'password', autocomplete: 'new-password', required: !user }));
  const feedback = h('div', { class: 'feedback' });
  let changed = false;
  await openDialog(user ? `Edit ${user.name}` : 'Add user', (close) => {
    const form = h('form', null,
      field('Name', name, user ? undefined : 'Up to 64 letters, digits and . _ @ - (starting with a letter or digit).'),
      role,
      field(user ? 'New password (leave empty to keep)' : 'Password', password, `At least ${minPassword} characters.`),
      feedback,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close('') }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary' }, user ? 'Save' : 'Add user')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (password.value && password.value.length < minPassword) {
        replace(feedback, message(`The password needs at least ${minPassword} characters.`, 'error'));
        password.focus();
        return;
      }
      try {
        if (user) {
          /** @type {Record<string, string>} */
          const patch = {};
          if (roleSelect.value !== user.role) patch.role = roleSelect.value;
          if (password.value) patch.password = password.value;
          if (Object.keys(patch).length === 0) return close('');
          await ctx.api('PATCH', `/users/${encodeURIComponent(user.name)}`, patch);
          notify(`${user.name} updated.`);
        } else {
          await ctx.api('POST', '/users', { name: name.value.trim(), role: roleSelect.value, password: password.value });
          notify(`${name.value.trim()} added as ${roleSelect.value}.`);
        }
        changed = true;
        close('ok');
      } catch (err) {
        replace(feedback, message(err instanceof Error ? err.message : String(err), 'error'));
      }
    });
    return form;
  });
  return changed;
}
