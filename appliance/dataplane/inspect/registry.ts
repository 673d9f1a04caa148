// Application-layer inspectors, one per protocol, and which rule uses which: a rule with a block for a
// protocol has its flows inspected by that protocol's inspector. Runs when a policy is installed,
// never per packet. A new protocol is one more entry here (and in createObservers) and one more folder
// beside modbus/.

import type { CompiledPolicy } from '../../policy/types';
import type { AppInspector } from './inspector';
import { ModbusInspector } from './modbus/modbus';
import { ModbusObserver } from './modbus/observe';
import type { AppObserver } from './observer';

/** A rule's inspector and its compiled block for that inspector. */
export interface RuleInspection {
  inspector: AppInspector;
  block: unknown;
}

/** One set of inspectors per engine (their flow states are pooled per inspector). */
export function createInspectors(): readonly AppInspector[] {
  return [new ModbusInspector() as AppInspector];
}

/** One set of observers per engine, for flows whose rule has no block (inspect/observer.ts). */
export function createObservers(): readonly AppObserver[] {
  return [new ModbusObserver() as AppObserver];
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
