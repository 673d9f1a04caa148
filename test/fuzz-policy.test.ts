// Fuzz: mutated policy files through the loader. Seeded mutations of the example policies (bytes
// flipped, lines dropped, doubled or swapped, tokens replaced by hostile ones) must always give a
// result, never a throw, and a refused file must say where: file:line:col inside the text.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyText } from '../appliance/policy/load';
import { projectRoot } from '../appliance/paths';
import { prng } from '../appliance/policy/generate';

const SEED = Number(process.env.GATEKEEPER_FUZZ_SEED ?? 20261201);
const CASES = Number(process.env.GATEKEEPER_FUZZ_POLICIES ?? 3000);
/** Bounded time: the loop stops early rather than let a slow machine run over. */
const BUDGET_MS = 60_000;

const HOSTILE = [
  '', '-', ':', '[', ']', '{', '}', '*', '&a', '*a', '!!binary', '~', 'null', '0x', '999999999999999999999',
  '-1', '1e309', '0.0.0.0/33', '::/129', '256.1.1.1', 'tcp/0-70000', 'icmp/300', 'proto/-1', '"\\u0000"',
  'allow', 'reject', 'monitor', 'a'.repeat(5000), '\t', '? ', '<<: *x', '!!python/object', '%YAML 9.9',
];

function mutate(text: string, rnd: () => number): string {
  const pick = <T>(list: T[]): T => list[Math.floor(rnd() * list.length)];
  let lines = text.split('\n');
  const rounds = 1 + Math.floor(rnd() * 4);
  for (let r = 0; r < rounds; r++) {
    const i = Math.floor(rnd() * lines.length);
    switch (Math.floor(rnd() * 7)) {
      case 0: lines.splice(i, 1); break;
      case 1: lines.splice(i, 0, lines[Math.floor(rnd() * lines.length)] ?? ''); break;
      case 2: {
        const j = Math.floor(rnd() * lines.length);
        [lines[i], lines[j]] = [lines[j], lines[i]];
        break;
      }
      case 3: {
        // Replace one token of the line.
        const tokens = (lines[i] ?? '').split(/(\s+|:|,|\[|\])/);
        tokens[Math.floor(rnd() * tokens.length)] = pick(HOSTILE);
        lines[i] = tokens.join('');
        break;
      }
      case 4: lines[i] = (lines[i] ?? '').replace(/^\s*/, (s) => ' '.repeat(Math.max(0, s.length + Math.floor(rnd() * 5) - 2))); break;
      case 5: {
        const bytes = Buffer.from(lines.join('\n'));
        if (bytes.length > 0) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
        lines = bytes.toString('latin1').split('\n');
        break;
      }
      default: lines = lines.slice(0, Math.floor(rnd() * lines.length));
    }
  }
  return lines.join('\n');
}

const seeds = ['lab.yaml', 'plant.yaml'].map((name) => readFileSync(join(projectRoot, 'docs', 'examples', name), 'utf8'));

t.test(`mutated policies: always diagnostics, never a throw (seed ${SEED})`, async (t) => {
  const rnd = prng(SEED);
  const started = Date.now();
  let refused = 0;
  let accepted = 0;
  const problems: string[] = [];
  let i = 0;
  for (; i < CASES && Date.now() - started < BUDGET_MS; i++) {
    const text = mutate(seeds[i % seeds.length], rnd);
    const lineCount = text.split('\n').length;
    try {
      const result = loadPolicyText(text, 'fuzz.yaml');
      if (result.ok) {
        accepted++;
        continue;
      }
      refused++;
      if (result.errors.length === 0) problems.push(`case ${i}: refused without an error`);
      for (const d of result.errors) {
        if (d.file !== 'fuzz.yaml' || !(d.line >= 1 && d.line <= lineCount + 1) || !(d.col >= 1) || d.message.length === 0) {
          problems.push(`case ${i}: diagnostic out of the text: ${JSON.stringify(d)}`);
        }
      }
    } catch (err) {
      problems.push(`case ${i}: threw ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ')}`);
    }
    if (problems.length > 10) break;
  }
  t.same(problems, [], 'no throw, every refusal located in the text');
  t.ok(i >= Math.min(CASES, 500), `ran ${i} cases in ${Date.now() - started} ms`);
  t.ok(refused > i / 4 && accepted > 0, `the mutations reach both outcomes (refused ${refused}, accepted ${accepted})`);
});
