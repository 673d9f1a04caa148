// The flow cache: an lru-cache keyed by the 32-bit flow hash, whose value is the head of a short chain
// of flows sharing that hash. lru-cache bounds the size (evicting the least recently used) and ages
// entries by per-protocol idle timeouts; the chain keeps a rare hash collision from mixing two flows.

import { LRUCache } from 'lru-cache';
import { Family } from '../../wire/protocols';
import { Flow, TcpState } from './flow';
import type { FlowKey } from './flow-key';
import type { FlowTableCounters } from '../../ipc/stats';
import { coarseClock, type Clock } from './clock';
import type { TtlOption } from './timeouts';

/** Why a flow left the table, as flow-end records report it. */
export type FlowEndReason = 'evicted' | 'idle' | 'closed' | 'cut';

export class FlowTable {
  readonly counters: FlowTableCounters = { created: 0, evicted: 0, expired: 0, closed: 0, cut: 0, chained: 0 };
  /** Random per process: an outside host cannot predict which keys collide. */
  readonly seed = (Math.random() * 0x7fffffff) | 0;
  private cache: LRUCache<number, Flow>;
  private readonly pool: Flow[] = [];
  private readonly getOptions = {};
  private readonly peekOptions = {};

  constructor(
    private maxFlows: number,
    private readonly onEnd: ((flow: Flow, reason: FlowEndReason) => void) | null = null,
    private readonly clock: Clock = coarseClock,
  ) {
    this.cache = this.newCache(maxFlows);
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

  /** The flow for `key`, or null. Refreshes the flow's idle timer. */
  find(key: FlowKey): Flow | null {
    let flow = this.cache.get(key.hash, this.getOptions) ?? null;
    while (flow !== null && !matches(flow, key)) flow = flow.next;
    return flow;
  }

  /** Start tracking a flow for `key`; the caller fills orientation and decision fields. */
  insert(key: FlowKey, ttl: TtlOption, now: number): Flow {
    const flow = this.pool.pop() ?? new Flow();
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
    flow.wouldDrop = false;
    flow.inspected = false;
    flow.packetsOut = flow.packetsIn = flow.bytesOut = flow.bytesIn = 0;
    flow.settledPackets = flow.settledBytes = 0;
    flow.firstSeen = flow.lastSeen = now;
    const head = this.cache.peek(key.hash, this.peekOptions) ?? null;
    flow.next = head;
    if (head !== null) this.counters.chained++;
    this.cache.set(key.hash, flow, ttl);
    this.counters.created++;
    return flow;
  }

  /** Change the idle timeout of the flow's bucket (e.g. when a TCP handshake completes). */
  retime(flow: Flow, ttl: TtlOption): void {
    const head = this.cache.peek(flow.hash, this.peekOptions);
    if (head !== undefined) this.cache.set(flow.hash, head, ttl);
  }

  /** End one flow now (TCP close, or cut by a policy reload). */
  remove(flow: Flow, reason: 'closed' | 'cut'): void {
    const head = this.cache.peek(flow.hash, this.peekOptions);
    if (head === undefined) return;
    if (head === flow) {
      if (flow.next === null) this.cache.delete(flow.hash);
      else this.cache.set(flow.hash, flow.next, this.remainingTtl(flow.hash));
    } else {
      let prev = head;
      while (prev.next !== null && prev.next !== flow) prev = prev.next;
      if (prev.next !== flow) return;
      prev.next = flow.next;
    }
    if (reason === 'closed') this.counters.closed++;
    else this.counters.cut++;
    this.release(flow, reason);
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
    this.cache = this.newCache(maxFlows);
    // rkeys() walks from least to most recently used, so the newest survive a shrink.
    for (const hash of old.rkeys()) {
      const head = old.peek(hash);
      if (head !== undefined) this.cache.set(hash, head, { ttl: Math.max(1, old.getRemainingTTL(hash)) });
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
    if (this.onEnd !== null) this.onEnd(flow, reason);
    flow.next = null;
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
