// The shared part of the packet-path summaries (deny-summary.ts, spoof-summary.ts,
// sightings.ts, conversations.ts): an open-addressing
// index over entry numbers, and per entry its packet count, bytes and first/last seen. Each summary
// keeps its own key fields, stages the key being recorded and says whether entry i holds it.
// Preallocated and allocation-free on the packet path; bounded: a packet that finds the table full is
// only counted as overflow.

export abstract class SummaryTable {
  /** Packets not summarized because the table was full, since the last drain. */
  overflow = 0;
  /** Random per process: an outside host cannot choose keys that collide. */
  protected readonly seed = (Math.random() * 0x7fffffff) | 0;
  protected used = 0;
  /** The last countPacket() made a new entry: its key fields are for the caller to fill. */
  protected created = false;
  protected readonly count: Float64Array;
  protected readonly bytes: Float64Array;
  protected readonly firstSeen: Float64Array;
  protected readonly lastSeen: Float64Array;
  private readonly mask: number;
  /** Open-addressing slots: entry index + 1, 0 when empty. */
  private readonly slots: Int32Array;
  private readonly hash: Int32Array;

  constructor(readonly capacity: number) {
    let size = 2;
    while (size < capacity * 2) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(size);
    this.hash = new Int32Array(capacity);
    this.count = new Float64Array(capacity);
    this.bytes = new Float64Array(capacity);
    this.firstSeen = new Float64Array(capacity);
    this.lastSeen = new Float64Array(capacity);
  }

  /** Keys recorded since the last drain. */
  get size(): number {
    return this.used;
  }

  /** Does entry i hold the key staged for the packet being recorded? */
  protected abstract sameKey(i: number): boolean;

  /**
   * Count a packet of `length` bytes under the staged key, whose hash is `h`: the index of its entry
   * (`created` says whether it is new), or -1 when the table is full (counted as overflow).
   */
  protected countPacket(h: number, length: number, now: number): number {
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const held = this.slots[slot];
      if (held === 0) break;
      const i = held - 1;
      if (this.hash[i] === h && this.sameKey(i)) {
        this.count[i]++;
        this.bytes[i] += length;
        // Callers that add older times (conversations, from flows in any order) keep the latest.
        if (now > this.lastSeen[i]) this.lastSeen[i] = now;
        this.created = false;
        return i;
      }
    }
    if (this.used === this.capacity) {
      this.overflow++;
      return -1;
    }
    const i = this.used++;
    let slot = h & this.mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
    this.slots[slot] = i + 1;
    this.hash[i] = h;
    this.count[i] = 1;
    this.bytes[i] = length;
    this.firstSeen[i] = now;
    this.lastSeen[i] = now;
    this.created = true;
    return i;
  }

  /** Entry i's packets, bytes and first/last seen, for a drained record (off the packet path). */
  protected totals(i: number): { count: number; bytes: number; firstSeen: number; lastSeen: number } {
    return { count: this.count[i], bytes: this.bytes[i], firstSeen: this.firstSeen[i], lastSeen: this.lastSeen[i] };
  }

  /** Forget every entry (after a drain). */
  protected clear(): void {
    this.slots.fill(0);
    this.used = 0;
  }
}
