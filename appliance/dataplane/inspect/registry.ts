// Application-layer inspectors, one per protocol, and which rule uses which: a rule with a block for a
// protocol has its flows inspected by that protocol's inspector. Runs when a policy is installed,
// never per packet. A new protocol is one more entry here and one more folder beside modbus/.

import type { CompiledPolicy } from '../../policy/types';
import type { AppInspector } from './inspector';
import { ModbusInspector } from './modbus/modbus';

/** A rule's inspector and its compiled block for that inspector. */
export interface RuleInspection {
  inspector: AppInspector;
  block: unknown;
}

/** One set of inspectors per engine (their flow states are pooled per inspector). */
export function createInspectors(): readonly AppInspector[] {
  return [new ModbusInspector() as AppInspector];
}

/** Per rule index of `policy`: the inspector a block of the rule names, with the block, or null. */
export function inspectionsFor(policy: CompiledPolicy, inspectors: readonly AppInspector[]): (RuleInspection | null)[] {
  return policy.rules.map((rule) => {
    for (const inspector of inspectors) {
      const block = inspector.blockOf(rule);
      if (block !== null) return { inspector, block };
    }
    return null;
  });
}
