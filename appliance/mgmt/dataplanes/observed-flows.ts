// Distinct conversations seen recently (from flow.start and deny.summary events and from polling the
// dataplanes' flow tables): what a policy dry-run replays. Bounded in count and age; a tuple seen
// again moves to the newest end.

import type { DenySummaryEvent, FlowStartEvent } from '../../ipc/events';
import type { FlowRecord } from '../../ipc/messages';

export const OBSERVED_MAX = 10_000;
export const OBSERVED_MAX_AGE_MS = 60 * 60 * 1000;

/** A conversation as a dry-run replays it (dstPort: for ICMP/ICMPv6 the type, code 0 assumed). */
export type ObservedTuple = Pick<FlowRecord, 'proto' | 'src' | 'srcPort' | 'dst' | 'dstPort' | 'vlan' | 'rule'> & {
  pair: string;
  seenAt: number;
};

/** Tracked ICMP flows are echo flows, whose ports are the echo identifier: the rule key is the request type. */
const ECHO_REQUEST: Readonly<Record<string, number>> = { icmp: 8, icmpv6: 128 };

export class ObservedFlows {
  private readonly tuples = new Map<string, ObservedTuple>();

  constructor(
    private readonly max = OBSERVED_MAX,
    private readonly maxAgeMs = OBSERVED_MAX_AGE_MS,
  ) {}

  fromEvent(pair: string, e: FlowStartEvent | DenySummaryEvent, now: number): void {
    this.add({ pair, proto: e.proto, src: e.src, srcPort: e.srcPort, dst: e.dst, dstPort: e.dstPort, vlan: e.vlan, rule: e.rule, seenAt: now });
  }

  fromFlow(pair: string, f: FlowRecord, now: number): void {
    const echo = ECHO_REQUEST[f.proto];
    this.add({
      pair,
      proto: f.proto,
      src: f.src,
      srcPort: echo === undefined ? f.srcPort : 0,
      dst: f.dst,
      dstPort: echo ?? f.dstPort,
      vlan: f.vlan,
      rule: f.rule,
      seenAt: now,
    });
  }

  list(now: number): ObservedTuple[] {
    this.expire(now);
    return [...this.tuples.values()];
  }

  private add(tuple: ObservedTuple): void {
    const key = [tuple.pair, tuple.proto, tuple.src, tuple.srcPort, tuple.dst, tuple.dstPort, tuple.vlan].join('|');
    this.tuples.delete(key);
    this.tuples.set(key, tuple);
    if (this.tuples.size > this.max) {
      const oldest = this.tuples.keys().next().value;
      if (oldest !== undefined) this.tuples.delete(oldest);
    }
    this.expire(tuple.seenAt);
  }

  private expire(now: number): void {
    for (const [key, tuple] of this.tuples) {
      if (now - tuple.seenAt <= this.maxAgeMs) break;
      this.tuples.delete(key);
    }
  }
}
