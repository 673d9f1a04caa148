// The direction-independent flow key: the lower (address, port) endpoint is "a", so a packet and its
// reply produce the same key. Filled into a reused scratch object; hashing is allocation-free.

import type { Packet, QuotedPacket } from '../decode/packet';
import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';

/**
 * The IPv6 addresses of an IPv4 tuple: one shared empty array. Two typed arrays per flow record would
 * more than double its size and allocation cost, so a record gets its own only once it holds IPv6.
 */
const NO_ADDRESS6 = new Uint32Array(0);

/** The identity of a flow, in canonical order. */
export class FlowTuple {
  family = 0;
  proto = 0;
  /** Outer and inner VLAN IDs as (outer << 12) | inner. */
  vlan = 0;
  a4 = 0;
  b4 = 0;
  /** Only meaningful when family is IPv6 (see NO_ADDRESS6). */
  a6 = NO_ADDRESS6;
  b6 = NO_ADDRESS6;
  portA = 0;
  portB = 0;
  hash = 0;
}

/** A tuple built from the packet being processed (one reused instance). */
export class FlowKey extends FlowTuple {
  /** True when the packet this key was built from travels from endpoint a to endpoint b. */
  srcIsA = true;

  constructor() {
    super();
    this.a6 = new Uint32Array(4);
    this.b6 = new Uint32Array(4);
  }
}

function compare6(x: Uint32Array, y: Uint32Array): number {
  for (let i = 0; i < 4; i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

function orient4(key: FlowKey, src: number, dst: number, sport: number, dport: number): void {
  const srcIsA = src < dst || (src === dst && sport <= dport);
  key.srcIsA = srcIsA;
  key.a4 = srcIsA ? src : dst;
  key.b4 = srcIsA ? dst : src;
  key.portA = srcIsA ? sport : dport;
  key.portB = srcIsA ? dport : sport;
}

function orient6(key: FlowKey, src: Uint32Array, dst: Uint32Array, sport: number, dport: number): void {
  const c = compare6(src, dst);
  const srcIsA = c < 0 || (c === 0 && sport <= dport);
  key.srcIsA = srcIsA;
  key.a6.set(srcIsA ? src : dst);
  key.b6.set(srcIsA ? dst : src);
  key.portA = srcIsA ? sport : dport;
  key.portB = srcIsA ? dport : sport;
}

/**
 * Fill `key` for a packet. `sport`/`dport` are the transport ports, or the ICMP echo identifier on
 * both sides for echo request/reply, or 0 for protocols without ports.
 */
export function keyFromPacket(key: FlowKey, pkt: Packet, sport: number, dport: number, seed: number): void {
  key.family = pkt.family;
  key.proto = pkt.proto;
  key.vlan = (pkt.vlanOuter << 12) | pkt.vlanInner;
  if (pkt.family === Family.V4) orient4(key, pkt.src4, pkt.dst4, sport, dport);
  else orient6(key, pkt.src6, pkt.dst6, sport, dport);
  key.hash = hashKey(key, seed);
}

/** Fill `key` for the packet an ICMP error quotes (it travelled in the opposite direction). */
export function keyFromQuoted(key: FlowKey, q: QuotedPacket, vlan: number, sport: number, dport: number, seed: number): void {
  key.family = q.family;
  key.proto = q.proto;
  key.vlan = vlan;
  if (q.family === Family.V4) orient4(key, q.src4, q.dst4, sport, dport);
  else orient6(key, q.src6, q.dst6, sport, dport);
  key.hash = hashKey(key, seed);
}

/** murmur3-style hash with a per-process random seed, so peers cannot aim collisions at us. */
export function hashKey(key: FlowTuple, seed: number): number {
  let h = mix(seed, key.family | (key.proto << 8));
  h = mix(h, key.vlan);
  if (key.family === Family.V4) {
    h = mix(h, key.a4);
    h = mix(h, key.b4);
  } else {
    for (let i = 0; i < 4; i++) h = mix(h, key.a6[i]);
    for (let i = 0; i < 4; i++) h = mix(h, key.b6[i]);
  }
  h = mix(h, (key.portA << 16) | key.portB);
  return finish(h);
}
