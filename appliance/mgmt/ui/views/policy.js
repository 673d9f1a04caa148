// @ts-check
// Policy: an editor validated as you type (errors and warnings with line:col, highlighted in the
// gutter, a click moves the cursor there), a review step before anything changes (diff against the
// active policy + dry run on recently observed flows + a required comment), and the history with
// rollback through the same review.

import {
  badge, confirmDialog, debounce, field, formatTime, h, openDialog, replace, shortHash, table,
} from '../lib.js';
import { reviewDialog } from '../review.js';

/** @typedef {import('../api-types').Problem} Problem */
/** @typedef {import('../api-types').ActivePolicy} ActivePolicy */
/** @typedef {import('../app.js').ViewContext} ViewContext */

/**
 * @param {HTMLElement} root
 * @param {ViewContext} ctx
 */
export function mount(root, ctx) {
  const activeEl = h('div', { class: 'active-policy' });
  const editorTab = h('button', { type: 'button', role: 'tab', id: 'tab-editor', 'aria-controls': 'panel-editor', 'aria-selected': 'true' }, 'Editor');
  const historyTab = h('button', { type: 'button', role: 'tab', id: 'tab-history', 'aria-controls': 'panel-history', 'aria-selected': 'false', tabindex: '-1' }, 'History');
  const editorPanel = h('div', { role: 'tabpanel', id: 'panel-editor', 'aria-labelledby': 'tab-editor' });
  const historyPanel = h('div', { role: 'tabpanel', id: 'panel-history', 'aria-labelledby': 'tab-history', hidden: true });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Policy'), activeEl),
    h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Policy' }, editorTab, historyTab),
    editorPanel, historyPanel);

  /** @type {ActivePolicy | null} */
  let active = null;
  const editor = createEditor(ctx, () => active, async () => {
    ctx.policyChanged();
    await loadActive();
    await history.load();
  });
  const history = createHistory(ctx, () => active, (text) => {
    editor.setText(text);
    selectTab(editorTab);
  }, async () => {
    ctx.policyChanged();
    await loadActive();
    editor.setText(active?.text ?? '');
    await history.load();
  });
  replace(editorPanel, editor.el);
  replace(historyPanel, history.el);

  /** @param {HTMLElement} tab */
  const selectTab = (tab) => {
    for (const [t, panel] of [[editorTab, editorPanel], [historyTab, historyPanel]]) {
      const selected = t === tab;
      t.setAttribute('aria-selected', String(selected));
      t.setAttribute('tabindex', selected ? '0' : '-1');
      panel.hidden = !selected;
    }
    if (tab === historyTab) history.load().catch(ctx.reportError);
  };
  for (const tab of [editorTab, historyTab]) {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const other = tab === editorTab ? historyTab : editorTab;
      selectTab(other);
      other.focus();
    });
  }

  const loadActive = async () => {
    try {
      active = await ctx.api('GET', '/policy');
    } catch (err) {
      if (/** @type {any} */ (err).status !== 404) throw err;
      active = null;
    }
    replace(activeEl, active
      ? h('span', null, `Active: v${active.version} `, active.mode === 'monitor' ? badge('monitor mode', 'warn') : badge('enforcing', 'ok'),
        h('span', { class: 'muted' }, ` applied ${formatTime(active.appliedAt)} by ${active.author}`, active.comment ? ` — “${active.comment}”` : ''))
      : badge('no policy stored yet', 'warn'));
  };

  loadActive().then(() => editor.setText(active?.text ?? ''), ctx.reportError);
  return () => editor.stop();
}

// ---------------------------------------------------------------------------------------------------
// Editor

/**
 * @param {ViewContext} ctx
 * @param {() => ActivePolicy | null} getActive
 * @param {() => Promise<void>} afterApply
 */
function createEditor(ctx, getActive, afterApply) {
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const textarea = /** @type {HTMLTextAreaElement} */ (h('textarea', {
    id: 'policy-text', class: 'code', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off',
    'aria-describedby': 'policy-status',
  }));
  const status = h('div', { id: 'policy-status', class: 'validation', role: 'status' });
  const problemsEl = h('div', { class: 'problems' });
  const revert = h('button', { type: 'button' }, 'Revert to active');
  const review = h('button', { type: 'button', class: 'primary' }, 'Review and apply…');
  const el = h('section', { class: 'card editor-card' },
    h('div', { class: 'toolbar' },
      h('label', { for: 'policy-text', class: 'toolbar-title' }, 'Policy (YAML)'),
      status,
      h('div', { class: 'spacer' }),
      revert,
      ctx.can('apply') ? review : h('span', { class: 'muted' }, `Read-only: your role (${ctx.user.role}) cannot apply policies.`)),
    h('div', { class: 'editor' }, gutter, textarea),
    problemsEl);

  /** @type {{ errors: Problem[], warnings: Problem[] }} */
  let problems = { errors: [], warnings: [] };
  let validated = false;
  let sequence = 0;
  let stopped = false;

  const lineCount = () => textarea.value.split('\n').length;
  const renderGutter = () => {
    const errorLines = new Set(problems.errors.map((p) => p.line));
    const warningLines = new Set(problems.warnings.map((p) => p.line));
    const lines = [];
    for (let i = 1; i <= lineCount(); i++) {
      const kind = errorLines.has(i) ? 'line-error' : warningLines.has(i) ? 'line-warning' : '';
      lines.push(h('div', { class: kind }, String(i)));
    }
    replace(gutter, lines);
    gutter.scrollTop = textarea.scrollTop;
  };

  const dirty = () => textarea.value !== (getActive()?.text ?? '');
  const updateButtons = () => {
    const canReview = validated && problems.errors.length === 0 && dirty();
    review.toggleAttribute('disabled', !canReview);
    review.title = !dirty() ? 'The text is the active policy.' : problems.errors.length ? 'Fix the errors first.' : '';
    revert.toggleAttribute('disabled', !dirty());
  };

  /** @param {Problem} p */
  const goTo = (p) => {
    const lines = textarea.value.split('\n');
    const line = Math.min(Math.max(1, p.line), lines.length);
    let offset = 0;
    for (let i = 0; i < line - 1; i++) offset += lines[i].length + 1;
    offset += Math.min(Math.max(0, p.col - 1), lines[line - 1].length);
    textarea.focus();
    textarea.setSelectionRange(offset, offset);
    const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 20;
    textarea.scrollTop = Math.max(0, (line - 1) * lineHeight - textarea.clientHeight / 2);
  };

  /**
   * @param {Problem} p
   * @param {'error' | 'warning'} kind
   */
  const problemItem = (p, kind) => h('li', { class: `problem problem-${kind}` },
    h('button', { type: 'button', class: 'problem-link', onclick: () => goTo(p), title: 'Move the cursor there' },
      h('span', { class: 'problem-kind' }, kind), ' ',
      h('span', { class: 'problem-pos' }, `line ${p.line}:${p.col}`), ' ',
      h('span', { class: 'problem-message' }, p.message)));

  const renderProblems = () => {
    const items = [...problems.errors.map((p) => problemItem(p, 'error')), ...problems.warnings.map((p) => problemItem(p, 'warning'))];
    replace(problemsEl, items.length ? h('ul', { 'aria-label': 'Problems' }, items) : null);
  };

  const validate = async () => {
    const mine = ++sequence;
    validated = false;
    updateButtons();
    replace(status, badge('checking…', 'plain'));
    let result;
    try {
      result = await ctx.api('POST', '/policy/validate', { text: textarea.value });
    } catch (err) {
      if (mine === sequence) replace(status, badge('could not check', 'bad', /** @type {Error} */ (err).message));
      return;
    }
    if (mine !== sequence || stopped) return;
    problems = { errors: result.errors ?? [], warnings: result.warnings ?? [] };
    validated = true;
    const stats = result.stats;
    replace(status,
      problems.errors.length
        ? badge(`${problems.errors.length} error${problems.errors.length > 1 ? 's' : ''}: would be refused`, 'bad')
        : badge('valid', 'ok'),
      problems.warnings.length ? [' ', badge(`${problems.warnings.length} warning${problems.warnings.length > 1 ? 's' : ''}`, 'warn')] : null,
      stats && !problems.errors.length ? h('span', { class: 'muted' }, ` ${stats.rules} rules · ${stats.groups} groups · ${stats.services} services · compiled in ${Number(stats.compileMs).toFixed(1)} ms`) : null);
    renderGutter();
    renderProblems();
    updateButtons();
  };
  const validateSoon = debounce(400, () => { validate(); });

  textarea.addEventListener('input', () => {
    validated = false;
    updateButtons();
    // Rebuilding the gutter per keystroke is only needed when lines were added or removed.
    if (gutter.childElementCount !== lineCount()) renderGutter();
    validateSoon();
  });
  textarea.addEventListener('scroll', () => { gutter.scrollTop = textarea.scrollTop; });

  revert.addEventListener('click', async () => {
    if (await confirmDialog('Revert changes', 'Discard your edits and load the active policy again?', 'Discard edits')) {
      setText(getActive()?.text ?? '');
    }
  });

  review.addEventListener('click', async () => {
    const text = textarea.value;
    const applied = await reviewDialog(ctx, {
      title: 'Review policy change',
      text,
      confirmLabel: 'Apply policy',
      commentRequired: true,
      submit: (comment) => ctx.api('POST', '/policy/apply', { text, comment }),
    });
    if (applied) {
      await afterApply().catch(ctx.reportError);
      updateButtons();
    }
  });

  /** @param {string} text */
  const setText = (text) => {
    textarea.value = text;
    problems = { errors: [], warnings: [] };
    renderGutter();
    renderProblems();
    validate();
  };

  return { el, setText, stop: () => { stopped = true; } };
}

// ---------------------------------------------------------------------------------------------------
// History

/**
 * @param {ViewContext} ctx
 * @param {() => ActivePolicy | null} getActive
 * @param {(text: string) => void} openInEditor
 * @param {() => Promise<void>} afterRollback
 */
function createHistory(ctx, getActive, openInEditor, afterRollback) {
  const filter = /** @type {HTMLInputElement} */ (h('input', { type: 'search', placeholder: 'author, comment, version…' }));
  const list = h('div');
  const el = h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', null, 'Applied versions'), field('Filter history', filter)),
    list);
  /** @type {import('../api-types').PolicyHistory['versions']} */
  let versions = [];

  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = versions.filter((v) => !q || [`v${v.version}`, v.author, v.comment ?? '', v.hash, v.mode].some((s) => String(s).toLowerCase().includes(q)));
    replace(list, table('Policy versions', ['Version', 'Applied', 'Author', 'Comment', 'Mode', 'Hash', 'Status', ''], rows.map((v) => [
      h('strong', null, `v${v.version}`),
      h('span', { class: 'nowrap' }, formatTime(v.appliedAt)),
      v.author,
      v.comment || h('span', { class: 'muted' }, '—'),
      v.mode === 'monitor' ? badge('monitor', 'warn') : badge('enforce', 'plain'),
      h('code', { title: v.hash }, shortHash(v.hash)),
      v.active ? badge('active', 'ok') : '',
      h('div', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => view(v.version), 'aria-label': `View v${v.version}` }, 'View'),
        ctx.can('apply') && !v.active
          ? h('button', { type: 'button', onclick: () => rollback(v.version), 'aria-label': `Roll back to v${v.version}` }, 'Roll back…')
          : null),
    ]), q ? 'No version matches the filter.' : 'No policy has been applied yet.'));
  };
  filter.addEventListener('input', render);

  /** A stored version, or undefined after the error was shown. @param {number} version */
  const fetchVersion = (version) => ctx.api('GET', `/policy/history/${version}`).catch((err) => {
    ctx.reportError(err);
    return undefined;
  });

  /** @param {number} version */
  const view = async (version) => {
    const stored = await fetchVersion(version);
    if (!stored) return;
    const choice = await openDialog(`Policy v${version}`, (close) => [
      h('p', { class: 'muted' }, `Applied ${formatTime(stored.appliedAt)} by ${stored.author}${stored.comment ? ` — “${stored.comment}”` : ''} · hash `, h('code', null, shortHash(stored.hash))),
      h('pre', { class: 'code-view', tabindex: '0', 'aria-label': `Text of policy v${version}` }, stored.text),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close('') }, 'Close'),
        h('button', { type: 'button', onclick: () => close('edit') }, 'Open in editor'),
        ctx.can('apply') && !stored.active ? h('button', { type: 'button', class: 'primary', onclick: () => close('rollback') }, 'Roll back to this version…') : null),
    ], 'dialog-wide');
    if (choice === 'edit') openInEditor(stored.text);
    if (choice === 'rollback') await rollback(version);
  };

  /** @param {number} version */
  const rollback = async (version) => {
    const stored = await fetchVersion(version);
    if (!stored) return;
    const active = getActive();
    const applied = await reviewDialog(ctx, {
      title: `Review rollback to v${version}${active ? ` (from v${active.version})` : ''}`,
      text: stored.text,
      confirmLabel: `Roll back to v${version}`,
      commentRequired: true,
      submit: (comment) => ctx.api('POST', '/policy/rollback', { version, comment }),
    });
    if (applied) await afterRollback().catch(ctx.reportError);
  };

  const load = async () => {
    versions = (await ctx.api('GET', '/policy/history')).versions;
    versions.sort((a, b) => b.version - a.version);
    render();
  };
  return { el, load };
}
