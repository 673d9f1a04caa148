// Review: a person's decisions on a proposal (accept, reject or rename each group and rule) → the
// policy text with the accepted part merged into the active policy, its diff against the active
// text, and notes. Pure: it applies nothing; the text then goes through the policy service's
// dry-run and apply like any edit. Parts without a decision are left out (nothing learned enters a
// policy unless a person accepted it). Bad decisions (unknown ids, invalid or colliding names) are
// a ReviewError with a clear message, never a text that silently differs from what was asked.

import { loadPolicyText } from '../../policy/load';
import { policyDiff } from '../services/diff-worker';
import { MergeError, mergeLearned } from './merge';
import { catchAllLast, groupText, isPolicyName, ruleText } from './propose';
import type { Decision, Proposal, ProposedGroup, ProposedRule, ReviewResult } from './types';

/** Decisions that cannot be carried out as given (the API answers 400 with the message). */
export class ReviewError extends Error {}

const NAME_RULE = 'names start with a letter and contain only letters, digits, "_", "." and "-" ("any" is reserved)';

export function review(proposal: Proposal, decisions: Decision[], activeText: string | null, now: number): ReviewResult {
  const groupsById = new Map(proposal.groups.map((g) => [g.id, g]));
  const rulesById = new Map(proposal.rules.map((r) => [r.id, r]));
  const decided = new Map<string, Decision>();
  for (const d of decisions) {
    const known = d.kind === 'group' ? groupsById.has(d.id) : rulesById.has(d.id);
    if (!known) throw new ReviewError(`decision for ${d.kind} '${d.id}': proposal ${proposal.id} has no such ${d.kind}`);
    if (decided.has(`${d.kind}|${d.id}`)) throw new ReviewError(`${d.kind} '${d.id}' has more than one decision`);
    if (d.rename !== undefined && !isPolicyName(d.rename)) throw new ReviewError(`rename of ${d.kind} '${d.id}' to '${d.rename}': ${NAME_RULE}`);
    decided.set(`${d.kind}|${d.id}`, d);
  }

  const active = activeText === null ? null : loadPolicyText(activeText, 'active policy');
  if (active !== null && !active.ok) throw new ReviewError('the active policy does not compile, so nothing can be merged into it');
  const model = active?.model ?? null;
  const notes: string[] = [];

  // Groups: accepted ones under their final names, which must be free.
  const finalName = new Map<string, string>();
  const groupOwner = new Map<string, string>();
  for (const name of model?.groups.keys() ?? []) groupOwner.set(name, 'the active policy');
  const groups: ProposedGroup[] = [];
  const undecided = { group: 0, rule: 0 };
  for (const g of proposal.groups) {
    const d = decided.get(`group|${g.id}`);
    if (!d) undecided.group++;
    if (!d?.accept) continue;
    const name = d.rename ?? g.name;
    const owner = groupOwner.get(name);
    if (owner) {
      throw new ReviewError(`group '${g.id}' ${d.rename ? `renamed to '${name}'` : `('${name}')`}: ${owner} already has a group '${name}'; choose another name`);
    }
    groupOwner.set(name, `group '${g.id}'`);
    finalName.set(g.name, name);
    groups.push({ ...g, name });
  }

  const ruleOwner = new Map<string, string>();
  for (const r of model?.rules ?? []) ruleOwner.set(r.name, 'the active policy');
  const rules: ProposedRule[] = [];
  for (const r of proposal.rules) {
    const d = decided.get(`rule|${r.id}`);
    if (!d) undecided.rule++;
    if (!d?.accept) continue;
    const missing = [r.from, r.to].filter((g) => !finalName.has(g));
    if (missing.length > 0) {
      notes.push(`rule '${r.id}' (${r.name}) is left out: its group${missing.length > 1 ? 's' : ''} ${[...new Set(missing)].map((m) => `'${m}'`).join(' and ')} ` +
        `${missing.length > 1 ? 'were' : 'was'} not accepted`);
      continue;
    }
    const name = d.rename ?? r.name;
    const owner = ruleOwner.get(name);
    if (owner) {
      throw new ReviewError(`rule '${r.id}' ${d.rename ? `renamed to '${name}'` : `('${name}')`}: ${owner} already has a rule '${name}'; choose another name`);
    }
    ruleOwner.set(name, `rule '${r.id}'`);
    rules.push({ ...r, name, from: finalName.get(r.from)!, to: finalName.get(r.to)! });
  }
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  if (undecided.group + undecided.rule > 0) {
    notes.push(`${count(undecided.group, 'group')} and ${count(undecided.rule, 'rule')} of the proposal had no decision and are left out`);
  }
  const used = new Set(rules.flatMap((r) => [r.from, r.to]));
  for (const g of groups) if (!used.has(g.name)) notes.push(`group '${g.name}' is used by no accepted rule (the compiler warns about unused groups)`);
  if (catchAllLast(model) && model!.rules[model!.rules.length - 1].action === 'allow' && rules.length > 0) {
    const last = model!.rules[model!.rules.length - 1].name;
    notes.push(`the active policy's last rule '${last}' allows everything; the learned rules come before it but change nothing until it is removed or made a deny`);
  }

  const heading = `pair ${proposal.pair}, proposal ${proposal.id}, reviewed ${new Date(now).toISOString()}`;
  let text: string;
  try {
    text = mergeLearned(activeText, groups.map(groupText), rules.map(ruleText), heading, catchAllLast(model));
  } catch (err) {
    throw err instanceof MergeError ? new ReviewError(err.message) : err;
  }
  const result = loadPolicyText(text, 'reviewed policy');
  if (!result.ok) for (const e of result.errors) notes.push(`the reviewed policy does not compile: ${e.line}:${e.col}: ${e.message}`);
  const { diff } = policyDiff('active policy', activeText ?? '', text);
  return { text, diff, notes };
}
