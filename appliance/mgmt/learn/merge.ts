// Writes learned groups and rules into a policy text: the active policy's own text and comments stay
// as they are, byte for byte, and the learned part is inserted as marked blocks (one at the end of
// `groups`, one in `rules` just before a final catch-all rule, else at the end). Without an active
// policy it writes a fresh one. Text in, text out: it never compiles (propose.ts and review.ts check
// the result with the policy compiler) and never changes a line of the active text.

import { isMap, isScalar, isSeq, parseDocument, type Node, type Pair, type YAMLMap, type YAMLSeq } from 'yaml';

export interface LearnedGroupText {
  name: string;
  description: string;
  members: string[];
}

export interface LearnedRuleText {
  name: string;
  description: string;
  from: string;
  to: string;
  services: string[];
  /** The rule's `modbus: functions:` list; absent: no block. */
  functions?: (string | number)[];
  /** The block's `units:` (the unit identifiers seen); absent or empty: any unit. */
  units?: number[];
}

/** The active text cannot take the learned part as it is written (a clear message for the API). */
export class MergeError extends Error {}

/** A YAML double-quoted scalar (JSON's escaping is valid YAML). */
const q = (s: string): string => JSON.stringify(s);

const flowList = (items: (string | number)[]): string => `[${items.map((i) => (typeof i === 'number' ? String(i) : q(i))).join(', ')}]`;

function groupLines(groups: LearnedGroupText[], ind: string): string[] {
  return groups.flatMap((g) => [
    `${ind}${g.name}:`,
    `${ind}  description: ${q(g.description)}`,
    `${ind}  members: ${flowList(g.members)}`,
  ]);
}

function ruleLines(rules: LearnedRuleText[], ind: string): string[] {
  return rules.flatMap((r) => [
    `${ind}- name: ${r.name}`,
    `${ind}  description: ${q(r.description)}`,
    `${ind}  from: ${r.from}`,
    `${ind}  to: ${r.to}`,
    `${ind}  service: ${r.services.length === 1 ? q(r.services[0]) : flowList(r.services)}`,
    `${ind}  action: allow`,
    ...(r.functions ? [`${ind}  modbus:`, `${ind}    functions: ${flowList(r.functions)}`] : []),
    ...(r.functions && r.units && r.units.length > 0 ? [`${ind}    units: ${flowList(r.units)}`] : []),
  ]);
}

/** The marker lines around each learned block (review and people find the learned part by them). */
export const BEGIN_MARK = '# --- learned';
export const END_MARK = '# --- end of learned';

function block(lines: string[], ind: string, what: string, heading: string): string {
  return [`${ind}${BEGIN_MARK} ${what} (${heading}) ---`, ...lines, `${ind}${END_MARK} ${what} ---`, ''].join('\n');
}

interface Edit {
  at: number;
  /** Characters replaced from `at` (0: insert). */
  remove: number;
  text: string;
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

/** Offset just past the line holding `offset` (the text's end when it is the last line). */
function nextLine(text: string, offset: number): number {
  const nl = text.indexOf('\n', offset);
  return nl < 0 ? text.length : nl + 1;
}

/** Start of the comment lines directly above the line at `start` (they belong to what follows). */
function withCommentsAbove(text: string, start: number): number {
  let at = start;
  while (at > 0) {
    const prev = lineStart(text, at - 1);
    if (!/^\s*#/.test(text.slice(prev, at - 1))) break;
    at = prev;
  }
  return at;
}

const rangeOf = (node: Node): [number, number] => [node.range![0], node.range![1]];

/** An empty flow collection's range with the blanks before it (replaced by a block on the next lines). */
function emptyFlowRange(text: string, node: Node): [number, number] {
  let [from] = rangeOf(node);
  while (from > 0 && text[from - 1] === ' ') from--;
  return [from, node.range![1]];
}

function topPair(root: YAMLMap, key: string): Pair<unknown, unknown> | undefined {
  return root.items.find((p) => isScalar(p.key) && p.key.value === key);
}

/**
 * The active text with the learned groups and rules inserted. `catchAllLast`: the active policy's
 * last rule matches everything (from any to any, service any), so the learned rules go before it.
 */
export function mergeLearned(active: string | null, groups: LearnedGroupText[], rules: LearnedRuleText[], heading: string,
  catchAllLast: boolean): string {
  if (active === null) return freshPolicy(groups, rules, heading);
  if (groups.length === 0 && rules.length === 0) return active;
  const text = active.endsWith('\n') ? active : `${active}\n`;
  const doc = parseDocument(text);
  const root = doc.contents;
  if (!isMap(root)) throw new MergeError('the active policy is not a mapping');
  const edits: Edit[] = [];

  const rulesPair = topPair(root, 'rules');
  const rulesNode = rulesPair?.value;
  if (!rulesPair || !isSeq(rulesNode)) throw new MergeError('the active policy has no `rules` list');

  if (groups.length > 0) {
    const groupsPair = topPair(root, 'groups');
    const node = groupsPair?.value;
    if (!groupsPair) {
      // A new `groups:` section before `rules:` (and before the comments that introduce it).
      const at = withCommentsAbove(text, lineStart(text, (rulesPair.key as Node).range![0]));
      edits.push({ at, remove: 0, text: `groups:\n${block(groupLines(groups, '  '), '  ', 'groups', heading)}` });
    } else if (node === null || (isScalar(node) && node.value === null)) {
      const at = nextLine(text, (groupsPair.key as Node).range![1]);
      edits.push({ at, remove: 0, text: block(groupLines(groups, '  '), '  ', 'groups', heading) });
    } else if (isMap(node) && node.flow && node.items.length === 0) {
      const [from, to] = emptyFlowRange(text, node);
      edits.push({ at: from, remove: to - from, text: `\n${block(groupLines(groups, '  '), '  ', 'groups', heading).trimEnd()}` });
    } else if (isMap(node) && !node.flow) {
      const first = node.items[0].key as Node;
      const ind = ' '.repeat(first.range![0] - lineStart(text, first.range![0]));
      const last = node.items[node.items.length - 1];
      const end = (last.value as Node | null)?.range?.[1] ?? (last.key as Node).range![1];
      edits.push({ at: nextLine(text, Math.max(end - 1, 0)), remove: 0, text: block(groupLines(groups, ind), ind, 'groups', heading) });
    } else {
      throw new MergeError('the active policy writes `groups` in flow style ({...}); write it as a block mapping so learned groups can be added');
    }
  }

  if (rules.length > 0) edits.push(rulesEdit(text, rulesNode, rules, heading, catchAllLast));

  let out = text;
  for (const e of edits.sort((a, b) => b.at - a.at)) out = out.slice(0, e.at) + e.text + out.slice(e.at + e.remove);
  return out;
}

function rulesEdit(text: string, seq: YAMLSeq, rules: LearnedRuleText[], heading: string, catchAllLast: boolean): Edit {
  if (seq.flow) {
    if (seq.items.length > 0) {
      throw new MergeError('the active policy writes `rules` in flow style ([...]); write it as a block list so learned rules can be added');
    }
    const [from, to] = emptyFlowRange(text, seq);
    return { at: from, remove: to - from, text: `\n${block(ruleLines(rules, '  '), '  ', 'rules', heading).trimEnd()}` };
  }
  const first = seq.items[0] as Node;
  const firstStart = lineStart(text, first.range![0]);
  const dash = text.indexOf('-', firstStart);
  const ind = ' '.repeat(dash - firstStart);
  const lines = ruleLines(rules, ind);
  if (catchAllLast) {
    const last = seq.items[seq.items.length - 1] as Node;
    const at = withCommentsAbove(text, lineStart(text, last.range![0]));
    return { at, remove: 0, text: block(lines, ind, 'rules', heading) };
  }
  const last = seq.items[seq.items.length - 1] as Node;
  return { at: nextLine(text, Math.max(last.range![1] - 1, 0)), remove: 0, text: block(lines, ind, 'rules', heading) };
}

function freshPolicy(groups: LearnedGroupText[], rules: LearnedRuleText[], heading: string): string {
  return [
    'version: 1',
    `description: ${q(`learned (${heading})`)}`,
    'mode: enforce',
    'default: deny',
    ...(groups.length > 0 ? ['groups:', block(groupLines(groups, '  '), '  ', 'groups', heading).trimEnd()] : []),
    ...(rules.length > 0 ? ['rules:', block(ruleLines(rules, '  '), '  ', 'rules', heading).trimEnd()] : ['rules: []']),
    '',
  ].join('\n');
}

/** The text with its top-level `mode:` set to `mode` (the line replaced, or added after `version:`). */
export function withMode(text: string, mode: 'enforce' | 'monitor'): string {
  const doc = parseDocument(text);
  const root = doc.contents;
  if (!isMap(root)) throw new MergeError('the active policy is not a mapping');
  const pair = topPair(root, 'mode');
  if (pair && isScalar(pair.value) && pair.value.range) {
    const [from, to] = rangeOf(pair.value);
    return text.slice(0, from) + mode + text.slice(to);
  }
  const version = topPair(root, 'version');
  const at = version ? nextLine(text, (version.value as Node).range![1]) : 0;
  const before = text.slice(0, at);
  return `${before}${before === '' || before.endsWith('\n') ? '' : '\n'}mode: ${mode}\n${text.slice(at)}`;
}
