// Compiles a resolved policy into lookup tables for the packet path: building only. The lookups
// themselves are in match.ts (what the packet thread loads), the shadow warnings in analysis/.
// Runs wherever a policy is loaded (a worker thread for the dataplane), never on the packet path.
//
// Each field (source address, destination address, service) is cut into elementary intervals: the
// pieces between consecutive interval boundaries of all rules. Every elementary interval points at
// the set of rules that match it there, a bitset over rule indexes. A lookup finds the three
// intervals (IPv4 addresses through a two-level index, IPv6 addresses by binary search, services by
// one direct table read) and returns the lowest rule present in all three bitsets.
//
// Bitsets are deduplicated and stored in one Uint32Array pool in a two-level form: for each group of
// 32 words a summary word (bit j = word j is non-zero) and the count of non-zero words before it,
// followed by the non-zero words only. The intersection ANDs the summary words first, so with 10k
// rules a lookup touches about ten summary words and the few candidate words they point at.
//
// The answer for a triple of bitsets is kept in a small memo (MatchMemo in match.ts), so traffic in an
// equivalence class seen recently skips the intersection.

import { createHash } from 'node:crypto';
import { macNumber, V4_MAX, V6_MAX } from './addresses';
import { findShadowed, type Shadowed } from './analysis/shadow';
import { bindingSlot4, bindPolicy, INDEX4_MID, MEMO_BYTES } from './match';
import { Binding, ModelRule, Path, PolicyModel, Reporter, resolvePolicy } from './model';
import { PolicyDocument } from './schema';
import { Proto } from '../wire/protocols';
import { KEYED_PROTOCOLS } from './services';
import { Action, CompiledPolicy, CompiledRule, Index4, IntervalTable, KEY_MAX, PolicyTables } from './types';
import { v6ToWords } from '../wire/address-text';

/** Largest i with bounds[i] <= v (bounds[0] is 0). */
function find4(bounds: Uint32Array, v: number): number {
  let lo = 0;
  let hi = bounds.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (bounds[mid] <= v) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** A /16 with more bounds than this gets a second-level table on the next 8 bits. */
const RUN_MAX = 8;

/**
 * The IPv4 index over one field's elementary intervals (see Index4 in types.ts): built from the
 * ascending `bounds` (bounds[0] is 0) and the bitset offset of each interval.
 */
export function indexAddresses4(bounds: Uint32Array, sets: Int32Array): Index4 {
  const n = bounds.length;
  const top = new Int32Array(0x10000);
  const mid: number[] = [];
  const runs: number[] = [];
  /** Entry for the addresses lo..hi, the first of which falls in interval `first`. */
  const entry = (lo: number, hi: number, first: number, split: boolean): number => {
    let last = first;
    while (last + 1 < n && bounds[last + 1] <= hi) last++;
    if (last === first) return ~sets[first];
    if (split && last - first >= RUN_MAX) {
      const base = mid.length;
      let i = first;
      for (let k = 0; k < 256; k++) {
        const from = lo + k * 0x100;
        while (i + 1 < n && bounds[i + 1] <= from) i++;
        mid.push(entry(from, from + 0xff, i, false));
      }
      return base | INDEX4_MID;
    }
    const at = runs.length;
    runs.push(last - first + 1, lo, sets[first]);
    for (let i = first + 1; i <= last; i++) runs.push(bounds[i], sets[i]);
    return at;
  };
  let i = 0;
  for (let p = 0; p < 0x10000; p++) {
    const from = p * 0x10000;
    while (i + 1 < n && bounds[i + 1] <= from) i++;
    top[p] = entry(from, from + 0xffff, i, true);
  }
  return { top, mid: Int32Array.from(mid), runs: Uint32Array.from(runs) };
}

/** Deduplicating store of rule bitsets (see the top of the file for the layout). */
class BitsetPool {
  readonly words: number;
  readonly summaries: number;
  private data = new Uint32Array(1 << 16);
  length = 0;
  count = 0;
  private readonly byHash = new Map<number, number[]>();
  /** Zobrist hashing: a set's hash is the XOR of its rules' random values, so it updates in O(1). */
  readonly z1: Int32Array;
  readonly z2: Int32Array;

  constructor(rules: number) {
    this.words = Math.max(1, Math.ceil(rules / 32));
    this.summaries = Math.ceil(this.words / 32);
    this.z1 = new Int32Array(rules);
    this.z2 = new Int32Array(rules);
    let x = 0x9e3779b9;
    const next = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x;
    };
    for (let r = 0; r < rules; r++) [this.z1[r], this.z2[r]] = [next(), next()];
  }

  hashOf(dense: Uint32Array): [number, number] {
    let h1 = 0;
    let h2 = 0;
    for (let w = 0; w < dense.length; w++) {
      for (let bits = dense[w]; bits !== 0; bits &= bits - 1) {
        const r = (w << 5) | (31 - Math.clz32(bits & -bits));
        h1 ^= this.z1[r];
        h2 ^= this.z2[r];
      }
    }
    return [h1, h2];
  }

  /** Offset of the stored copy of `dense`, storing it first if new. */
  intern(dense: Uint32Array, h1: number, h2: number): number {
    const key = (h1 >>> 0) * 0x200000 + (h2 >>> 11);
    const bucket = this.byHash.get(key);
    if (bucket) for (const off of bucket) if (this.equals(dense, off)) return off;
    const off = this.store(dense);
    if (bucket) bucket.push(off);
    else this.byHash.set(key, [off]);
    this.count++;
    return off;
  }

  private store(dense: Uint32Array): number {
    const s = this.summaries;
    const need = this.length + 2 * s + this.words;
    if (need > this.data.length) {
      const grown = new Uint32Array(Math.max(need, this.data.length * 2));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    const off = this.length;
    let packed = off + 2 * s;
    for (let i = 0; i < s; i++) {
      let summary = 0;
      this.data[off + 2 * i + 1] = packed - (off + 2 * s);
      for (let j = 0; j < 32; j++) {
        const w = (i << 5) | j;
        if (w >= this.words) break;
        if (dense[w] !== 0) {
          summary |= 1 << j;
          this.data[packed++] = dense[w];
        }
      }
      this.data[off + 2 * i] = summary;
    }
    this.length = packed;
    return off;
  }

  private equals(dense: Uint32Array, off: number): boolean {
    const s = this.summaries;
    let packed = off + 2 * s;
    for (let i = 0; i < s; i++) {
      const summary = this.data[off + 2 * i];
      for (let j = 0; j < 32; j++) {
        const w = (i << 5) | j;
        if (w >= this.words) break;
        const v = (summary >>> j) & 1 ? this.data[packed++] : 0;
        if (v !== dense[w]) return false;
      }
    }
    return true;
  }

  finish(): Uint32Array {
    return this.data.slice(0, this.length);
  }
}

/**
 * Sweeps elementary intervals 0..bounds-1 in order, toggling rule bits where a rule's interval
 * starts or ends; returns the bitset offset of each elementary interval. `spans` holds triples
 * (rule, first interval, end interval exclusive); the intervals of one rule never overlap.
 * `firstSet[rule]` receives the bitset of the first interval the rule is in.
 */
function sweep(pool: BitsetPool, bounds: number, spans: number[], firstSet: Int32Array): Int32Array {
  const starts = new Int32Array(bounds + 1);
  for (let i = 0; i < spans.length; i += 3) {
    starts[spans[i + 1] + 1]++;
    if (spans[i + 2] < bounds) starts[spans[i + 2] + 1]++;
  }
  for (let i = 0; i < bounds; i++) starts[i + 1] += starts[i];
  const toggles = new Int32Array(starts[bounds]);
  const fill = starts.slice(0, bounds);
  for (let i = 0; i < spans.length; i += 3) {
    toggles[fill[spans[i + 1]]++] = spans[i];
    if (spans[i + 2] < bounds) toggles[fill[spans[i + 2]]++] = spans[i];
  }
  const dense = new Uint32Array(pool.words);
  const out = new Int32Array(bounds);
  let h1 = 0;
  let h2 = 0;
  for (let b = 0; b < bounds; b++) {
    for (let t = starts[b]; t < starts[b + 1]; t++) {
      const r = toggles[t];
      dense[r >>> 5] ^= 1 << (r & 31);
      h1 ^= pool.z1[r];
      h2 ^= pool.z2[r];
    }
    const off = pool.intern(dense, h1, h2);
    out[b] = off;
    for (let t = starts[b]; t < starts[b + 1]; t++) if (firstSet[toggles[t]] < 0) firstSet[toggles[t]] = off;
  }
  return out;
}

interface Field<B> {
  bounds: B;
  sets: Int32Array;
  firstSet: Int32Array;
}

/** Elementary-interval boundaries of number intervals (IPv4 addresses, service keys) and their table. */
function numberField(pool: BitsetPool, intervalsOf: (r: number) => number[], rules: number, max: number): Field<Uint32Array> {
  const points: number[] = [0];
  for (let r = 0; r < rules; r++) {
    const iv = intervalsOf(r);
    for (let i = 0; i < iv.length; i += 2) {
      points.push(iv[i]);
      if (iv[i + 1] < max) points.push(iv[i + 1] + 1);
    }
  }
  const sorted = Float64Array.from(points).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i];
  const bounds = Uint32Array.from(sorted.subarray(0, n));
  const spans: number[] = [];
  for (let r = 0; r < rules; r++) {
    const iv = intervalsOf(r);
    for (let i = 0; i < iv.length; i += 2) {
      spans.push(r, find4(bounds, iv[i]), iv[i + 1] < max ? find4(bounds, iv[i + 1] + 1) : n);
    }
  }
  const firstSet = new Int32Array(rules).fill(-1);
  return { bounds, sets: sweep(pool, n, spans, firstSet), firstSet };
}

function v6Field(pool: BitsetPool, intervalsOf: (r: number) => bigint[], rules: number): Field<Uint32Array> {
  const points: bigint[] = [0n];
  for (let r = 0; r < rules; r++) {
    const iv = intervalsOf(r);
    for (let i = 0; i < iv.length; i += 2) {
      points.push(iv[i]);
      if (iv[i + 1] < V6_MAX) points.push(iv[i + 1] + 1n);
    }
  }
  points.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const unique = points.filter((p, i) => i === 0 || p !== points[i - 1]);
  const indexOf = (v: bigint): number => {
    let lo = 0;
    let hi = unique.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (unique[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const spans: number[] = [];
  for (let r = 0; r < rules; r++) {
    const iv = intervalsOf(r);
    for (let i = 0; i < iv.length; i += 2) {
      spans.push(r, indexOf(iv[i]), iv[i + 1] < V6_MAX ? indexOf(iv[i + 1] + 1n) : unique.length);
    }
  }
  const bounds = new Uint32Array(unique.length * 4);
  unique.forEach((p, i) => v6ToWords(p, bounds, i * 4));
  const firstSet = new Int32Array(rules).fill(-1);
  return { bounds, sets: sweep(pool, unique.length, spans, firstSet), firstSet };
}

const FULL_KEYS = [0, KEY_MAX];

/** Service tables: per keyed protocol a bitset per key, per other protocol (and 256) one bitset. */
function serviceTables(pool: BitsetPool, rules: ModelRule[]) {
  const keySlot = new Int32Array(Proto.UNKNOWN + 1).fill(-1);
  const keyed = new Int32Array(KEYED_PROTOCOLS.length << 16);
  KEYED_PROTOCOLS.forEach((proto, slot) => {
    keySlot[proto] = slot;
    const field = numberField(
      pool,
      (r) => (rules[r].services.any ? FULL_KEYS : (rules[r].services.protos.get(proto) ?? [])),
      rules.length,
      KEY_MAX,
    );
    for (let i = 0; i < field.bounds.length; i++) {
      const end = i + 1 < field.bounds.length ? field.bounds[i + 1] : KEY_MAX + 1;
      keyed.fill(field.sets[i], (slot << 16) + field.bounds[i], (slot << 16) + end);
    }
  });
  // Unkeyed protocols: the rules naming the protocol plus the rules with service any.
  const anyRules = new Uint32Array(pool.words);
  const byProto = new Map<number, number[]>();
  rules.forEach((r, i) => {
    if (r.services.any) anyRules[i >>> 5] |= 1 << (i & 31);
    else for (const proto of r.services.protos.keys()) byProto.get(proto)?.push(i) ?? byProto.set(proto, [i]);
  });
  const anyOnly = pool.intern(anyRules, ...pool.hashOf(anyRules));
  const protoSet = new Int32Array(Proto.UNKNOWN + 1).fill(anyOnly);
  for (const [proto, list] of byProto) {
    if (keySlot[proto] >= 0) continue;
    const dense = anyRules.slice();
    for (const i of list) dense[i >>> 5] |= 1 << (i & 31);
    protoSet[proto] = pool.intern(dense, ...pool.hashOf(dense));
  }
  return { keySlot, keyed, protoSet };
}

/**
 * The binding tables (see PolicyTables.bound4): IPv4 in an open-addressing table at most a quarter
 * full, IPv6 sorted by address for a binary search, each MAC beside its address.
 */
function bindingTables(bindings: Binding[]) {
  const v4 = bindings.filter((b) => b.family === 4);
  let slots = v4.length === 0 ? 0 : 4;
  while (slots < v4.length * 4) slots *= 2;
  const bound4 = new Uint32Array(slots);
  const bound4Macs = new Float64Array(slots).fill(-1);
  for (const b of v4) {
    let slot = bindingSlot4(b.address as number, slots - 1);
    while (bound4Macs[slot] >= 0) slot = (slot + 1) & (slots - 1);
    bound4[slot] = b.address as number;
    bound4Macs[slot] = macNumber(b.mac);
  }
  const v6 = bindings.filter((b) => b.family === 6).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const bound6 = new Uint32Array(v6.length * 4);
  v6.forEach((b, i) => v6ToWords(b.address as bigint, bound6, i * 4));
  return { bound4, bound4Macs, bound6, bound6Macs: Float64Array.from(v6, (b) => macNumber(b.mac)) };
}

export interface Compiled {
  tables: PolicyTables;
  /** Rules that can never match because one earlier rule matches everything they do. */
  shadowed: Shadowed[];
}

export function compileModel(model: PolicyModel, sourceText: string): Compiled {
  const started = performance.now();
  const rules = model.rules.filter((r) => r.enabled);
  const n = rules.length;
  const pool = new BitsetPool(n);
  const src4 = numberField(pool, (r) => rules[r].src.v4, n, V4_MAX);
  const dst4 = numberField(pool, (r) => rules[r].dst.v4, n, V4_MAX);
  const src6 = v6Field(pool, (r) => rules[r].src.v6, n);
  const dst6 = v6Field(pool, (r) => rules[r].dst.v6, n);
  const services = serviceTables(pool, rules);
  const data = pool.finish();
  const s = pool.summaries;

  const shadowed = findShadowed(rules, { bitsets: data, summaryWords: s, ...services }, {
    src4: src4.firstSet, dst4: dst4.firstSet, src6: src6.firstSet, dst6: dst6.firstSet,
  });

  const compiledRules: CompiledRule[] = rules.map((r, index) => ({
    index,
    name: r.name,
    action: actionNumber(r.action),
    log: r.log,
    line: r.line,
    isDefault: false,
    modbus: r.modbus,
  }));
  compiledRules.push({
    index: n,
    name: 'default',
    action: actionNumber(model.defaultAction),
    log: model.defaultLog,
    line: 0,
    isDefault: true,
    modbus: null,
  });
  const l2Allow = new Uint8Array(0x10000);
  for (const t of model.l2Allow) l2Allow[t] = 1;

  const field = (f: Field<Uint32Array>): IntervalTable => ({ bounds: f.bounds, sets: f.sets });
  const tables: PolicyTables = {
    mode: model.mode,
    rules: compiledRules,
    ruleActions: Uint8Array.from(compiledRules, (r) => r.action),
    l2Allow,
    flow: { ...model.flow },
    sourceHash: createHash('sha256').update(sourceText).digest('hex'),
    stats: {
      rules: n,
      groups: model.groups.size,
      services: [...model.services.values()].filter((x) => !x.builtin).length,
      srcIntervals: src4.bounds.length + src6.bounds.length / 4,
      dstIntervals: dst4.bounds.length + dst6.bounds.length / 4,
      bitsets: pool.count,
      tableBytes: 0,
      compileMs: 0,
      bindings: model.bindings.length,
    },
    bitsets: data,
    summaryWords: s,
    src4: indexAddresses4(src4.bounds, src4.sets),
    dst4: indexAddresses4(dst4.bounds, dst4.sets),
    src6: field(src6),
    dst6: field(dst6),
    ...services,
    ...bindingTables(model.bindings),
  };
  const arrays = [tables.bound4, tables.bound4Macs, tables.bound6, tables.bound6Macs, data, tables.src4.top, tables.src4.mid, tables.src4.runs, tables.dst4.top, tables.dst4.mid, tables.dst4.runs,
    src6.bounds, src6.sets, dst6.bounds, dst6.sets, services.keyed, services.protoSet];
  tables.stats.tableBytes = arrays.reduce((sum, t) => sum + t.byteLength, 0) + MEMO_BYTES;
  tables.stats.compileMs = performance.now() - started;
  return { tables, shadowed };
}

function actionNumber(action: 'allow' | 'deny' | 'reject'): number {
  return action === 'allow' ? Action.Allow : action === 'reject' ? Action.Reject : Action.Deny;
}

/**
 * Compiles a schema-valid document without positions (for programmatic use; files go through
 * loadPolicyText, which reports line:col). Throws with all semantic errors.
 */
export function compilePolicy(doc: PolicyDocument, sourceText: string): CompiledPolicy {
  const errors: string[] = [];
  const where = (path: Path) => path.join('.');
  const report: Reporter = {
    error: (path, message) => errors.push(`${where(path)}: ${message}`),
    warning: () => undefined,
    line: () => 0,
  };
  const model = resolvePolicy(doc, report);
  if (!model) throw new Error(`invalid policy:\n${errors.join('\n')}`);
  return bindPolicy(compileModel(model, sourceText).tables);
}
