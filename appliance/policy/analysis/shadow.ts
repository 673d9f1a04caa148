// Shadow analysis at compile time: finds the rules that can never match because one earlier rule
// matches everything they do. Reads the tables the compiler has just built (compile.ts calls it);
// reports, never changes what is compiled, and is never loaded by the packet path.

import { intervalsCover } from '../addresses';
import { firstCommon, serviceSet } from '../match';
import type { ModelRule } from '../model';
import type { ServiceSet } from '../services';
import { KEY_MAX, type PolicyTables } from '../types';
import { Proto } from '../../wire/protocols';

export interface Shadowed {
  rule: ModelRule;
  by: ModelRule;
}

/** Per enabled rule, the bitset offset of the first elementary interval it is in, per address field. */
export interface FirstSets {
  src4: Int32Array;
  dst4: Int32Array;
  src6: Int32Array;
  dst6: Int32Array;
}

/** How many earlier rules to test for covering a rule before giving up (the check stays sound). */
const SHADOW_CANDIDATES = 32;

function servicesCover(outer: ServiceSet, inner: ServiceSet): boolean {
  if (outer.any) return true;
  if (inner.any) return false;
  for (const [proto, keys] of inner.protos) {
    const o = outer.protos.get(proto);
    if (!o || !intervalsCover(o, keys)) return false;
  }
  return true;
}

/** Does rule `outer` match everything rule `inner` matches? */
export function ruleCovers(outer: ModelRule, inner: ModelRule): boolean {
  return (
    intervalsCover(outer.src.v4, inner.src.v4) &&
    intervalsCover(outer.src.v6, inner.src.v6) &&
    intervalsCover(outer.dst.v4, inner.dst.v4) &&
    intervalsCover(outer.dst.v6, inner.dst.v6) &&
    servicesCover(outer.services, inner.services)
  );
}

/**
 * The shadowed rules among `rules` (the enabled rules, in table order). At the first point of a
 * rule's region, the earlier rules that match there are the only candidates that can cover the whole
 * rule. No candidate means the rule decides that point.
 */
export function findShadowed(
  rules: ModelRule[],
  tables: Pick<PolicyTables, 'bitsets' | 'summaryWords' | 'keySlot' | 'keyed' | 'protoSet'>,
  first: FirstSets,
): Shadowed[] {
  const { bitsets, summaryWords } = tables;
  const shadowed: Shadowed[] = [];
  rules.forEach((rule, i) => {
    const v4 = rule.src.v4.length > 0 && rule.dst.v4.length > 0;
    const a = v4 ? first.src4[i] : first.src6[i];
    const b = v4 ? first.dst4[i] : first.dst6[i];
    const [proto, keys] = rule.services.any ? [Proto.UNKNOWN, [0, KEY_MAX]] : rule.services.protos.entries().next().value!;
    const c = serviceSet(tables.keySlot, tables.keyed, tables.protoSet, proto, keys[0]);
    let from = 0;
    for (let tries = 0; tries < SHADOW_CANDIDATES; tries++) {
      const q = firstCommon(bitsets, summaryWords, a, b, c, from);
      if (q < 0 || q >= i) return;
      if (ruleCovers(rules[q], rule)) {
        shadowed.push({ rule, by: rules[q] });
        return;
      }
      from = q + 1;
    }
  });
  return shadowed;
}
