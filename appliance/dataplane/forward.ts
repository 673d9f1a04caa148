// The packet loop of one port pair: every captured frame goes through the engine and is forwarded
// out of the other port, dropped, or answered (reject) on the port it came from.

import { Engine, Side, Verdict } from './engine';
import { DropReason, PortCounter } from './counters';
import type { Port } from './port/port';

/** Start capturing on both ports; frames flow until the ports are closed. */
export function startForwarding(engine: Engine, ports: readonly [Port, Port]): void {
  const onFrame = (side: number) => {
    const inPort = ports[side];
    const outPort = ports[1 - side];
    const frame = inPort.buffer;
    const inCounters = engine.counters[side];
    const outCounters = engine.counters[1 - side].port;
    return (length: number, truncated: boolean): void => {
      if (truncated) {
        inCounters.port[PortCounter.RxPackets]++;
        inCounters.dropped[DropReason.Truncated]++;
        return;
      }
      if (inPort.isOwnFrame(frame)) {
        inCounters.port[PortCounter.RxPackets]++;
        inCounters.dropped[DropReason.OwnMac]++;
        return;
      }
      const verdict = engine.process(frame, length, side, Date.now());
      if (verdict === Verdict.Forward) {
        if (outPort.send(frame, length)) {
          outCounters[PortCounter.TxPackets]++;
          outCounters[PortCounter.TxBytes] += length;
        } else {
          outCounters[PortCounter.SendErrors]++;
        }
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
    };
  };
  ports[Side.Inside].open(onFrame(Side.Inside));
  ports[Side.Outside].open(onFrame(Side.Outside));
}
