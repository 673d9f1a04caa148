// The kernel fast path of one port pair (native/fast_path.bpf.c, loaded by native/fast_path.cc):
// frames of flows the engine decided for good are forwarded by the kernel from one port to the
// other without reaching the event loop, as a kernel bridge would forward them, and counted there.
// This side of it: the slots of kernel counters (one per offloaded flow), the engine's FlowOffload
// seam (offload, sync, withdraw, policyChanged), its own sweep that keeps offloaded flows alive in
// the flow table and their counters current, and the per-port counts for the stats.
// Only with the batched ports (the filter sits on their receive sockets) and a kernel with tcx
// (Linux 6.6); otherwise, or with GATEKEEPER_FAST_PATH=off, every frame goes through the engine
// as before, and `state`/`reason` say why. Must not decide what is offloaded (the engine does).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Flow } from '../flow/flow';
import type { FlowOffload } from '../flow/offload';
import type { FastPathStats } from '../../ipc/stats';
import type { Side } from '../verdict';
import { nativeBuildDir } from './batch-port';
import type { Port } from './port';

/** Environment variable: `off` keeps every frame in the engine (the per-packet path, for comparison or doubt). */
export const FAST_PATH_ENV = 'GATEKEEPER_FAST_PATH';

/** $GATEKEEPER_FAST_PATH: on (also unset or empty) or off; anything else is refused at start. */
export function fastPathSetting(value = process.env[FAST_PATH_ENV]): 'on' | 'off' {
  if (value === undefined || value === '' || value === 'on') return 'on';
  if (value === 'off') return 'off';
  throw new Error(`${FAST_PATH_ENV} must be on or off, not ${JSON.stringify(value)}`);
}

const addonPath = join(nativeBuildDir, 'fast_path.node');
const objectPath = join(nativeBuildDir, 'fast_path.bpf.o');

/** native/fast_path.cc's object. */
interface NativeFastPath {
  /** Loads and attaches; throws with the reason. Returns the number of counter slots. */
  open(objectPath: string, devices: [string, string], receiveFds: [number, number]): number;
  /** Stages the direction `frame` travels for the next commit(): 0, or the parser's reason it cannot be offloaded. */
  offload(frame: Uint8Array, length: number, side: Side, slot: number, dir: number): number;
  /** Installs what was staged; returns how many entries the kernel refused. */
  commit(): number;
  forget(slot: number): void;
  setGeneration(generation: number): void;
  /** struct fp_slot[slots]: packets[2], bytes[2], last_ns[2], 64-bit each. */
  slots(): ArrayBuffer;
  /** Per port (inside, then outside): frames, frame bytes, segments. */
  portCounters(): number[];
  close(): void;
}

/** u32 words per slot (six 64-bit counters) and where each counter starts. */
const SLOT_WORDS = 12;
const PACKETS = 0;
const BYTES = 4;
const LAST_NS = 8;
/** The counters per port portCounters() returns. */
export const PORT_COUNTERS = 3;
const TWO_32 = 4294967296;

export class FastPath implements FlowOffload {
  state: FastPathStats['state'] = 'unavailable';
  /** Why the fast path is not on. */
  reason: string | undefined = 'not opened';
  private native: NativeFastPath | null = null;
  private words: Uint32Array = new Uint32Array(0);
  /** Per slot: the counters as last synced (packets, bytes per direction) and the last frames' times. */
  private synced: Float64Array = new Float64Array(0);
  private readonly freeSlots: number[] = [];
  /** The flow of each slot, null when free: what sweep() walks. */
  private slotFlows: (Flow | null)[] = [];
  private offloadedFlows = 0;
  private sweepAt = 0;
  private generation = 1;
  private readonly counters = { offloads: 0, notOffloadable: 0, tableFull: 0, withdrawn: 0 };
  private lastPortCounters: number[] = new Array<number>(2 * PORT_COUNTERS).fill(0);
  /** offload() staged something for commit() (most batches stage nothing: no call into the addon then). */
  private staged = false;

  /**
   * Load and attach on both ports, once they are open. Never throws for a fast path that cannot
   * run (`state` and `reason` say why: the frames then all go through the engine); a setting other
   * than on or off is an error.
   */
  open(ports: readonly [Port, Port], setting = fastPathSetting()): void {
    const fds = [ports[0].receiveSocket(), ports[1].receiveSocket()];
    let reason: string | undefined;
    if (setting === 'off') reason = `${FAST_PATH_ENV}=off`;
    else if (fds[0] === undefined || fds[1] === undefined) reason = 'the ports do not run the batched I/O';
    else if (!existsSync(addonPath) || !existsSync(objectPath)) reason = `not built (${addonPath} or ${objectPath} missing)`;
    if (reason !== undefined) {
      this.state = setting === 'off' ? 'off' : 'unavailable';
      this.reason = reason;
      return;
    }
    try {
      const addon = require(addonPath) as { FastPath: new () => NativeFastPath };
      const native = new addon.FastPath();
      const slots = native.open(objectPath, [ports[0].name, ports[1].name], [fds[0] as number, fds[1] as number]);
      this.native = native;
      this.words = new Uint32Array(native.slots());
      this.synced = new Float64Array(slots * 6);
      this.slotFlows = new Array<Flow | null>(slots).fill(null);
      for (let slot = slots - 1; slot >= 0; slot--) this.freeSlots.push(slot);
      this.state = 'on';
      this.reason = undefined;
    } catch (err) {
      this.state = 'unavailable';
      this.reason = (err as Error).message;
    }
  }

  get on(): boolean {
    return this.native !== null;
  }

  offload(flow: Flow, frame: Uint8Array, length: number, side: Side, fromInitiator: boolean): void {
    const native = this.native as NativeFastPath;
    const dir = fromInitiator ? 0 : 1;
    // Marked either way: a frame that cannot be offloaded (two tags, IP options) is not tried per frame.
    flow.offloadedDirs |= 1 << dir;
    let slot = flow.offloadSlot;
    if (slot < 0) {
      const free = this.freeSlots.pop();
      if (free === undefined) {
        this.counters.tableFull++;
        return;
      }
      slot = free;
      this.claim(flow, slot);
    }
    if (native.offload(frame, length, side, slot, dir) !== 0) {
      this.counters.notOffloadable++;
      return;
    }
    this.staged = true;
    this.counters.offloads++;
  }

  /** Install what the batch staged: after the batch's frames have left (forward.ts). */
  commit(): void {
    if (!this.staged) return;
    this.staged = false;
    this.counters.tableFull += (this.native as NativeFastPath).commit();
  }

  sync(flow: Flow): boolean {
    const slot = flow.offloadSlot;
    const w = this.words;
    const s = this.synced;
    const at = slot * SLOT_WORDS;
    const was = slot * 6;
    const packetsOut = read64(w, at + PACKETS);
    const packetsIn = read64(w, at + PACKETS + 2);
    const bytesOut = read64(w, at + BYTES);
    const bytesIn = read64(w, at + BYTES + 2);
    // The low words of the last frame's times change with every frame: enough to see activity.
    const lastOut = w[at + LAST_NS];
    const lastIn = w[at + LAST_NS + 2];
    flow.packetsOut += packetsOut - s[was];
    flow.packetsIn += packetsIn - s[was + 1];
    flow.bytesOut += bytesOut - s[was + 2];
    flow.bytesIn += bytesIn - s[was + 3];
    const active = lastOut !== s[was + 4] || lastIn !== s[was + 5];
    s[was] = packetsOut;
    s[was + 1] = packetsIn;
    s[was + 2] = bytesOut;
    s[was + 3] = bytesIn;
    s[was + 4] = lastOut;
    s[was + 5] = lastIn;
    return active;
  }

  withdraw(flow: Flow): void {
    const slot = flow.offloadSlot;
    if (slot < 0) return;
    (this.native as NativeFastPath).forget(slot);
    // Counted up to the entries' removal; a frame the kernel was forwarding just then may be missed.
    this.sync(flow);
    flow.offloadSlot = -1;
    flow.offloadedDirs = 0;
    this.freeSlots.push(slot);
    this.slotFlows[slot] = null;
    this.offloadedFlows--;
    this.counters.withdrawn++;
  }

  policyChanged(): void {
    if (this.native === null) return;
    this.generation = (this.generation + 1) >>> 0 || 1;
    this.native.setGeneration(this.generation);
  }

  /**
   * Sync the next `budget` offloaded flows and tell `active` about those the kernel forwarded frames
   * of since: the flow table sees nothing of them otherwise, and would end them as idle. Run every
   * SWEEP_INTERVAL_MS by the dataplane: 2000 slots a slice visits all 65,536 within 0.7 s, well
   * inside the shortest idle timeout a policy would set.
   */
  sweep(budget: number, active: (flow: Flow) => void): void {
    const flows = this.slotFlows;
    for (let n = 0; n < budget && flows.length > 0; n++) {
      if (this.sweepAt >= flows.length) this.sweepAt = 0;
      const flow = flows[this.sweepAt++];
      if (flow !== null && this.sync(flow)) active(flow);
    }
  }

  /** What the kernel forwarded per port since the last call: frames, frame bytes and segments of each. */
  takePortCounters(): number[] {
    const now = this.native === null ? new Array<number>(2 * PORT_COUNTERS).fill(0) : this.native.portCounters();
    const delta = now.map((v, i) => v - this.lastPortCounters[i]);
    this.lastPortCounters = now;
    return delta;
  }

  stats(): FastPathStats {
    return {
      state: this.state,
      reason: this.reason,
      flows: this.offloadedFlows,
      capacity: this.synced.length / 6,
      ...this.counters,
    };
  }

  /** Filters and redirects off: every frame reaches the engine again. */
  close(): void {
    this.native?.close();
    this.native = null;
    this.staged = false;
  }

  private claim(flow: Flow, slot: number): void {
    flow.offloadSlot = slot;
    const at = slot * SLOT_WORDS;
    this.words.fill(0, at, at + SLOT_WORDS);
    this.synced.fill(0, slot * 6, slot * 6 + 6);
    this.slotFlows[slot] = flow;
    this.offloadedFlows++;
  }
}

/** A 64-bit counter from its two words (high word read twice, so a carry between the reads is seen). */
function read64(w: Uint32Array, at: number): number {
  let high = w[at + 1];
  let low = w[at];
  const again = w[at + 1];
  if (again !== high) {
    high = again;
    low = w[at];
  }
  return low + high * TWO_32;
}
