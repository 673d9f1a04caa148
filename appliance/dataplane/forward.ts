// The packet loop of one port pair: every captured frame goes through the engine and is forwarded
// out of the other port, dropped, or answered (reject) on the port it came from. Frames arrive in
// batches; the forwarded ones of a batch leave the other port together, in order, when the batch is
// done, and the port reports what the kernel took (counted then).

import { Engine, Side, Verdict } from './engine';
import { DropReason, PortCounter } from './counters';
import type { Port } from './port/port';

/** Start capturing on both ports; frames flow until the ports are closed. */
export function startForwarding(engine: Engine, ports: readonly [Port, Port]): void {
  const onBatch = (side: number) => {
    const inPort = ports[side];
    const outPort = ports[1 - side];
    const lengths = inPort.lengths;
    const inCounters = engine.counters[side];
    return (count: number): void => {
      const now = Date.now();
      const frames = inPort.frames;
      for (let i = 0; i < count; i++) {
        const length = lengths[2 * i];
        if (lengths[2 * i + 1] > length) {
          inCounters.port[PortCounter.RxPackets]++;
          inCounters.dropped[DropReason.Truncated]++;
          continue;
        }
        const frame = frames[i];
        if (inPort.isOwnFrame(frame)) {
          inCounters.port[PortCounter.RxPackets]++;
          inCounters.dropped[DropReason.OwnMac]++;
          continue;
        }
        const verdict = engine.process(frame, length, side, now);
        if (verdict === Verdict.Forward) {
          outPort.queue(inPort, i, length);
        } else if (verdict === Verdict.Reject) {
          const answer = engine.reject;
          if (inPort.send(answer.frame, answer.length)) {
            inCounters.port[PortCounter.RejectsSent]++;
            inCounters.port[PortCounter.TxPackets]++;
            inCounters.port[PortCounter.TxBytes] += answer.length;
          } else {
            inCounters.port[PortCounter.SendErrors]++;
          }
        }
      }
      // The receive buffer is reused for the next batch: everything queued from it leaves now.
      outPort.flush();
    };
  };
  const onSent = (side: number) => {
    const counters = engine.counters[side].port;
    return (frames: number, bytes: number, refused: number): void => {
      counters[PortCounter.TxPackets] += frames;
      counters[PortCounter.TxBytes] += bytes;
      counters[PortCounter.SendErrors] += refused;
    };
  };
  ports[Side.Inside].open(onBatch(Side.Inside), onSent(Side.Inside));
  ports[Side.Outside].open(onBatch(Side.Outside), onSent(Side.Outside));
}
