// Modbus/TCP observed, not inspected: the AppObserver contract (../observer.ts) for flows to TCP port
// 502 whose rule has no `modbus:` block. It counts requests per function code and spots device
// identification answers (43/14) for the observations, with the inspector's parser; it never decides.
// Without the inspector's stream guard it follows each direction's next sequence number only: a
// retransmission's old bytes are skipped, a gap resets the parser, and a parser that lost framing
// starts over at the next segment (Modbus clients send one request per segment, so that is where a
// message starts). Per observed flow: two 260-byte parser buffers and 256 counters, about 1.6 KiB.
// Must never return a verdict or touch the frame.

import { Proto, TcpFlag } from '../../../wire/protocols';
import type { Flow } from '../../flow/flow';
import type { IdentityAnswer, Segment } from '../inspector';
import type { AppObserver } from '../observer';
import { modbusFunctionName, spotIdentityAnswer } from './modbus';
import { ModbusParser, ParseStatus } from './parser';

export const MODBUS_PORT = 502;

export class ModbusObserveState {
  readonly requests = new ModbusParser(true);
  readonly responses = new ModbusParser(false);
  readonly functionCounts = new Uint32Array(256);
  readonly unitsSeen = new Uint8Array(256);
  /** Per direction (initiator first): the next sequence number expected, once a segment was seen. */
  readonly next = new Uint32Array(2);
  readonly known = new Uint8Array(2);

  open(): void {
    this.requests.reset(true);
    this.responses.reset(false);
    this.functionCounts.fill(0);
    this.unitsSeen.fill(0);
    this.known.fill(0);
  }
}

export class ModbusObserver implements AppObserver<ModbusObserveState> {
  readonly protocol = 'modbus';
  identityAnswer: IdentityAnswer = null;
  private readonly pool: ModbusObserveState[] = [];

  claims(flow: Flow, serverPort: number): boolean {
    return flow.proto === Proto.TCP && serverPort === MODBUS_PORT;
  }

  open(): ModbusObserveState {
    const state = this.pool.pop() ?? new ModbusObserveState();
    state.open();
    return state;
  }

  observe(state: ModbusObserveState, seg: Segment): void {
    const dir = seg.fromInitiator ? 0 : 1;
    // The SYN occupies one sequence number before the first data byte.
    const seq = (seg.seq + ((seg.flags & TcpFlag.SYN) !== 0 ? 1 : 0)) >>> 0;
    const parser = seg.fromInitiator ? state.requests : state.responses;
    if (seg.length === 0) {
      if (state.known[dir] === 0 && (seg.flags & TcpFlag.SYN) !== 0) {
        state.known[dir] = 1;
        state.next[dir] = seq;
      }
      return;
    }
    let off = seg.offset;
    const end = seg.offset + seg.length;
    if (state.known[dir] === 0) {
      state.known[dir] = 1;
    } else {
      const behind = (state.next[dir] - seq) | 0;
      if (behind >= seg.length) return;
      if (behind > 0) off += behind;
      else if (behind < 0) parser.reset(seg.fromInitiator);
    }
    state.next[dir] = (seq + seg.length) >>> 0;
    if (parser.lost) parser.reset(seg.fromInitiator);
    while (off < end) {
      off = parser.push(seg.frame, off, end);
      if (parser.status !== ParseStatus.Message || parser.lost) break;
      if (seg.fromInitiator) {
        state.functionCounts[parser.msg.function]++;
        state.unitsSeen[parser.msg.unit] = 1;
      }
      else if (parser.msg.malformed === null) spotIdentityAnswer(parser, this.identityAnswer);
    }
  }

  functionName(code: number): string {
    return modbusFunctionName(code);
  }

  functionCounts(state: ModbusObserveState): Uint32Array {
    return state.functionCounts;
  }

  unitsSeen(state: ModbusObserveState): Uint8Array {
    return state.unitsSeen;
  }

  close(state: ModbusObserveState): void {
    this.pool.push(state);
  }
}
