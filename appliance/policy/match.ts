// The runtime half of the policy: bindPolicy() turns compiled tables (plain data, see types.ts) into
// the match4/match6 lookups the packet path calls, boundMac4/boundMac6 look up address@MAC bindings,
// and ruleKeyOf()/flowRuleKeyOf() are the one
// definition of the key a packet is matched with. This is what the dataplane's packet thread loads:
// it imports only policy/types.ts and wire/, never the YAML parser, the model or the compiler, and
// nothing here allocates per packet. The table layout is described in compile.ts, which builds it.

import { Proto } from '../wire/protocols';
import { KEY_MAX, type CompiledPolicy, type Index4, type PolicyTables } from './types';

/**
 * The match key of a packet: the destination port for TCP/UDP/SCTP, (type << 8) | code for
 * ICMP/ICMPv6, 0 for every other protocol.
 */
export function ruleKeyOf(proto: number, dstPort: number, icmpType: number, icmpCode: number): number {
  if (proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP) return dstPort;
  if (proto === Proto.ICMP || proto === Proto.ICMPV6) return (icmpType << 8) | icmpCode;
  return 0;
}

const ECHO_REQUEST_V4 = 8;
const ECHO_REQUEST_V6 = 128;

/**
 * The key a tracked flow is decided with again (after a reload): tracked TCP/UDP/SCTP flows are
 * keyed by the responder's port, tracked ICMP flows are echo flows, keyed as their echo request.
 */
export function flowRuleKeyOf(proto: number, responderPort: number): number {
  return ruleKeyOf(proto, responderPort, proto === Proto.ICMPV6 ? ECHO_REQUEST_V6 : ECHO_REQUEST_V4, 0);
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * Lowest rule index >= `from` present in the three bitsets at pool offsets a, b, c; -1 if none.
 * `s` is the number of summary words of each bitset.
 */
export function firstCommon(pool: Uint32Array, s: number, a: number, b: number, c: number, from: number): number {
  const fromWord = from >>> 5;
  for (let i = from >>> 10; i < s; i++) {
    const sa = pool[a + 2 * i];
    const sb = pool[b + 2 * i];
    const sc = pool[c + 2 * i];
    let m = sa & sb & sc;
    if (i === fromWord >>> 5) m &= -1 << (fromWord & 31);
    while (m !== 0) {
      const low = m & -m;
      const below = low - 1;
      const x =
        pool[a + 2 * s + pool[a + 2 * i + 1] + popcount(sa & below)] &
        pool[b + 2 * s + pool[b + 2 * i + 1] + popcount(sb & below)] &
        pool[c + 2 * s + pool[c + 2 * i + 1] + popcount(sc & below)] &
        (((i << 5) | (31 - Math.clz32(low))) === fromWord ? -1 << (from & 31) : -1);
      if (x !== 0) return (((i << 5) | (31 - Math.clz32(low))) << 5) | (31 - Math.clz32(x & -x));
      m ^= low;
    }
  }
  return -1;
}

/** Slots of the match memo (a power of two); 16 bytes each, two to a set. */
const MEMO_SLOTS = 1 << 16;
/** What each bound policy's memo takes (counted in CompileStats.tableBytes). */
export const MEMO_BYTES = MEMO_SLOTS * 16;

/**
 * The answer of firstCommon(pool, s, a, b, c, 0) depends only on the three bitset offsets, i.e. on the
 * equivalence classes the packet falls in, and a policy has far fewer classes than flows (22k for the
 * 262k flows of the 10k-rule benchmark). This memo keeps recent answers: a repeat costs one read of a
 * 32-byte set instead of walking three bitsets through several cache misses. A set holds two slots
 * [a, b, c, rule], newest first; a is -1 while empty (offsets are never negative). Two ways instead of
 * one cut the benchmark's misses from 10 % to 3 % (first packets +4–7 %, A/B in one process).
 */
class MatchMemo {
  private readonly slots = new Int32Array(MEMO_BYTES >> 2).fill(-1);

  constructor(private readonly pool: Uint32Array, private readonly s: number) {}

  first(a: number, b: number, c: number): number {
    const at = (Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b), 0xc2b2ae35) >>> 17) << 3;
    const m = this.slots;
    if (m[at] === a && m[at + 1] === b && m[at + 2] === c) return m[at + 3];
    if (m[at + 4] === a && m[at + 5] === b && m[at + 6] === c) return m[at + 7];
    const rule = firstCommon(this.pool, this.s, a, b, c, 0);
    m[at + 4] = m[at];
    m[at + 5] = m[at + 1];
    m[at + 6] = m[at + 2];
    m[at + 7] = m[at + 3];
    m[at] = a;
    m[at + 1] = b;
    m[at + 2] = c;
    m[at + 3] = rule;
    return rule;
  }
}

/**
 * Tags an Index4 entry that points at a second-level table in `mid`. Defined beside lookup4, as before
 * the split, so the lookup reads a module-local constant rather than a field of another module's
 * exports (the compiler imports it from here; the difference was not measured on its own).
 */
export const INDEX4_MID = 1 << 30;

/** Bitset offset of the interval holding IPv4 address `v` (an unsigned 32-bit number). */
export function lookup4(index: Index4, v: number): number {
  let e = index.top[v >>> 16];
  if (e < 0) return ~e;
  if (e >= INDEX4_MID) {
    e = index.mid[e - INDEX4_MID + ((v >>> 8) & 0xff)];
    if (e < 0) return ~e;
  }
  // A run: a count, then (bound, bitset) pairs; the first bound is where the block starts (<= v).
  const runs = index.runs;
  const pairs = e + 1;
  let lo = 0;
  let hi = runs[e] - 1;
  while (lo < hi) {
    const m = (lo + hi + 1) >>> 1;
    if (runs[pairs + 2 * m] <= v) lo = m;
    else hi = m - 1;
  }
  return runs[pairs + 2 * lo + 1];
}

/** Largest i with bound i <= v, over 128-bit bounds stored as 4 big-endian words each. */
function find6(bounds: Uint32Array, v: Uint32Array): number {
  let lo = 0;
  let hi = (bounds.length >>> 2) - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    const o = mid << 2;
    let le = true;
    for (let k = 0; k < 4; k++) {
      const bw = bounds[o + k];
      const vw = v[k] >>> 0;
      if (bw !== vw) {
        le = bw < vw;
        break;
      }
    }
    if (le) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Home slot of IPv4 address `v` in a binding table of `mask` + 1 slots (multiplicative hashing). */
export function bindingSlot4(v: number, mask: number): number {
  const h = Math.imul(v ^ (v >>> 16), 0x9e3779b1);
  return (h ^ (h >>> 15)) & mask;
}

/**
 * The MAC (48-bit number) IPv4 address `v` is bound to, -1 when it is not bound. An open-addressing
 * table (PolicyTables.bound4) at most a quarter full, so a lookup is one or two probes whatever the
 * number of bindings: every packet of a policy that binds addresses asks, cache hits too. The table
 * is fixed by the policy, so no packet can lengthen a probe; the caller skips it when the policy
 * binds nothing.
 */
export function boundMac4(bound: Uint32Array, macs: Float64Array, v: number): number {
  // A policy that binds only IPv6 addresses has no IPv4 table (and no empty slot to stop at).
  if (bound.length === 0) return -1;
  const mask = bound.length - 1;
  for (let slot = bindingSlot4(v, mask); ; slot = (slot + 1) & mask) {
    const mac = macs[slot];
    if (mac < 0 || bound[slot] === v >>> 0) return mac;
  }
}

/** The same for an IPv6 address (four big-endian words); -1 when it is not bound. */
export function boundMac6(bound: Uint32Array, macs: Float64Array, v: Uint32Array): number {
  let lo = 0;
  let hi = (bound.length >>> 2) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const o = mid << 2;
    let cmp = 0;
    for (let k = 0; k < 4 && cmp === 0; k++) {
      const bw = bound[o + k];
      const vw = v[k] >>> 0;
      cmp = bw < vw ? -1 : bw > vw ? 1 : 0;
    }
    if (cmp < 0) lo = mid + 1;
    else if (cmp > 0) hi = mid - 1;
    else return macs[mid];
  }
  return -1;
}

/** Bitset offset of the rules whose service matches `proto` and `key` (see PolicyTables.keySlot). */
export function serviceSet(keySlot: Int32Array, keyed: Int32Array, protoSet: Int32Array, proto: number, key: number): number {
  const p = proto >>> 0 > Proto.UNKNOWN ? Proto.UNKNOWN : proto;
  const slot = keySlot[p];
  return slot < 0 ? protoSet[p] : keyed[(slot << 16) | (key & KEY_MAX)];
}

/** The lookup functions over compiled tables, each policy with its own match memo. */
export function bindPolicy(tables: PolicyTables): CompiledPolicy {
  const { src4, dst4, src6, dst6, keySlot, keyed, protoSet } = tables;
  const defaultIndex = tables.rules.length - 1;
  // One memo for both families: equal offsets are the same deduplicated bitset, so the same answer.
  const memo = new MatchMemo(tables.bitsets, tables.summaryWords);
  return {
    ...tables,
    match4(src, dst, proto, key) {
      const r = memo.first(lookup4(src4, src >>> 0), lookup4(dst4, dst >>> 0), serviceSet(keySlot, keyed, protoSet, proto, key));
      return r < 0 ? defaultIndex : r;
    },
    match6(src, dst, proto, key) {
      const r = memo.first(src6.sets[find6(src6.bounds, src)], dst6.sets[find6(dst6.bounds, dst)], serviceSet(keySlot, keyed, protoSet, proto, key));
      return r < 0 ? defaultIndex : r;
    },
  };
}
