// The flow cache: an lru-cache keyed by the 32-bit flow hash, whose value is the head of a short chain
// of flows sharing that hash. lru-cache bounds the size (evicting the least recently used) and ages
// entries by per-protocol idle timeouts; the chain keeps a rare hash collision from mixing two flows.
//
// Early drop (issue 12; Linux conntrack's early_drop is the model): a flood of new flows (spoofed
// SYNs) must not push out the flows already running. Every flow starts embryonic, on an intrusive
// list through its record, oldest first; the engine promotes it (assure) once it was answered. The
// embryonic flows are held to a budget: a new flow at the budget first ends the oldest embryonic one.
// lru-cache's own bound is max-flows + that budget: answered flows may use the budget's free slots,
// but once a flood fills the budget they keep max-flows, and lru-cache's least-recently-used eviction
// only strikes when answered flows alone exceed that. Must not decide when a flow is answered (the
// engine and tcp-state.ts do) and must not allocate per packet: the list costs O(1) field writes.

import { LRUCache } from 'lru-cache';
import { Family } from '../../wire/protocols';
import { Flow, TcpState } from './flow';
import type { FlowKey } from './flow-key';
import type { FlowTableCounters } from '../../ipc/stats';
import { coarseClock, type Clock } from './clock';
import type { TtlOption } from './timeouts';

/**
 * Embryonic flows held at most, as a share of max-flows (floor below). Under a flood at R new flows/s
 * an unanswered flow lives budget / R before the early drop takes it: 25,000 / 100k/s = 250 ms, far
 * longer than a handshake takes on a plant network, so legitimate connections still complete. It
 * costs a quarter more records at most (bench/README.md "flood": bytes per record).
 */
const EMBRYONIC_SHARE = 0.25;
/**
 * So that a small table still has room for handshakes in flight. A port hands over up to 2048 frames
 * per wakeup, so an answer can arrive thousands of new flows after its SYN: with a floor of 1024,
 * test/flood-wire.test.ts (max-flows 2000, 21-24k spoofed SYNs/s through the lab) saw only 6-10 % of
 * the SYN-ACKs find their flow and a real connection took 1.1-5.1 s to open; 8192 gives a SYN about
 * 330 ms at that rate, for 8192 × ~300 bytes = 2.4 MiB.
 */
const EMBRYONIC_FLOOR = 8192;

export function embryonicBudget(maxFlows: number): number {
  return Math.max(EMBRYONIC_FLOOR, Math.ceil(maxFlows * EMBRYONIC_SHARE));
}

/** Why a flow left the table, as flow-end records report it (an early drop reports 'evicted'). */
export type FlowEndReason = 'evicted' | 'idle' | 'closed' | 'cut';

export class FlowTable {
  readonly counters: FlowTableCounters = {
    created: 0, evicted: 0, expired: 0, closed: 0, cut: 0, chained: 0, earlyDropped: 0, embryonic: 0,
  };
  /** Random per process: an outside host cannot predict which keys collide. */
  readonly seed = (Math.random() * 0x7fffffff) | 0;
  private cache: LRUCache<number, Flow>;
  private readonly pool: Flow[] = [];
  /** Every live record, in no order (swap-remove): what sweep() walks a slice of at a time. */
  private readonly live: Flow[] = [];
  private sweepAt = 0;
  private readonly getOptions = {};
  private readonly peekOptions = {};
  private budget: number;
  private oldestEmbryonic: Flow | null = null;
  private newestEmbryonic: Flow | null = null;

  constructor(
    private maxFlows: number,
    private readonly onEnd: ((flow: Flow, reason: FlowEndReason) => void) | null = null,
    private readonly clock: Clock = coarseClock,
  ) {
    this.budget = embryonicBudget(maxFlows);
    this.cache = this.newCache(maxFlows + this.budget);
  }

  private newCache(max: number): LRUCache<number, Flow> {
    return new LRUCache<number, Flow>({
      max,
      updateAgeOnGet: true,
      ttlAutopurge: false,
      perf: this.clock,
      ttlResolution: 0,
      dispose: (head, _hash, reason) => {
        if (reason === 'evict') this.endChain(head, 'evicted');
        else if (reason === 'expire') this.endChain(head, 'idle');
        // 'set' and 'delete' are our own chain edits: the records were handled by the caller.
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  get capacity(): number {
    return this.maxFlows;
  }

  /** Unanswered flows held at most; the table holds at most capacity + this many. */
  get embryonicBudget(): number {
    return this.budget;
  }

  /** The flow for `key`, or null. Refreshes the flow's idle timer. */
  find(key: FlowKey): Flow | null {
    let flow = this.cache.get(key.hash, this.getOptions) ?? null;
    while (flow !== null && !matches(flow, key)) flow = flow.next;
    return flow;
  }

  /** The flow for `key`, or null, changing nothing: neither its idle timer nor its place in the LRU order. */
  peek(key: FlowKey): Flow | null {
    let flow = this.cache.peek(key.hash, this.peekOptions) ?? null;
    while (flow !== null && !matches(flow, key)) flow = flow.next;
    return flow;
  }

  /** Start tracking a flow for `key`; the caller fills orientation and decision fields. */
  insert(key: FlowKey, ttl: TtlOption, now: number): Flow {
    // First, so that the dropped record is the one reused and its bucket is gone before we chain.
    if (this.counters.embryonic >= this.budget) this.earlyDrop();
    const flow = this.pool.pop() ?? new Flow();
    flow.liveIndex = this.live.length;
    this.live.push(flow);
    flow.hash = key.hash;
    flow.family = key.family;
    flow.proto = key.proto;
    flow.vlan = key.vlan;
    flow.a4 = key.a4;
    flow.b4 = key.b4;
    if (key.family !== Family.V4) {
      if (flow.a6.length === 0) {
        flow.a6 = new Uint32Array(4);
        flow.b6 = new Uint32Array(4);
      }
      flow.a6.set(key.a6);
      flow.b6.set(key.b6);
    }
    flow.portA = key.portA;
    flow.portB = key.portB;
    flow.tcpState = 0;
    flow.finFromInitiator = false;
    flow.finFromResponder = false;
    flow.pickedUp = false;
    flow.handshakeAck = -1;
    flow.wouldDrop = false;
    flow.inspected = false;
    flow.observed = false;
    flow.clientMac = flow.serverMac = -1;
    flow.reportedPackets = flow.reportedBytes = 0;
    flow.reportedStart = false;
    flow.packetsOut = flow.packetsIn = flow.bytesOut = flow.bytesIn = 0;
    flow.settledPackets = flow.settledBytes = 0;
    flow.firstSeen = flow.lastSeen = now;
    const head = this.cache.peek(key.hash, this.peekOptions) ?? null;
    flow.next = head;
    if (head !== null) this.counters.chained++;
    this.cache.set(key.hash, flow, ttl);
    this.counters.created++;
    this.pushEmbryonic(flow);
    return flow;
  }

  /** The flow was answered: from now on only idle time or lru-cache's bound end it. */
  assure(flow: Flow): void {
    if (flow.embryonic) this.unlinkEmbryonic(flow);
  }

  /**
   * The flow was active where the table cannot see it (the kernel fast path forwarded its frames):
   * its idle timer starts again and it becomes the most recently used. Not for a flow already idle
   * past its timeout: that one is left to purgeIdle().
   */
  touch(flow: Flow): void {
    if (this.cache.has(flow.hash)) this.cache.get(flow.hash, this.getOptions);
  }

  /** Change the idle timeout of the flow's bucket (e.g. when a TCP handshake completes). */
  retime(flow: Flow, ttl: TtlOption): void {
    const head = this.cache.peek(flow.hash, this.peekOptions);
    if (head !== undefined) this.cache.set(flow.hash, head, ttl);
  }

  /** End one flow now (TCP close, or cut by a policy reload). */
  remove(flow: Flow, reason: 'closed' | 'cut'): void {
    if (!this.unchain(flow)) return;
    if (reason === 'closed') this.counters.closed++;
    else this.counters.cut++;
    this.release(flow, reason);
  }

  /** Take `flow` out of its bucket; false if it is not in the table. */
  private unchain(flow: Flow): boolean {
    const head = this.cache.peek(flow.hash, this.peekOptions);
    if (head === undefined) return false;
    if (head === flow) {
      if (flow.next === null) this.cache.delete(flow.hash);
      else this.cache.set(flow.hash, flow.next, this.remainingTtl(flow.hash));
    } else {
      let prev = head;
      while (prev.next !== null && prev.next !== flow) prev = prev.next;
      if (prev.next !== flow) return false;
      prev.next = flow.next;
    }
    return true;
  }

  /** End the oldest unanswered flow to make room for a new one. */
  private earlyDrop(): void {
    const victim = this.oldestEmbryonic;
    if (victim === null) return;
    // Not in a bucket any more (expired, but not yet purged): it only leaves the list.
    if (!this.unchain(victim)) return this.unlinkEmbryonic(victim);
    this.counters.earlyDropped++;
    this.release(victim, 'evicted');
  }

  private pushEmbryonic(flow: Flow): void {
    flow.embryonic = true;
    flow.newerEmbryonic = null;
    flow.olderEmbryonic = this.newestEmbryonic;
    if (this.newestEmbryonic === null) this.oldestEmbryonic = flow;
    else this.newestEmbryonic.newerEmbryonic = flow;
    this.newestEmbryonic = flow;
    this.counters.embryonic++;
  }

  private unlinkEmbryonic(flow: Flow): void {
    const older = flow.olderEmbryonic;
    const newer = flow.newerEmbryonic;
    if (older === null) this.oldestEmbryonic = newer;
    else older.newerEmbryonic = newer;
    if (newer === null) this.newestEmbryonic = older;
    else newer.olderEmbryonic = older;
    flow.olderEmbryonic = flow.newerEmbryonic = null;
    flow.embryonic = false;
    this.counters.embryonic--;
  }

  /** Drop idle flows now (lru-cache otherwise expires them lazily, when touched). */
  purgeIdle(): void {
    this.cache.purgeStale();
  }

  /** Apply a new size bound; existing flows are kept, least recently used first out. */
  resize(maxFlows: number): void {
    if (maxFlows === this.maxFlows) return;
    const old = this.cache;
    this.maxFlows = maxFlows;
    this.budget = embryonicBudget(maxFlows);
    this.cache = this.newCache(maxFlows + this.budget);
    // rkeys() walks from least to most recently used, so the newest survive a shrink.
    for (const hash of old.rkeys()) {
      const head = old.peek(hash);
      if (head !== undefined) this.cache.set(hash, head, { ttl: Math.max(1, old.getRemainingTTL(hash)) });
    }
    while (this.counters.embryonic > this.budget) this.earlyDrop();
  }

  /**
   * Visit the next `budget` live flows, resuming where the previous call stopped and starting over
   * after the last: a walk over the whole table in slices, so no single call holds the loop for long
   * (a flow that moves while a pass is under way may be visited twice or wait for the next pass).
   * Allocation-free.
   */
  sweep(budget: number, visit: (flow: Flow) => void): void {
    const live = this.live;
    for (let n = 0; n < budget && live.length > 0; n++) {
      if (this.sweepAt >= live.length) this.sweepAt = 0;
      visit(live[this.sweepAt++]);
    }
  }

  /** Every tracked flow (management views, reload checks): allocates, never on the packet path. */
  *flows(): IterableIterator<Flow> {
    for (const head of this.cache.values()) {
      for (let f: Flow | null = head; f !== null; f = f.next) yield f;
    }
  }

  private remainingTtl(hash: number): TtlOption {
    return { ttl: Math.max(1, this.cache.getRemainingTTL(hash)) };
  }

  private endChain(head: Flow, cause: 'evicted' | 'idle'): void {
    let f: Flow | null = head;
    while (f !== null) {
      const next: Flow | null = f.next;
      // A TCP flow that timed out after FIN/RST ended because it closed, not because it idled.
      const reason: FlowEndReason = cause === 'idle' && f.tcpState === TcpState.Closing ? 'closed' : cause;
      if (reason === 'evicted') this.counters.evicted++;
      else if (reason === 'closed') this.counters.closed++;
      else this.counters.expired++;
      this.release(f, reason);
      f = next;
    }
  }

  private release(flow: Flow, reason: FlowEndReason): void {
    if (flow.embryonic) this.unlinkEmbryonic(flow);
    if (this.onEnd !== null) this.onEnd(flow, reason);
    flow.next = null;
    const last = this.live.pop()!;
    if (last !== flow) {
      this.live[flow.liveIndex] = last;
      last.liveIndex = flow.liveIndex;
    }
    flow.liveIndex = -1;
    if (this.pool.length < this.maxFlows) this.pool.push(flow);
  }
}

function matches(flow: Flow, key: FlowKey): boolean {
  if (flow.family !== key.family || flow.proto !== key.proto || flow.vlan !== key.vlan) return false;
  if (flow.portA !== key.portA || flow.portB !== key.portB) return false;
  if (key.family === Family.V4) return flow.a4 === key.a4 && flow.b4 === key.b4;
  const a = flow.a6;
  const b = flow.b6;
  const ka = key.a6;
  const kb = key.b6;
  return a[0] === ka[0] && a[1] === ka[1] && a[2] === ka[2] && a[3] === ka[3] &&
    b[0] === kb[0] && b[1] === kb[1] && b[2] === kb[2] && b[3] === kb[3];
}
