// @ts-check
// Learn: watch a port pair's traffic for a while, then turn what was seen into a policy. Per pair:
// start (duration, and whether the pair stays enforcing or is put in monitor mode meanwhile), stop,
// what has been learned so far; then a proposal over the last N hours with its coverage and what it
// leaves out, groups and rules each accepted or rejected and renamed; "Review" asks the appliance for
// the resulting policy text and its diff, which goes through the policy view's dry run and review
// dialog (comment, confirm) to be applied. Viewers see the status only. Must not change anything
// without a click, and never apply without the review dialog's confirmation.

import { learnStatus } from '../inventory-api.js';
import {
  badge, confirmDialog, field, formatCount, formatDuration, formatTime, h, message, notify, poll, replace, select, table, timeCell,
} from '../lib.js';
import { renderDiff, renderDryRun, reviewDialog } from '../review.js';

/** @typedef {import('../api-types').LearnStatus} LearnStatus */
/** @typedef {import('../api-types').Proposal} Proposal */
/** @typedef {import('../api-types').Decision} Decision */
/** @typedef {import('../app.js').ViewContext} ViewContext */

/** The policy's name rule (policy/schema.ts NAME_PATTERN); the appliance checks it again. */
const NAME_PATTERN = '[A-Za-z][A-Za-z0-9_.\\-]*';

const durations = /** @type {[string, string][]} */ ([
  [String(3_600_000), '1 hour'], [String(8 * 3_600_000), '8 hours (a shift)'], [String(24 * 3_600_000), '24 hours'],
  [String(3 * 24 * 3_600_000), '3 days'], [String(7 * 24 * 3_600_000), '7 days (a production week)'],
]);

/**
 * @param {HTMLElement} root
 * @param {ViewContext} ctx
 */
export function mount(root, ctx) {
  const canChange = ctx.can('learn');
  const pairsEl = h('div', { class: 'learn-pairs' });
  const proposalEl = h('div', { class: 'learn-proposal' });
  const summary = h('div', { class: 'muted', 'aria-live': 'polite' });
  replace(root,
    h('div', { class: 'page-head' }, h('h1', null, 'Learn'), summary),
    h('p', { class: 'lead' }, 'Learning records who talks to whom on a port pair. From what was seen, the appliance proposes groups and rules; you accept, reject or rename each, review the resulting policy (difference, dry run) and apply it like any other change.'),
    canChange ? null : message(`Read-only: your role (${ctx.user.role}) can see learning but not start it, propose or apply.`, 'info'),
    pairsEl, proposalEl);

  /** Pairs' cards by name, kept across refreshes so typed values stay. @type {Map<string, ReturnType<typeof pairCard>>} */
  const cards = new Map();
  /** The pairs whose cards are shown, in order. @type {string | null} */
  let shownPairs = null;

  const load = async () => {
    const pairs = await learnStatus(ctx.api);
    summary.textContent = `${formatCount(pairs.filter((p) => p.state === 'learning').length)} of ${formatCount(pairs.length)} pairs learning · ${formatTime(Date.now())}`;
    for (const status of pairs) {
      let card = cards.get(status.pair);
      if (!card) {
        card = pairCard(ctx, canChange, load, (proposal) => showProposal(ctx, proposalEl, proposal));
        cards.set(status.pair, card);
      }
      card.update(status);
    }
    // Cards move only when the pairs change (moving one takes the focus from its fields).
    const names = pairs.map((p) => p.pair).join('\n');
    if (names === shownPairs) return;
    shownPairs = names;
    replace(pairsEl, pairs.length ? pairs.map((p) => cards.get(p.pair)?.el) : message('No port pair is known yet: learning starts once a dataplane has connected.', 'info'));
  };
  return poll(5000, load, ctx.reportError);
}

// ---------------------------------------------------------------------------------------------------
// One pair: status, start/stop, propose

/**
 * @param {ViewContext} ctx
 * @param {boolean} canChange
 * @param {() => Promise<void>} refresh
 * @param {(p: Proposal) => void} onProposal
 */
function pairCard(ctx, canChange, refresh, onProposal) {
  const title = h('h2');
  const state = h('span');
  const facts = h('dl', { class: 'kv' });
  const duration = select('Learn for', durations, String(24 * 3_600_000));
  const mode = select('While learning', [['enforce', 'keep enforcing the policy'], ['monitor', 'monitor mode: block nothing']], 'enforce');
  const start = h('button', { type: 'button', class: 'primary' }, 'Start learning');
  const stop = h('button', { type: 'button', class: 'danger' }, 'Stop learning');
  const hours = /** @type {HTMLInputElement} */ (h('input', { type: 'number', min: 1, max: 720, step: 1, value: '24', class: 'narrow' }));
  const propose = h('button', { type: 'button' }, 'Propose a policy');
  const feedback = h('div');
  const controls = h('div', { class: 'learn-controls' });
  const el = h('section', { class: 'card learn-pair' },
    h('div', { class: 'card-head' }, title, state),
    facts, canChange ? controls : null, feedback);
  /** @type {LearnStatus | null} */
  let current = null;
  /** What the controls show: start (false) or stop (true); null before the first status. @type {boolean | null} */
  let shownLearning = null;

  const pairName = () => current?.pair ?? '';
  const value = (/** @type {HTMLElement} */ wrap) => /** @type {HTMLSelectElement} */ (wrap.querySelector('select')).value;

  start.addEventListener('click', async () => {
    const ms = Number(value(duration));
    const m = /** @type {'monitor' | 'enforce'} */ (value(mode));
    if (m === 'monitor' && !await confirmDialog('Learn in monitor mode',
      `While learning, ${pairName()} blocks nothing for ${formatDuration(ms)}: traffic the policy denies passes and is only counted. The policy goes back to enforcing when learning ends.`,
      'Start in monitor mode')) return;
    await act(() => ctx.api('POST', '/learn/start', { pair: pairName(), durationMs: ms, mode: m }), `Learning started on ${pairName()}.`);
  });
  stop.addEventListener('click', async () => {
    await act(() => ctx.api('POST', '/learn/stop', { pair: pairName() }), `Learning stopped on ${pairName()}.`);
  });
  propose.addEventListener('click', async () => {
    const n = Number(hours.value);
    if (!Number.isInteger(n) || n < 1 || n > 720) {
      replace(feedback, message('Hours must be a whole number from 1 to 720.', 'error'));
      return;
    }
    replace(feedback, message('Building the proposal…', 'info'));
    propose.setAttribute('disabled', '');
    try {
      const proposal = await ctx.api('POST', '/learn/propose', { pair: pairName(), hours: n });
      replace(feedback);
      onProposal(proposal);
    } catch (err) {
      replace(feedback, message(`Could not propose: ${err instanceof Error ? err.message : err}`, 'error'));
    } finally {
      propose.removeAttribute('disabled');
    }
  });

  /** @param {() => Promise<unknown>} request @param {string} done */
  const act = async (request, done) => {
    replace(feedback);
    try {
      await request();
      notify(done);
      await refresh();
    } catch (err) {
      replace(feedback, message(err instanceof Error ? err.message : String(err), 'error'));
    }
  };

  /** @param {LearnStatus} s */
  const update = (s) => {
    current = s;
    replace(title, `Port pair ${s.pair}`);
    el.setAttribute('aria-label', `Learning on ${s.pair}`);
    const learning = s.state === 'learning';
    replace(state,
      learning ? badge('learning', 'info') : s.state === 'done' ? badge('learning done', 'ok') : badge('not learning', 'plain'),
      learning && s.mode === 'monitor' ? [' ', badge('monitor mode: nothing blocked', 'warn')] : null);
    replace(facts,
      s.startedAt !== null ? [h('dt', null, 'Started'), h('dd', null, `${formatTime(s.startedAt)}${s.author ? ` by ${s.author}` : ''}`)] : null,
      s.endsAt !== null ? [h('dt', null, learning ? 'Ends' : 'Ended'), h('dd', null, formatTime(s.endsAt),
        learning ? h('span', { class: 'muted' }, ` (in ${formatDuration(s.endsAt - Date.now())})`) : null)] : null,
      s.mode ? [h('dt', null, 'Mode'), h('dd', null, s.mode === 'monitor' ? 'monitor mode (nothing blocked meanwhile)' : 'enforcing, observing everything')] : null,
      h('dt', null, 'Learned so far'), h('dd', null, `${formatCount(s.assets)} assets · ${formatCount(s.conversations)} conversations`));
    // Rebuilt only when the state changes: the 5 s refresh must not take the focus from a field.
    if (learning === shownLearning) return;
    shownLearning = learning;
    replace(controls,
      learning
        ? h('div', { class: 'inline-form' }, stop)
        : h('div', { class: 'inline-form' }, duration, mode, start),
      h('div', { class: 'inline-form' }, field('Cover the last (hours)', hours), propose));
  };
  return { el, update };
}

// ---------------------------------------------------------------------------------------------------
// The proposal: coverage, decisions, review, dry run, apply

/**
 * @param {ViewContext} ctx
 * @param {HTMLElement} where
 * @param {Proposal} proposal
 */
function showProposal(ctx, where, proposal) {
  const cov = proposal.coverage;
  const percent = Math.round(cov.share * 1000) / 10;

  /** Each group's and rule's decision inputs. */
  const groupInputs = proposal.groups.map((g) => ({
    g,
    accept: /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', checked: true, 'aria-label': `Accept group ${g.name}` })),
    name: /** @type {HTMLInputElement} */ (h('input', { value: g.name, pattern: NAME_PATTERN, required: true, spellcheck: 'false', 'aria-label': `Name of group ${g.name}` })),
  }));
  const ruleInputs = proposal.rules.map((r) => ({
    r,
    accept: /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', checked: true, 'aria-label': `Accept rule ${r.name}` })),
    name: /** @type {HTMLInputElement} */ (h('input', { value: r.name, class: 'rule-name', pattern: NAME_PATTERN, required: true, spellcheck: 'false', 'aria-label': `Name of rule ${r.name}` })),
    ends: h('span', { class: 'nowrap' }),
  }));
  const groupByName = new Map(groupInputs.map((i) => [i.g.name, i]));

  const reviewEl = h('div', { class: 'review-result' });
  const feedback = h('div');
  const reviewButton = h('button', { type: 'submit', class: 'primary' }, 'Review');
  /** The review's text once reviewed and not changed since. @type {string | null} */
  let reviewedText = null;

  /** Rules name their groups as the user renamed them; a rule on a rejected group cannot be kept. */
  const updateRules = () => {
    for (const i of ruleInputs) {
      const end = (/** @type {string} */ name) => {
        const group = groupByName.get(name);
        if (!group) return h('code', null, name);
        const shown = group.name.value.trim() || name;
        return group.accept.checked ? h('code', null, shown) : h('code', { class: 'text-bad', title: 'This group is rejected' }, `${shown} (rejected)`);
      };
      replace(i.ends, end(i.r.from), ' → ', end(i.r.to));
    }
  };
  const stale = () => {
    if (reviewedText === null) return;
    reviewedText = null;
    replace(reviewEl, message('The decisions changed: review again before applying.', 'warn'));
  };
  for (const i of [...groupInputs, ...ruleInputs]) {
    i.accept.addEventListener('change', () => { updateRules(); stale(); });
    i.name.addEventListener('input', () => { updateRules(); stale(); });
  }
  updateRules();

  /** @returns {Decision[]} one per group and rule; rename only when the name changed */
  const decisions = () => [
    ...groupInputs.map((i) => decision('group', i.g.id, i.accept.checked, i.g.name, i.name.value)),
    ...ruleInputs.map((i) => decision('rule', i.r.id, i.accept.checked, i.r.name, i.name.value)),
  ];

  const canChange = ctx.can('learn');
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'proposal', 'aria-label': 'Decisions', novalidate: true },
    h('section', { class: 'card', 'aria-labelledby': 'proposal-groups' },
      h('div', { class: 'card-head' }, h('h2', { id: 'proposal-groups' }, `Groups (${proposal.groups.length})`),
        h('span', { class: 'muted' }, 'Named from what the hosts said about themselves; rename to what your plant calls them.')),
      table('Proposed groups', ['Accept', 'Name', 'Named from', 'Members'], groupInputs.map((i) => [
        i.accept,
        i.name,
        namedFrom(i.g.namedFrom),
        h('div', null, i.g.members.map((m) => h('div', null, h('code', { class: 'small' }, m)))),
      ]), 'No group proposed.')),
    h('section', { class: 'card', 'aria-labelledby': 'proposal-rules' },
      h('div', { class: 'card-head' }, h('h2', { id: 'proposal-rules' }, `Rules (${proposal.rules.length})`),
        h('span', { class: 'muted' }, 'Each allows what was seen, no more.')),
      table('Proposed rules', ['Accept', 'Name', 'From → to', 'Services', 'Modbus', 'Flows', 'Seen'], ruleInputs.map((i) => [
        i.accept,
        i.name,
        h('div', null, i.ends, h('div', { class: 'small muted' }, i.r.description)),
        h('code', null, i.r.services.join(', ')),
        i.r.modbus ? h('div', { class: 'small' }, h('div', null, `functions: ${i.r.modbus.functions.join(', ')}`), h('div', { class: 'muted' }, `units: ${i.r.modbus.units.join(', ') || 'any'}`)) : h('span', { class: 'muted' }, '—'),
        h('span', { class: 'num' }, formatCount(i.r.flows)),
        h('div', { class: 'small nowrap' }, timeCell(i.r.firstSeen), h('br'), 'to ', timeCell(i.r.lastSeen)),
      ]), 'No rule proposed.')),
    h('div', { class: 'actions actions-left' },
      canChange ? reviewButton : null,
      canChange ? h('span', { class: 'muted' }, 'Builds the policy text from what you accepted and shows the difference from the active policy. Nothing is applied yet.') : null),
    feedback));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const invalid = [...groupInputs, ...ruleInputs].find((i) => !i.name.checkValidity());
    if (invalid) {
      replace(feedback, message(`“${invalid.name.value}” cannot be a name: names start with a letter and contain only letters, digits, "_", "." and "-".`, 'error'));
      invalid.name.focus();
      return;
    }
    replace(feedback);
    replace(reviewEl, message('Building the policy from your decisions…', 'info'));
    reviewButton.setAttribute('disabled', '');
    try {
      const result = await ctx.api('POST', '/learn/review', { pair: proposal.pair, proposalId: proposal.id, decisions: decisions() });
      reviewedText = result.text;
      showReview(ctx, reviewEl, result, () => reviewedText);
    } catch (err) {
      replace(reviewEl, message(`Could not review: ${err instanceof Error ? err.message : err}`, 'error'));
    } finally {
      reviewButton.removeAttribute('disabled');
    }
  });

  replace(where,
    h('section', { class: 'card', 'aria-labelledby': 'proposal-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'proposal-title' }, `Proposal for ${proposal.pair}`),
        h('span', { class: 'muted' }, `built ${formatTime(proposal.createdAt)} from the last ${cov.hours} h`)),
      h('div', { class: 'coverage', role: 'group', 'aria-label': 'Coverage' },
        h('div', { class: 'coverage-number' }, `${percent}%`),
        h('div', null,
          h('div', null, `The proposal allows ${formatCount(cov.allowed)} of the ${formatCount(cov.conversations)} conversations seen in the last ${cov.hours} h.`),
          h('meter', { min: 0, max: 1, value: cov.share, 'aria-label': 'Share of conversations allowed' }))),
      proposal.errors.length
        ? message(`The proposed text does not compile: ${proposal.errors.join('; ')}`, 'error') : null,
      cov.leftOut.length
        ? h('div', null, h('h3', null, `Left out (${formatCount(cov.leftOut.length + cov.leftOutOmitted)}): these would be denied` +
          (cov.leftOutOmitted ? ` — the ${formatCount(cov.leftOut.length)} with most flows listed` : '')),
          table('Left out of the proposal', ['Client', 'Server', 'Service', 'Why', 'Flows'], cov.leftOut.map((l) => [
            h('code', null, l.client), h('code', null, l.server), l.service, l.reason, h('span', { class: 'num' }, formatCount(l.flows)),
          ]), ''))
        : message('Nothing seen is left out.', 'ok')),
    form,
    h('section', { class: 'card', 'aria-labelledby': 'review-title' }, h('h2', { id: 'review-title' }, 'Review'), reviewEl));
  replace(reviewEl, h('p', { class: 'muted' }, canChange ? 'Accept, reject or rename above, then Review.' : 'Read-only.'));
  where.scrollIntoView({ block: 'start' });
}

/**
 * @param {'group' | 'rule'} kind
 * @param {string} id
 * @param {boolean} accept
 * @param {string} proposed
 * @param {string} typed
 * @returns {Decision}
 */
function decision(kind, id, accept, proposed, typed) {
  const name = typed.trim();
  return name && name !== proposed ? { kind, id, accept, rename: name } : { kind, id, accept };
}

/** @param {string} source lldp | dhcp | modbus | vendor | address */
function namedFrom(source) {
  /** @type {Record<string, string>} */
  const words = { lldp: 'LLDP system name', dhcp: 'DHCP host name', modbus: 'Modbus identification', vendor: 'MAC vendor', address: 'address' };
  return words[source] ?? source;
}

/**
 * The review result: notes, the diff; then dry run and apply through the policy routes.
 * @param {ViewContext} ctx
 * @param {HTMLElement} where
 * @param {import('../api-types').ReviewResult} result
 * @param {() => string | null} currentText the reviewed text while the decisions did not change since
 */
function showReview(ctx, where, result, currentText) {
  const dryRunEl = h('div');
  const dryRun = h('button', { type: 'button' }, 'Dry run');
  const apply = h('button', { type: 'button', class: 'primary' }, 'Apply…');
  dryRun.addEventListener('click', async () => {
    replace(dryRunEl, message('Checking recently observed flows…', 'info'));
    try {
      replace(dryRunEl, renderDryRun(await ctx.api('POST', '/policy/dry-run', { text: result.text })));
    } catch (err) {
      const e = /** @type {any} */ (err);
      replace(dryRunEl, message(e.status === 409 ? `${e.message}.` : `Dry run failed: ${e.message}`, e.status === 409 ? 'info' : 'error'));
    }
  });
  apply.addEventListener('click', async () => {
    const text = currentText();
    if (text === null) return;
    const applied = await reviewDialog(ctx, {
      title: 'Apply the learned policy',
      text,
      confirmLabel: 'Apply policy',
      commentRequired: true,
      submit: (comment) => ctx.api('POST', '/policy/apply', { text, comment }),
    });
    if (applied) ctx.policyChanged();
  });
  replace(where,
    result.notes.length ? h('div', { class: 'message message-warn', role: 'status' }, h('strong', null, 'Notes'),
      h('ul', null, result.notes.map((n) => h('li', null, n)))) : null,
    h('h3', null, 'Difference from the active policy'),
    h('div', { class: 'diff-wrap' }, renderDiff({ diff: result.diff })),
    h('div', { class: 'actions actions-left' }, dryRun, ctx.can('apply') ? [apply,
      h('span', { class: 'muted' }, 'Apply asks for a comment and shows the dry run again before anything changes.')] : null),
    dryRunEl);
}
