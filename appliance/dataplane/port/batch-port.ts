// Loads the batched port I/O addon (native/batch_port.cc, built by `npm run build`) with its types.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../paths';

/** The addon's port object; every method throws a clear Error on bad arguments or a port it cannot open. */
export interface BatchPort {
  /**
   * Opens `device` with libpcap (promiscuous, immediate mode, `ringBytes` kernel ring) and calls
   * `onBatch(count)` once per batch of up to rx.length / slotBytes frames: frame i is copied to
   * rx[i * slotBytes...], its captured length written to rxLengths[2i] and its wire length to
   * rxLengths[2i + 1]. With `sendThread`, the port gets a send thread whose queue holds batches of
   * `sendBatchBytes`. `onSent` reports, on the event loop, the frames and bytes the kernel took and
   * the frames it refused.
   */
  open(device: string, ringBytes: number, rx: Buffer, rxLengths: Uint32Array, slotBytes: number, sendBatchBytes: number,
    onBatch: (count: number) => void, onSent: (frames: number, bytes: number, refused: number) => void, sendThread: boolean): void;
  /**
   * Sends `count` frames, (offset, length) pairs in `frames` into `buffer`, in order, with sendmmsg():
   * right away, or with a send thread copied to its queue (waiting while the queue is full).
   */
  queue(buffer: Uint8Array, frames: Uint32Array, count: number): void;
  /** Sends one frame, the (offset, length) pair in `frame`, right away; false when the kernel refused it. */
  sendNow(buffer: Uint8Array, frame: Uint32Array, count: 1): boolean;
  /** Stops capturing, sends what is queued and reports it; the handle is released on the next loop turn. */
  close(): void;
}

export const batchPortAddonPath = join(projectRoot, 'appliance', 'dataplane', 'port', 'native', 'build', 'Release', 'batch_port.node');

let loaded: { BatchPort: new () => BatchPort } | string | undefined;

/** The addon, or why it cannot be used (not built, or built for another Node.js). */
export function loadBatchPort(): { BatchPort: new () => BatchPort } | string {
  if (loaded === undefined) {
    if (!existsSync(batchPortAddonPath)) {
      loaded = `batched port I/O not built (${batchPortAddonPath} missing; run npm run build)`;
    } else {
      try {
        loaded = require(batchPortAddonPath) as { BatchPort: new () => BatchPort };
      } catch (err) {
        loaded = `batched port I/O cannot be loaded: ${(err as Error).message}`;
      }
    }
  }
  return loaded;
}
