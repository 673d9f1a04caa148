// Loads the batched port I/O addon (native/batch_port.cc, built by `npm run build`) with its types.
// Must not hold any port logic: that is port.ts.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../paths';
import type { BusyPollStats } from '../../ipc/stats';

/** The addon's port object; every method throws a clear Error on bad arguments or a port it cannot open. */
export interface BatchPort {
  /**
   * Opens `device` with a packet socket (promiscuous, inbound only, vnet headers, a receive ring and
   * a socket buffer of `rcvbufBytes` each) and calls `onBatch(count)` once per batch of up to rx.length / slotBytes frames:
   * frame i is read into slot i (rx[i * slotBytes...]) at rxMeta[i] (frameStart, or taggedFrameStart
   * when a VLAN tag was restored) with its vnet header in the 10 bytes before it, its captured length
   * written to rxLengths[2i], its wire length to rxLengths[2i + 1] and the segments it stands for to
   * rxMeta[slots + i]. With `sendThread`, the port gets a send thread whose queue holds batches of
   * `sendBatchBytes`. `onSent` reports, on the event loop, the frames and bytes the kernel took and
   * the frames it refused. After each receive wakeup the rings of every open port of this thread
   * are polled until none had a frame for `busyPollMicros` (-1: not polled; 0: looked at once);
   * meanwhile every `warmMicros` without a frame each port's `onBatch(0)` is called (slots and
   * lengths untouched since the last batch), so its path stays in the CPU's caches.
   */
  open(device: string, rcvbufBytes: number, rx: Buffer, rxLengths: Uint32Array, rxMeta: Uint16Array, slotBytes: number,
    sendBatchBytes: number, onBatch: (count: number) => void, onSent: (frames: number, bytes: number, refused: number) => void,
    sendThread: boolean, busyPollMicros: number, warmMicros: number): void;
  /**
   * Sends `count` frames, (offset, length) pairs in `frames` into `buffer`, each with the vnet header
   * in the 10 bytes before it, in order, with sendmmsg(): right away, or with a send thread copied
   * to its queue (waiting while the queue is full).
   */
  queue(buffer: Uint8Array, frames: Uint32Array, count: number): void;
  /** Sends one complete frame (zero vnet header), the (offset, length) pair in `frame`, right away; false when refused. */
  sendNow(buffer: Uint8Array, frame: Uint32Array, count: 1): boolean;
  /** Stops receiving, sends what is queued and reports it; the sockets are closed on the next loop turn. */
  close(): void;
  /** Frames the kernel dropped since the last call because the receive ring was full (0 once closed). */
  kernelDrops(): number;
  /** The receive socket's descriptor (-1 once closed): the kernel fast path attaches its filter there. */
  receiveSocket(): number;
}

export interface BatchPortAddon {
  BatchPort: new () => BatchPort;
  /** Where a frame starts in its receive slot, and where when the addon restored a VLAN tag in front of its type. */
  frameStart: number;
  taggedFrameStart: number;
  /** kernelDrops() for another packet socket of this process (cap's, by descriptor); -1 when `fd` is none. */
  packetDrops(fd: number): number;
  /** The busy polling of this thread's ports since start (ipc/stats.ts BusyPollStats says what each counts). */
  busyPollCounters(): BusyPollStats;
}

/** Where image/build-native.sh leaves the dataplane's addons (and the fast path's BPF object). */
export const nativeBuildDir = join(projectRoot, 'appliance', 'dataplane', 'port', 'native', 'build', 'Release');
export const batchPortAddonPath = join(nativeBuildDir, 'batch_port.node');

let loaded: BatchPortAddon | string | undefined;

/** The addon, or why it cannot be used (not built, or built for another Node.js). */
export function loadBatchPort(): BatchPortAddon | string {
  if (loaded === undefined) {
    if (!existsSync(batchPortAddonPath)) {
      loaded = `batched port I/O not built (${batchPortAddonPath} missing; run npm run build)`;
    } else {
      try {
        loaded = require(batchPortAddonPath) as BatchPortAddon;
      } catch (err) {
        loaded = `batched port I/O cannot be loaded: ${(err as Error).message}`;
      }
    }
  }
  return loaded;
}
