// Modbus/TCP inspector: the AppInspector contract (see the inspection stage's inspector.ts) for flows
// whose rule has a `modbus:` block. Per segment: the TCP stream guard keeps the stream in order, the
// parser frames messages, `decide` judges each request against the rule; responses are checked for
// framing and matched to outstanding requests. It decides; it does not forward, answer or count
// globally (the engine does, from the outcome). Nothing allocates per segment: flow states are pooled.
//
// Per inspected flow: two 4 KiB stream rings, two 260-byte parser buffers, 16 outstanding requests and
// 256 request counters: about 9.5 KiB.
//
// A violation is final for the flow: every later data segment of it gets `after_violation`. TCP is a
// stream, so once a request is refused nothing behind it can be delivered anyway, and a retransmission
// of the refused bytes must not find them "already checked".

import { Proto, TcpFlag } from '../../../wire/protocols';
import { Admission, Admit, TcpStreamGuard, streamReasons, type StreamReason, type TcpSegment } from '../tcp-stream';
import { FunctionCode as F } from '../../../policy/modbus-functions';
import { ModbusParser, ParseStatus, malformedReasons, type MalformedReason, type ModbusMessage } from './parser';
import type { ModbusPolicy } from '../../../policy/types';
import { decide, policyReasons, type PolicyReason } from '../../../policy/modbus-match';

/** Verdicts, as the inspection contract numbers them, plus Hold and Exception (proposed additions). */
export const InspectVerdict = {
  Forward: 0,
  /** Drop silently (a violation under on-violation: drop). */
  Drop: 1,
  /** RST both ways. */
  Reset: 2,
  /** Drop without a violation: out of order or the stream ring is full; TCP retransmits. */
  Hold: 3,
  /** Answer the client with the Modbus exception in the outcome, reset the server side. */
  Exception: 4,
} as const;
export type InspectVerdict = (typeof InspectVerdict)[keyof typeof InspectVerdict];

export const inspectorReasons = ['unexpected_response', 'response_mismatch', 'too_many_outstanding', 'after_violation'] as const;
export type InspectorReason = (typeof inspectorReasons)[number];
export type ModbusReason = MalformedReason | PolicyReason | StreamReason | InspectorReason;

/** Every violation reason, in one list: outcome.reasonIndex indexes it (counters per rule and reason). */
export const modbusReasons: readonly ModbusReason[] = [...malformedReasons, ...policyReasons, ...streamReasons, ...inspectorReasons];

/** Why a segment is held (not a violation): counted, not logged. */
export const holdReasons = ['segment_ahead', 'ring_full'] as const;

/** What the inspector says beyond the verdict; one reused instance. */
export class InspectOutcome {
  /** A modbusReasons or holdReasons name (a constant string), '' when forwarded. */
  reason = '';
  /** Index in modbusReasons of a violation, -1 otherwise. */
  reasonIndex = -1;
  // For InspectVerdict.Exception: the answer to build with writeExceptionAdu, and its TCP numbers.
  transactionId = 0;
  unit = 0;
  function = 0;
  exceptionCode = 0;
  /** Sequence number of the answer (the server's next byte) and its ACK (the end of the refused segment). */
  replySeq = 0;
  replyAck = 0;
}

/** The fields of the flow record the inspector reads (the engine's Flow has them). */
export interface ClaimedFlow {
  proto: number;
  ruleIndex: number;
}

export const MAX_OUTSTANDING = 16;

export const ExceptionCode = {
  IllegalFunction: 0x01,
  IllegalDataAddress: 0x02,
  IllegalDataValue: 0x03,
  ServerBusy: 0x06,
  GatewayTargetFailed: 0x0b,
} as const;

/**
 * The exception answering a refused request, or 0 when the request cannot be answered (its header is
 * not trusted, or the fault is in the stream): reset instead. A unit the rule does not allow gets
 * 0x0B (gateway target failed to respond), as a gateway answers for a device it cannot reach: the
 * client learns nothing about the unit's functions.
 */
export function exceptionCodeFor(reason: ModbusReason): number {
  switch (reason) {
    case 'function_not_allowed':
    case 'bad_function':
      return ExceptionCode.IllegalFunction;
    case 'address_not_allowed':
    case 'address_overflow':
      return ExceptionCode.IllegalDataAddress;
    case 'unit_not_allowed':
      return ExceptionCode.GatewayTargetFailed;
    case 'too_many_outstanding':
      return ExceptionCode.ServerBusy;
    case 'too_long':
    case 'truncated_pdu':
    case 'trailing_bytes':
    case 'bad_quantity':
    case 'bad_byte_count':
    case 'bad_value':
      return ExceptionCode.IllegalDataValue;
    default:
      return 0;
  }
}

export const EXCEPTION_ADU_LENGTH = 9;

/** Write the 9-byte exception ADU into buf at off (the caller frames it in TCP/IP); returns its length. */
export function writeExceptionAdu(buf: Uint8Array, off: number, transactionId: number, unit: number, fn: number, code: number): number {
  buf[off] = transactionId >>> 8;
  buf[off + 1] = transactionId & 0xff;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = 0;
  buf[off + 5] = 3;
  buf[off + 6] = unit;
  buf[off + 7] = (fn & 0x7f) | 0x80;
  buf[off + 8] = code;
  return EXCEPTION_ADU_LENGTH;
}

/** Response byte count a request implies, or -1 when it does not fix one. */
function expectedByteCount(msg: ModbusMessage): number {
  switch (msg.function) {
    case F.ReadCoils:
    case F.ReadDiscreteInputs:
      return (msg.quantity + 7) >> 3;
    case F.ReadHoldingRegisters:
    case F.ReadInputRegisters:
    case F.ReadWriteMultipleRegisters:
      return 2 * msg.quantity;
    default:
      return -1;
  }
}

/** Inspection state of one flow; pooled by the inspector. */
export class ModbusFlowState {
  policy: ModbusPolicy | null = null;
  readonly guard = new TcpStreamGuard();
  readonly requests = new ModbusParser(true);
  readonly responses = new ModbusParser(false);
  /** Outstanding requests, oldest first: transaction id, function, expected response byte count. */
  readonly outstandingId = new Uint16Array(MAX_OUTSTANDING);
  readonly outstandingFunction = new Uint8Array(MAX_OUTSTANDING);
  readonly outstandingBytes = new Int16Array(MAX_OUTSTANDING);
  outstanding = 0;
  /** Requests seen per function code (flow.end events). */
  readonly functionCounts = new Uint32Array(256);
  /** The violation that ended the flow, null while it has none. */
  violation: ModbusReason | null = null;

  open(policy: ModbusPolicy): void {
    this.policy = policy;
    this.guard.clear();
    this.requests.reset(true);
    this.responses.reset(false);
    this.outstanding = 0;
    this.functionCounts.fill(0);
    this.violation = null;
  }

  /** Match a response to the oldest outstanding request with its transaction id; the reason if none fits. */
  matchResponse(msg: ModbusMessage): InspectorReason | null {
    const n = this.outstanding;
    let i = 0;
    while (i < n && this.outstandingId[i] !== msg.transactionId) i++;
    if (i === n) return 'unexpected_response';
    const fn = this.outstandingFunction[i];
    const bytes = this.outstandingBytes[i];
    this.outstandingId.copyWithin(i, i + 1, n);
    this.outstandingFunction.copyWithin(i, i + 1, n);
    this.outstandingBytes.copyWithin(i, i + 1, n);
    this.outstanding = n - 1;
    if (msg.function !== fn) return 'response_mismatch';
    if (!msg.exception && bytes >= 0 && msg.byteCount !== bytes) return 'response_mismatch';
    return null;
  }

  addOutstanding(msg: ModbusMessage): boolean {
    const n = this.outstanding;
    if (n === MAX_OUTSTANDING) return false;
    this.outstandingId[n] = msg.transactionId;
    this.outstandingFunction[n] = msg.function;
    this.outstandingBytes[n] = expectedByteCount(msg);
    this.outstanding = n + 1;
    return true;
  }
}

export class ModbusInspector {
  readonly protocol = 'modbus';
  /** Segments held (not violations), by holdReasons index. */
  readonly holds = new Float64Array(holdReasons.length);
  private readonly admission = new Admission();
  private readonly pool: ModbusFlowState[] = [];

  /** `policies[i]`: the compiled `modbus:` block of rule i, null for a rule without one. */
  constructor(private readonly policies: readonly (ModbusPolicy | null)[]) {}

  claims(flow: ClaimedFlow): boolean {
    return flow.proto === Proto.TCP && (this.policies[flow.ruleIndex] ?? null) !== null;
  }

  open(flow: ClaimedFlow): ModbusFlowState {
    const state = this.pool.pop() ?? new ModbusFlowState();
    state.open(this.policies[flow.ruleIndex] as ModbusPolicy);
    return state;
  }

  close(state: ModbusFlowState): void {
    state.policy = null;
    this.pool.push(state);
  }

  inspect(state: ModbusFlowState, seg: TcpSegment, out: InspectOutcome): InspectVerdict {
    out.reason = '';
    out.reasonIndex = -1;
    if (state.violation !== null) {
      if (seg.length === 0) return InspectVerdict.Forward;
      return this.refuse(state, 'after_violation', seg, null, out);
    }
    const adm = state.guard.admit(seg, this.admission);
    switch (adm.verdict) {
      case Admit.Forward:
        return InspectVerdict.Forward;
      case Admit.DropAhead:
      case Admit.DropFull: {
        const hold = adm.verdict === Admit.DropAhead ? 0 : 1;
        this.holds[hold]++;
        out.reason = holdReasons[hold];
        return InspectVerdict.Hold;
      }
      case Admit.Violation:
        return this.refuse(state, adm.reason ?? 'retransmission_differs', seg, null, out);
    }
    const parser = seg.fromInitiator ? state.requests : state.responses;
    const frame = seg.frame;
    const end = adm.deliverOffset + adm.deliverLength;
    let off = adm.deliverOffset;
    while (off < end) {
      off = parser.push(frame, off, end);
      if (parser.status !== ParseStatus.Message) break;
      const msg = parser.msg;
      let reason: ModbusReason | null;
      if (seg.fromInitiator) {
        // A header that lost framing names no function.
        if (!parser.lost) state.functionCounts[msg.function]++;
        reason = decide(state.policy as ModbusPolicy, msg);
        if (reason === null && !state.addOutstanding(msg)) reason = 'too_many_outstanding';
      } else {
        // Only framing and shape are checked on responses: a response that looks like a request is
        // still parsed as a response, so it cannot smuggle one the other way.
        reason = msg.malformed ?? state.matchResponse(msg);
      }
      if (reason !== null) return this.refuse(state, reason, seg, seg.fromInitiator ? msg : null, out);
    }
    return InspectVerdict.Forward;
  }

  /** The flow's violation: the verdict its rule's on-violation asks for. */
  private refuse(state: ModbusFlowState, reason: ModbusReason, seg: TcpSegment, request: ModbusMessage | null, out: InspectOutcome): InspectVerdict {
    state.violation = state.violation ?? reason;
    out.reason = reason;
    out.reasonIndex = modbusReasons.indexOf(reason);
    const action = (state.policy as ModbusPolicy).onViolation;
    if (action === 'drop') return InspectVerdict.Drop;
    if (action === 'reset' || request === null || request.malformed === 'bad_protocol_id' || request.malformed === 'bad_length') {
      return InspectVerdict.Reset;
    }
    const code = exceptionCodeFor(reason);
    if (code === 0) return InspectVerdict.Reset;
    out.transactionId = request.transactionId;
    out.unit = request.unit;
    out.function = request.function;
    out.exceptionCode = code;
    out.replySeq = state.guard.nextSeq(false);
    // A FIN on the refused segment occupies a sequence number too.
    out.replyAck = (seg.seq + seg.length + ((seg.flags & TcpFlag.FIN) !== 0 ? 1 : 0)) >>> 0;
    return InspectVerdict.Exception;
  }
}
