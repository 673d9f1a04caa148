// The packet loop of one port pair: every captured frame goes through the engine and is forwarded
// out of the other port, dropped, or answered (reject) on the port it came from. Frames arrive in
// batches; the forwarded ones of a batch leave the other port together, in order, when the batch is
// done, and the port reports what the kernel took. Counting is counters.ts's: this file only says
// what happened to a frame outside the pipeline (also the frames the kernel dropped before it, and
// those the kernel fast path forwarded past it). Flow directions the engine offloaded in a batch
// are installed in the kernel after the batch has left, so their next frames cannot overtake it.
// Frames of such a flow still waiting in the receive ring then may be overtaken (reordered once,
// at the hand-over: TCP absorbs it).

import { DropReason } from './counters';
import type { Engine } from './engine';
import { PORT_COUNTERS, type FastPath } from './port/fast-path';
import type { Port } from './port/port';
import { otherSide, Side, Verdict } from './verdict';

/** Start capturing on both ports; frames flow until the ports are closed. */
export function startForwarding(engine: Engine, ports: readonly [Port, Port], fastPath: FastPath | null = null): void {
  const onBatch = (side: Side) => {
    const inPort = ports[side];
    const outPort = ports[otherSide(side)];
    const lengths = inPort.lengths;
    const counters = engine.counters[side];
    return (count: number): void => {
      // An empty batch: the rings were idle for a while during busy polling. The port's last frame
      // is still in its first slot; deciding nothing, it keeps the path warm for the next one.
      if (count === 0) return engine.warm(inPort.frames[0], lengths[0]);
      const now = Date.now();
      const frames = inPort.frames;
      for (let i = 0; i < count; i++) {
        const length = lengths[2 * i];
        counters.received(inPort.segments[i]);
        if (lengths[2 * i + 1] > length) {
          counters.refused(DropReason.Truncated);
          continue;
        }
        const frame = frames[i];
        if (inPort.isOwnFrame(frame)) {
          counters.refused(DropReason.OwnMac);
          continue;
        }
        const result = engine.process(frame, length, side, now, inPort.segments[i]);
        if (result.verdict === Verdict.Forward) {
          outPort.queue(inPort, i, length);
        } else if (result.verdict === Verdict.Reject) {
          counters.answered(result.answerLength, inPort.send(result.answer, result.answerLength));
          if (result.onwardLength > 0) {
            // The receiver's RST goes after what this batch forwarded to it so far (a RST ahead of
            // data is only challenged, RFC 5961; the receiver's answer to that data then ends it anyway).
            outPort.flush();
            engine.counters[otherSide(side)].answered(result.onwardLength, outPort.send(result.onward, result.onwardLength));
          }
        }
      }
      // The receive buffer is reused for the next batch: everything queued from it leaves now.
      outPort.flush();
      fastPath?.commit();
    };
  };
  const onSent = (side: Side) => {
    const counters = engine.counters[side];
    return (frames: number, bytes: number, refused: number): void => counters.sent(frames, bytes, refused);
  };
  ports[Side.Inside].open(onBatch(Side.Inside), onSent(Side.Inside));
  ports[Side.Outside].open(onBatch(Side.Outside), onSent(Side.Outside));
}

/**
 * Add the frames the kernel dropped on each port's receive ring since the last call to its counters
 * (kernel_dropped). The kernel's count restarts at each read, so this runs from the stats timer only.
 */
export function countKernelDrops(engine: Engine, ports: readonly [Port, Port]): void {
  engine.counters[Side.Inside].kernelDropped(ports[Side.Inside].takeKernelDrops());
  engine.counters[Side.Outside].kernelDropped(ports[Side.Outside].takeKernelDrops());
}

/**
 * Add what the kernel fast path forwarded since the last call to the ports' counters: received and
 * forwarded on the port it came from, sent on the other. From the stats timer only.
 */
export function countFastPath(engine: Engine, fastPath: FastPath): void {
  const delta = fastPath.takePortCounters();
  for (const side of [Side.Inside, Side.Outside] as const) {
    const at = side * PORT_COUNTERS;
    const [frames, frameBytes, segments] = [delta[at], delta[at + 1], delta[at + 2]];
    if (frames === 0) continue;
    engine.counters[side].fastPathForwarded(frames, frameBytes, segments);
    engine.counters[otherSide(side)].sent(frames, frameBytes, 0);
  }
}
