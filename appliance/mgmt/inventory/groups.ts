// Which policy groups an asset's address is in, for the liveness probes: the active policy's groups,
// resolved once per policy on the load worker (policy/load-worker.ts: a big policy takes seconds,
// management's event loop also serves the API and the hub), then one binary search per group in
// its merged address intervals. Only the groups asked about are kept.
// Must not compile a policy on the caller's thread, and must not be called per probe (the prober
// builds its target list from it when the policy, the settings or the inventory changed).

import { intervalsContain, type AddressSet } from '../../policy/addresses';
import { formatDiagnostic } from '../../policy/diagnostics';
import { loadPolicyInBackground } from '../../policy/load-worker';
import { parseIPv4, parseIPv6 } from '../../wire/address-text';

export interface GroupIndex {
  /** The kept groups that contain the address, in the order they were asked for; [] for unparsable text. */
  groupsOf(address: string): string[];
}

/** An index over these groups' address sets, keeping only the names in `only`. */
export function groupIndexOf(groups: ReadonlyMap<string, { addresses: AddressSet }>, only: readonly string[]): GroupIndex {
  const kept = only.flatMap((name) => {
    const group = groups.get(name);
    return group ? [{ name, v4: group.addresses.v4, v6: group.addresses.v6 }] : [];
  });
  return {
    groupsOf(address) {
      const v4 = parseIPv4(address);
      if (v4 !== null) return kept.filter((g) => intervalsContain(g.v4, v4)).map((g) => g.name);
      const v6 = parseIPv6(address);
      if (v6 !== null) return kept.filter((g) => intervalsContain(g.v6, v6)).map((g) => g.name);
      return [];
    },
  };
}

/** The index of a policy text's groups; throws with the first diagnostic when it does not compile. */
export async function policyGroupIndex(text: string, only: readonly string[]): Promise<GroupIndex> {
  const loaded = await loadPolicyInBackground(text, 'active policy');
  if (!loaded.ok) {
    const first = loaded.errors[0];
    throw new Error(`active policy does not compile: ${first === undefined ? 'unknown error' : formatDiagnostic(first)}`);
  }
  return groupIndexOf(loaded.groups, only);
}
