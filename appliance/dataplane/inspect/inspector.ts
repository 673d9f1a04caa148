// The application-layer inspection contract: one file per protocol (modbus/ is the first) implements
// AppInspector. An inspector sees only flows whose rule has a block for its protocol and that it
// claimed at flow start; every other flow never reaches this stage. It decides per segment and says
// why; the engine forwards, drops, answers and counts. Per segment nothing may allocate: the segment,
// the outcome and the inspector's parse state are reused.

import type { CompiledRule } from '../../policy/types';
import type { Flow } from '../flow/flow';

/** What an inspector says about one segment of a claimed flow. */
export const InspectVerdict = {
  Forward: 0,
  /** A violation: drop silently. */
  Drop: 1,
  /** A violation: RST to the sender and to the receiver. */
  Reset: 2,
  /** No violation, but the segment must not pass yet (out of order, buffer full): drop, TCP retransmits. */
  Hold: 3,
  /** A violation: answer the sender with `outcome.reply` (e.g. a protocol exception), RST the receiver. */
  Answer: 4,
} as const;
export type InspectVerdict = (typeof InspectVerdict)[keyof typeof InspectVerdict];

/**
 * One TCP segment of a claimed flow, filled by the engine for every segment (pure ACKs too: the
 * stream guard learns where each direction starts from the peer's ACK). Valid only during the call.
 */
export class Segment {
  frame: Uint8Array = new Uint8Array(0);
  /** TCP payload: frame[offset, offset + length). */
  offset = 0;
  length = 0;
  /** Travels from the flow's initiator (the rule's "from") to the responder. */
  fromInitiator = true;
  /** Sequence number of the segment (of its SYN when it carries one) and its ACK field. */
  seq = 0;
  ack = 0;
  /** TCP flags (TcpFlag bits). */
  flags = 0;
}

/** The largest answer an inspector may ask for (a Modbus ADU is at most 260 bytes). */
export const REPLY_MAX = 260;

/** Why, and what to send: one reused instance, written by the inspector on anything but Forward. */
export class InspectOutcome {
  /** A name from the inspector's `reasons` (violations) or `holdReasons`: a constant string. */
  reason = '';
  /** Index of `reason` in the inspector's `reasons`, or in `holdReasons` on Hold. */
  reasonIndex = -1;
  /** The message refused, as far as it was parsed (-1: unknown): function code, unit, first address and count. */
  function = -1;
  unit = -1;
  start = -1;
  quantity = 0;
  /**
   * A refusal that follows the flow's violation (e.g. its retransmissions): counted by reason, but
   * not as another violation of the rule and not reported again.
   */
  followUp = false;
  /** Sequence number the receiver expects next: where the RST to it goes. */
  onwardSeq = 0;
  /** On Answer: reply[0, replyLength) goes back to the sender at replySeq, acknowledging replyAck. */
  readonly reply = new Uint8Array(REPLY_MAX);
  replyLength = 0;
  replySeq = 0;
  replyAck = 0;

  clear(): void {
    this.reason = '';
    this.reasonIndex = -1;
    this.function = -1;
    this.unit = -1;
    this.start = -1;
    this.quantity = 0;
    this.followUp = false;
    this.replyLength = 0;
  }
}

/**
 * Told about an answer in which a server names itself (Modbus 43/14): the whole application message is
 * adu[offset, offset + length), valid only during the call. The engine decides whether it is
 * reported (decode/modbus-device-id.ts reads it); the inspector only spots it. Null: nobody asks.
 */
export type IdentityAnswer = ((adu: Uint8Array, offset: number, length: number) => void) | null;

export interface AppInspector<State = unknown, Block = unknown> {
  /** Protocol name, as the rule's block key spells it ("modbus"). */
  readonly protocol: string;
  /** Set by the engine while observations are collected (an inspector that spots none may leave it out). */
  identityAnswer?: IdentityAnswer;
  /** Violation reasons, in the order counters index them (outcome.reasonIndex). */
  readonly reasons: readonly string[];
  /** Why a segment is held (not a violation), in counter order. */
  readonly holdReasons: readonly string[];
  /** The rule's block for this protocol, or null when the rule has none. */
  blockOf(rule: CompiledRule): Block | null;
  /** Called once when a flow of such a rule starts: does this inspector take it? (e.g. TCP only) */
  claims(flow: Flow): boolean;
  /**
   * Parse state for a claimed flow, reused for every segment of it (pooled by the inspector).
   * `midStream`: the flow was picked up without its handshake, or its rule gained the block on a
   * reload. `monitor`: violations are counted and the flow goes on being parsed (monitor mode).
   */
  open(flow: Flow, block: Block, midStream: boolean, monitor: boolean): State;
  /** A reload gave the flow's rule a new block (or changed the mode): decide by it from now on. */
  rebind(state: State, block: Block, monitor: boolean): void;
  /**
   * Parse the segment into `state` (messages may span segments) and decide on every message it
   * completes. Anything but Forward fills `out` (out.clear() first).
   */
  inspect(state: State, segment: Segment, out: InspectOutcome): InspectVerdict;
  /** The name of a message function for events ("read-holding-registers"), or its number as text. */
  functionName(code: number): string;
  /** Requests per function code seen on the flow so far (flow.end events); zeros when none. */
  functionCounts(state: State): Uint32Array;
  /** 1 at each unit identifier a request on the flow named (learn mode proposes them); zeros when none. */
  unitsSeen(state: State): Uint8Array;
  /** The flow ended: `state` is not used again. */
  close(state: State): void;
}
