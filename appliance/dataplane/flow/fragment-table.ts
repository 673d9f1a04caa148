// IP fragments after the first carry no ports, so they follow the verdict of their datagram's first
// fragment. This table remembers that verdict per datagram, keyed the way IP itself identifies one
// (RFC 791, RFC 8200: source, destination, protocol, identification; plus the VLAN), in its arrival
// direction. An lru-cache keyed by a seeded 32-bit hash, collisions chained, records pooled: nothing
// allocates per packet. Must not decide anything itself: the engine says what the first fragment got.

import { LRUCache } from 'lru-cache';
import type { Packet } from '../decode/packet';
import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';
import type { Side } from '../verdict';
import type { Clock } from './clock';
import type { TtlOption } from './timeouts';

/** The first fragment of one datagram, as the engine decided it. */
export class Fragment {
  hash = 0;
  family = 0;
  proto = 0;
  /** Outer and inner VLAN IDs as (outer << 12) | inner. */
  vlan = 0;
  src4 = 0;
  dst4 = 0;
  readonly src6 = new Uint32Array(4);
  readonly dst6 = new Uint32Array(4);
  /** IPv4 identification or IPv6 fragment identification. */
  id = 0;
  /** Port the first fragment arrived on: later ones must arrive there too. */
  side: Side = 0;
  /** Rule that decided the first fragment, or NO_RULE. */
  rule = 0;
  /** Forwarded only because of monitor mode (the rule would have dropped it). */
  wouldDrop = false;
  /** Next record whose key hashes to the same bucket. */
  next: Fragment | null = null;
}

export class FragmentTable {
  /** Random per process: an outside host cannot predict which keys collide. */
  private readonly seed = (Math.random() * 0x7fffffff) | 0;
  private readonly cache: LRUCache<number, Fragment>;
  private readonly pool: Fragment[] = [];
  private readonly getOptions = {};
  private readonly peekOptions = {};

  constructor(private readonly capacity: number, clock: Clock) {
    this.cache = new LRUCache<number, Fragment>({
      max: capacity,
      updateAgeOnGet: true,
      ttlAutopurge: false,
      perf: clock,
      ttlResolution: 0,
      dispose: (head, _hash, reason) => {
        // 'set' and 'delete' are our own chain edits; evicted or expired records go back to the pool.
        if (reason === 'evict' || reason === 'expire') this.release(head);
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  /** The first fragment of `pkt`'s datagram in `pkt`'s direction, or null. Refreshes its timeout. */
  find(pkt: Packet): Fragment | null {
    const hash = this.hash(pkt);
    let f = this.cache.get(hash, this.getOptions) ?? null;
    while (f !== null && !matches(f, pkt)) f = f.next;
    return f;
  }

  /** Remember how the first fragment `pkt` was decided (again, if it came twice). */
  remember(pkt: Packet, side: Side, rule: number, wouldDrop: boolean, ttl: TtlOption): void {
    let f = this.find(pkt);
    if (f === null) {
      f = this.pool.pop() ?? new Fragment();
      f.hash = this.hash(pkt);
      f.family = pkt.family;
      f.proto = pkt.proto;
      f.vlan = (pkt.vlanOuter << 12) | pkt.vlanInner;
      f.id = pkt.fragId;
      if (pkt.family === Family.V4) {
        f.src4 = pkt.src4;
        f.dst4 = pkt.dst4;
      } else {
        f.src6.set(pkt.src6);
        f.dst6.set(pkt.dst6);
      }
      f.next = this.cache.peek(f.hash, this.peekOptions) ?? null;
      this.cache.set(f.hash, f, ttl);
    }
    f.side = side;
    f.rule = rule;
    f.wouldDrop = wouldDrop;
  }

  /** Drop timed-out datagrams now (lru-cache otherwise expires them lazily, when touched). */
  purgeIdle(): void {
    this.cache.purgeStale();
  }

  private hash(pkt: Packet): number {
    let h = mix(this.seed, pkt.family | (pkt.proto << 8));
    h = mix(h, (pkt.vlanOuter << 12) | pkt.vlanInner);
    if (pkt.family === Family.V4) {
      h = mix(h, pkt.src4);
      h = mix(h, pkt.dst4);
    } else {
      for (let i = 0; i < 4; i++) h = mix(h, pkt.src6[i]);
      for (let i = 0; i < 4; i++) h = mix(h, pkt.dst6[i]);
    }
    return finish(mix(h, pkt.fragId));
  }

  private release(head: Fragment): void {
    for (let f: Fragment | null = head; f !== null;) {
      const next: Fragment | null = f.next;
      f.next = null;
      if (this.pool.length < this.capacity) this.pool.push(f);
      f = next;
    }
  }
}

function matches(f: Fragment, pkt: Packet): boolean {
  if (f.family !== pkt.family || f.proto !== pkt.proto || f.id !== pkt.fragId) return false;
  if (f.vlan !== ((pkt.vlanOuter << 12) | pkt.vlanInner)) return false;
  if (pkt.family === Family.V4) return f.src4 === pkt.src4 && f.dst4 === pkt.dst4;
  const s = f.src6;
  const d = f.dst6;
  const ps = pkt.src6;
  const pd = pkt.dst6;
  return s[0] === ps[0] && s[1] === ps[1] && s[2] === ps[2] && s[3] === ps[3] &&
    d[0] === pd[0] && d[1] === pd[1] && d[2] === pd[2] && d[3] === pd[3];
}
