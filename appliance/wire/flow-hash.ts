// The flow hash: murmur3's mixing step and finalizer, shared by the flow table's keys and the deny
// summary's table. Allocation-free; callers seed it per process so peers cannot aim collisions.
// A leaf: imports nothing from appliance/.

/** murmur3 mixing step: fold one 32-bit word into the running hash. */
export function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3 finalizer. An int32 is a small integer in V8: a Map key that needs no heap number per packet. */
export function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
