// The compiled policy: what the dataplane runs and what management hands it. This is the contract
// between the policy compiler (appliance/policy/compile.ts, which builds the tables) and the packet
// pipeline (appliance/policy/match.ts, which looks them up). Types and constants only: imports nothing.

export type Mode = 'enforce' | 'monitor';
export type ActionName = 'allow' | 'deny' | 'reject';

/** Numeric actions used on the packet path. */
export const Action = { Allow: 0, Deny: 1, Reject: 2 } as const;
export const actionNames: readonly ActionName[] = ['allow', 'deny', 'reject'];

/** Largest match key: keys are 16 bits (a port, or an ICMP type and code). */
export const KEY_MAX = 0xffff;

export const onViolationActions = ['reset', 'exception', 'drop'] as const;
export type OnViolation = (typeof onViolationActions)[number];

/** A rule's compiled `modbus:` block (policy/modbus-block.ts builds it, the Modbus inspector reads it). */
export interface ModbusPolicy {
  /** Bit n: function code n allowed; bit DEVICE_ID_BIT: 43/14 (see modbus-functions.ts). */
  readonly functions: Uint32Array;
  /** Bit n: unit identifier n allowed; null: any unit. */
  readonly units: Uint32Array | null;
  /**
   * Per table (Table.*): allowed addresses as sorted, disjoint, inclusive [lo, hi] pairs; null: any
   * address in every table. When the block lists addresses, a table it does not list allows none.
   */
  readonly addresses: readonly Uint32Array[] | null;
  /** Largest ADU allowed, in bytes (Limits.aduMax when the rule sets none). */
  readonly maxLength: number;
  readonly onViolation: OnViolation;
}

export interface CompiledRule {
  /** Position in the rule table; the implicit default rule is last. */
  index: number;
  name: string;
  action: number; // Action.*
  log: boolean;
  /** Where the rule is written (1-based), 0 for the implicit default rule. */
  line: number;
  /** True for the implicit rule that applies `default:` when nothing else matches. */
  isDefault: boolean;
  /** The rule's `modbus:` block: its flows are inspected message by message. Null without one. */
  modbus: ModbusPolicy | null;
}

/** Flow-tracking settings, all times in milliseconds. */
export interface FlowSettings {
  maxFlows: number;
  tcpEstablishedIdleMs: number;
  /** SYN seen, handshake not complete. */
  tcpOpeningIdleMs: number;
  /** FIN seen both ways or RST: how long the last packets may still pass. */
  tcpClosingIdleMs: number;
  udpIdleMs: number;
  icmpIdleMs: number;
  otherIdleMs: number;
  /** Accept mid-stream TCP (no SYN seen) when the policy allows it, e.g. after a restart. */
  pickupEstablished: boolean;
  /** How long the verdict of a first fragment is kept for the fragments that follow it. */
  fragmentTimeoutMs: number;
}

export interface CompileStats {
  rules: number;
  groups: number;
  services: number;
  /** Elementary address intervals in the source / destination tables (v4 + v6). */
  srcIntervals: number;
  dstIntervals: number;
  /** Distinct rule bitsets after deduplication, and the bytes the tables take. */
  bitsets: number;
  tableBytes: number;
  compileMs: number;
  /** address@MAC bindings (IPv4 + IPv6). */
  bindings: number;
}

/** An IPv6 field's elementary intervals: ascending bounds (the first is 0) and each one's rule bitset. */
export interface IntervalTable {
  /** Four big-endian words per bound. */
  bounds: Uint32Array;
  /** Offset in `bitsets` of the rule bitset of each interval. */
  sets: Int32Array;
}

/**
 * An IPv4 field's elementary intervals, indexed so that a lookup is two or three table reads and a
 * search in a short run instead of a 13-step binary search with 6k intervals: `top` is indexed by the
 * top 16 address bits; where a /16 holds more than 8 interval bounds, its entry points at 256 entries
 * of `mid` indexed by the next 8 bits. An entry is either ~offset (negative: one bitset for the whole
 * block), or, tagged with bit 30, the start of its table in `mid`, or the offset of a run in `runs`:
 * a count, then that many (bound, bitset offset) pairs in ascending order, the first bound being the
 * start of the block.
 */
export interface Index4 {
  top: Int32Array;
  mid: Int32Array;
  runs: Uint32Array;
}

/**
 * A compiled policy as plain data: what the compiler produces and what a policy-loading worker thread
 * hands back (the typed arrays are transferred, not copied). bindPolicy() (match.ts) adds the
 * lookup functions. The table layout is described at the top of compile.ts.
 */
export interface PolicyTables {
  mode: Mode;
  /** Rule table; rules[rules.length - 1] is the implicit default. */
  rules: CompiledRule[];
  /**
   * rules[i].action packed by rule index. First packets read it for a random rule: a byte array stays
   * in the CPU cache where 10k rule objects scattered over the heap do not.
   */
  ruleActions: Uint8Array;
  /** EtherTypes allowed beyond IPv4, IPv6, ARP (index = EtherType, 1 = allowed). */
  l2Allow: Uint8Array;
  flow: FlowSettings;
  stats: CompileStats;
  /** SHA-256 of the source text: identifies what is running. */
  sourceHash: string;
  /** Deduplicated rule bitsets, and the number of summary words that starts each one. */
  bitsets: Uint32Array;
  summaryWords: number;
  src4: Index4;
  dst4: Index4;
  src6: IntervalTable;
  dst6: IntervalTable;
  /** Per protocol: its slot in `keyed`, or -1 when the protocol has no keys (ports, ICMP types). */
  keySlot: Int32Array;
  /** Per keyed protocol 65536 bitset offsets, one per key. */
  keyed: Int32Array;
  /** Per unkeyed protocol the bitset offset of the rules that match it. */
  protoSet: Int32Array;
  /**
   * The address@MAC bindings (boundMac4/boundMac6 in match.ts look them up). IPv4: an open-addressing
   * table (a power of two of slots, at most a quarter used): the bound address in `bound4`, its MAC as
   * a 48-bit number in `bound4Macs` at the same slot, -1 in an empty slot. Both empty when the policy
   * binds no IPv4 address (and nothing is looked up when it binds none at all).
   */
  bound4: Uint32Array;
  bound4Macs: Float64Array;
  /** The same for IPv6: four big-endian words per address, ascending. */
  bound6: Uint32Array;
  bound6Macs: Float64Array;
}

export interface CompiledPolicy extends PolicyTables {
  /**
   * First matching rule index (the default rule when none matches).
   * `key` is the destination port for TCP/UDP/SCTP, (type << 8) | code for ICMP/ICMPv6, 0 otherwise.
   * Must not allocate.
   */
  match4(src: number, dst: number, proto: number, key: number): number;
  match6(src: Uint32Array, dst: Uint32Array, proto: number, key: number): number;
}
