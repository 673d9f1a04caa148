// @ts-check
// The review before a policy changes, shared by the Policy view (apply, rollback) and the Learn view
// (apply a proposal): the diff against the active policy, the dry run on recently observed flows, a
// comment, then the request. Also the diff and dry-run renderings on their own. Must not apply
// anything without the user's confirming click.

import { actionBadge, connection, field, h, message, notify, openDialog, replace, table } from './lib.js';

/** @typedef {import('./app.js').ViewContext} ViewContext */

// ---------------------------------------------------------------------------------------------------
// Review: diff, dry run, comment, then the request.

/**
 * @typedef {object} ReviewOptions
 * @property {string} title
 * @property {string} text the candidate policy
 * @property {string} confirmLabel
 * @property {boolean} commentRequired
 * @property {(comment: string) => Promise<import('./api-types').Applied>} submit sends apply or rollback
 */

/**
 * @param {ViewContext} ctx
 * @param {ReviewOptions} options
 * @returns {Promise<boolean>} true when the policy was applied
 */
export async function reviewDialog(ctx, options) {
  const diffEl = h('div', { class: 'diff-wrap' }, message('Computing the difference…', 'info'));
  const dryRunEl = h('div', null, message('Checking recently observed flows…', 'info'));
  const comment = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 2, 'aria-required': options.commentRequired ? 'true' : undefined, placeholder: 'Why this change (kept in the history and the audit log)' }));
  const feedback = h('div', { class: 'feedback' });
  const confirm = h('button', { type: 'submit', class: 'primary', disabled: true }, options.confirmLabel);
  let applied = false;

  const closed = openDialog(options.title, (close) => {
    const form = h('form', { class: 'review' },
      h('section', { 'aria-labelledby': 'review-diff' }, h('h3', { id: 'review-diff' }, 'Difference from the active policy'), diffEl),
      h('section', { 'aria-labelledby': 'review-dryrun' }, h('h3', { id: 'review-dryrun' }, 'Dry run'), dryRunEl),
      field(options.commentRequired ? 'Comment (required)' : 'Comment', comment),
      feedback,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => close('') }, 'Cancel'),
        confirm));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = comment.value.trim();
      if (options.commentRequired && !text) {
        replace(feedback, message('Write a comment: it tells the next engineer why the policy changed.', 'error'));
        comment.focus();
        return;
      }
      confirm.setAttribute('disabled', '');
      replace(feedback, message('Applying to every port pair…', 'info'));
      try {
        const result = await options.submit(text);
        applied = true;
        const pairs = result.pairs;
        notify(`Policy v${result.version} applied${pairs.length ? ` to ${pairs.map((p) => `${p.pair} (generation ${p.generation})`).join(', ')}` : ' (no port pair connected)'}.`);
        close('applied');
      } catch (err) {
        const e2 = /** @type {any} */ (err);
        const details = /** @type {any[]} */ (e2.details ?? []);
        replace(feedback,
          message(e2.status === 502 ? `${e2.message}. The previous policy is still running on every port pair.` : e2.message, 'error'),
          details.length ? h('ul', { class: 'error-details' }, details.map((d) =>
            h('li', null, d.pair ? `${d.pair}: ${d.error}` : `line ${d.line}:${d.col}: ${d.message}`))) : null);
        confirm.removeAttribute('disabled');
      }
    });
    return form;
  }, 'dialog-wide');

  const [diffResult, dryRunResult] = await Promise.allSettled([
    ctx.api('POST', '/policy/diff', { text: options.text }),
    ctx.api('POST', '/policy/dry-run', { text: options.text }),
  ]);
  if (diffResult.status === 'fulfilled') replace(diffEl, renderDiff(diffResult.value));
  else replace(diffEl, message(`Could not compute the difference: ${diffResult.reason.message}`, 'error'));
  // 409: no policy is active yet, so there is nothing to compare with; applying the first one is fine.
  const nothingToCompare = dryRunResult.status === 'rejected' && dryRunResult.reason.status === 409;
  if (dryRunResult.status === 'fulfilled') replace(dryRunEl, renderDryRun(dryRunResult.value));
  else if (nothingToCompare) replace(dryRunEl, message(`${dryRunResult.reason.message}.`, 'info'));
  else replace(dryRunEl, message(`Dry run failed: ${dryRunResult.reason.message}`, 'error'));
  if ((dryRunResult.status === 'fulfilled' && dryRunResult.value.ok !== false) || nothingToCompare) confirm.removeAttribute('disabled');
  await closed;
  return applied;
}

/**
 * A unified diff, coloured by line, with the added/removed counts (counted here when the answer
 * has none, as learn's review result).
 * @param {{ diff: string, added?: number, removed?: number }} result
 */
export function renderDiff(result) {
  // The patch header's "Index:" and "=====" lines say nothing here.
  const lines = (result.diff ?? '').split('\n')
    .filter((l, i, all) => !/^(Index: |=+$)/.test(l) && !(i === all.length - 1 && l === ''));
  const added = result.added ?? lines.filter((l) => l.startsWith('+') && !l.startsWith('+++')).length;
  const removed = result.removed ?? lines.filter((l) => l.startsWith('-') && !l.startsWith('---')).length;
  if (!result.diff || (added === 0 && removed === 0)) return message('No difference: this is the active policy.', 'info');
  return h('div', null,
    h('p', { class: 'diff-summary' }, h('span', { class: 'text-ok' }, `+${added} added`), ' · ', h('span', { class: 'text-bad' }, `−${removed} removed`)),
    h('pre', { class: 'diff', 'aria-label': 'Unified diff' }, lines.map((line) => {
      const kind = line.startsWith('+++') || line.startsWith('---') ? 'diff-file'
        : line.startsWith('@@') ? 'diff-hunk' : line.startsWith('+') ? 'diff-add' : line.startsWith('-') ? 'diff-del' : 'diff-ctx';
      return h('span', { class: kind }, `${line}\n`);
    })));
}

/**
 * A rule and its action, and its modbus block in words when it has one.
 * @param {import('./api-types').DryRun['changes'][number]['before']} v
 */
function verdictCell(v) {
  return h('span', null, actionBadge(v.action), ' ', h('code', null, v.rule),
    v.inspection ? h('div', { class: 'muted' }, v.inspection) : null);
}

/** @param {import('./api-types').DryRun} result */
export function renderDryRun(result) {
  if (result.ok === false) {
    return h('div', null, message('The policy would be refused:', 'error'),
      h('ul', { class: 'error-details' }, (result.errors ?? []).map((e) =>
        h('li', null, `line ${e.line}:${e.col}: ${e.message}`))));
  }
  const changes = result.changes;
  const summary = changes.length === 0
    ? `None of the ${result.observed} recently observed flows would change verdict.`
    : `${changes.length} of the ${result.observed} recently observed flows would change verdict or inspection:`;
  return h('div', null,
    message(summary, changes.length ? 'warn' : 'ok'),
    changes.length ? table('Flows that change verdict', ['Pair', 'Connection', 'Now', 'After the change'], changes.map((c) => [
      c.pair,
      h('code', null, connection(c)),
      verdictCell(c.before),
      verdictCell(c.after),
    ]), '') : null);
}
