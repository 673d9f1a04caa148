// Application-layer inspectors, one per protocol, and which rule uses which. Empty for now: no
// inspector exists yet and no rule has an app-layer block, so every flow skips inspection. Runs when a
// policy is installed, never per packet.

import type { CompiledPolicy } from '../../policy/types';
import type { AppInspector } from './inspector';

/** Every inspector, by protocol (the next issue registers Modbus/TCP here). */
export const inspectors: ReadonlyMap<string, AppInspector> = new Map();

/** Per rule index of `policy`: the inspector its app-layer block names, or null (all null until rules have one). */
export function inspectorsFor(policy: CompiledPolicy): (AppInspector | null)[] {
  return policy.rules.map(() => null);
}
