// Policy dry-run: decide every recently observed conversation under the running policy and under a
// candidate, exactly as the engine does for a flow's first packet (match4/match6 with the decoder's
// protocol numbers and rule key), and list those whose action changes, or whose deciding rule's
// application-layer block (`modbus:`) changes: the connection is still allowed, but not every request. Both policies compile on
// worker threads (policy/load-worker.ts), in parallel; only the lookups run here.

import { formatDiagnostic } from '../../policy/diagnostics';
import { loadPolicyInBackground } from '../../policy/load-worker';
import { ruleKeyOf } from '../../policy/match';
import { protocolNumber } from '../../wire/protocols';
import { modbusBlockText } from '../../policy/analysis/explain';
import { actionNames, type CompiledPolicy, type CompiledRule } from '../../policy/types';
import type { ObservedTuple } from './observed-flows';
import type { DryRunChange, DryRunResult } from './types';
import { parseIPv4, parseIPv6, v6ToWords } from '../../wire/address-text';

async function compile(text: string, what: string): Promise<CompiledPolicy> {
  const result = await loadPolicyInBackground(text, what);
  if (!result.ok) {
    const first = result.errors[0];
    const more = result.errors.length > 1 ? ` (and ${result.errors.length - 1} more errors)` : '';
    throw new Error(`${what} does not compile: ${first === undefined ? 'unknown error' : formatDiagnostic(first)}${more}`);
  }
  return result.policy;
}

/** Deciding rule index of one tuple under a policy. */
type Probe = (policy: CompiledPolicy) => number;

/** Null when the tuple's addresses or protocol cannot be read. */
function probeOf(t: ObservedTuple): Probe | null {
  const proto = protocolNumber(t.proto);
  if (proto === null) return null;
  // An observed ICMP tuple carries the type where the port would be (code 0 assumed).
  const key = ruleKeyOf(proto, t.dstPort, t.dstPort & 0xff, 0);
  const src4 = parseIPv4(t.src);
  const dst4 = parseIPv4(t.dst);
  if (src4 !== null && dst4 !== null) return (p) => p.match4(src4, dst4, proto, key);
  const src6 = parseIPv6(t.src);
  const dst6 = parseIPv6(t.dst);
  if (src6 === null || dst6 === null) return null;
  const srcWords = v6ToWords(src6);
  const dstWords = v6ToWords(dst6);
  return (p) => p.match6(srcWords, dstWords, proto, key);
}

/** The rule's modbus block in words, or undefined when its flows are not inspected. */
function inspectionOf(rule: CompiledRule): string | undefined {
  return rule.modbus === null ? undefined : `modbus: ${modbusBlockText(rule.modbus)}`;
}

function verdictOf(rule: CompiledRule): DryRunChange['before'] {
  const inspection = inspectionOf(rule);
  return inspection === undefined ? { rule: rule.name, action: actionNames[rule.action] } : { rule: rule.name, action: actionNames[rule.action], inspection };
}

export async function dryRun(observed: ObservedTuple[], activeText: string, candidateText: string): Promise<DryRunResult> {
  const [activeLoad, candidateLoad] = await Promise.allSettled([compile(activeText, 'active policy'), compile(candidateText, 'candidate policy')]);
  // The active policy's error first, as when they compiled one after the other.
  if (activeLoad.status === 'rejected') throw activeLoad.reason;
  if (candidateLoad.status === 'rejected') throw candidateLoad.reason;
  const active = activeLoad.value;
  const candidate = candidateLoad.value;
  const changes: DryRunChange[] = [];
  for (const t of observed) {
    const probe = probeOf(t);
    if (probe === null) continue;
    const before = active.rules[probe(active)];
    const after = candidate.rules[probe(candidate)];
    if (before.action === after.action && inspectionOf(before) === inspectionOf(after)) continue;
    changes.push({
      pair: t.pair,
      proto: t.proto,
      src: t.src,
      srcPort: t.srcPort,
      dst: t.dst,
      dstPort: t.dstPort,
      before: verdictOf(before),
      after: verdictOf(after),
    });
  }
  return { observed: observed.length, changes };
}
