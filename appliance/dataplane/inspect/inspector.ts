// The application-layer inspection contract: one file per protocol (the next issue adds Modbus/TCP)
// implements AppInspector. An inspector sees only flows it claimed, at flow start, among those whose
// rule has an app-layer block naming its protocol; every other flow never reaches this stage.
// Per segment nothing may allocate: the segment, the outcome and the inspector's parse state are reused.

import type { Flow } from '../flow/flow';

/** What an inspector says about the messages a segment completed. */
export const InspectVerdict = { Forward: 0, Drop: 1, Reset: 2 } as const;
export type InspectVerdict = (typeof InspectVerdict)[keyof typeof InspectVerdict];

/**
 * The TCP payload of one segment of a claimed flow: bytes [offset, offset + length) of `frame`,
 * valid only during the call. One instance, filled by the engine per segment. Segments come as they
 * arrive; `seq` lets the inspector keep its stream in order (a gap or an overlap is its decision).
 */
export class Segment {
  frame: Uint8Array = new Uint8Array(0);
  offset = 0;
  length = 0;
  /** Travels from the flow's initiator (the rule's "from") to the responder. */
  fromInitiator = true;
  /** TCP sequence number of the payload's first byte. */
  seq = 0;
}

/** Why a segment was refused, in the inspector's words: a constant string, never built per packet. */
export class InspectOutcome {
  reason = '';
}

export interface AppInspector<State = unknown> {
  /** Protocol name as a rule's app-layer block spells it (e.g. "modbus-tcp"). */
  readonly protocol: string;
  /** Called once when a flow starts: does this inspector take it? (e.g. by the responder's port) */
  claims(flow: Flow): boolean;
  /** Parse state for a claimed flow, reused for every segment of it (pooled by the inspector). */
  open(flow: Flow): State;
  /**
   * Parse the segment's payload into `state` (messages may span segments) and decide on each message
   * it completes. Anything but Forward puts a reason in `out`. Reset answers the sender with a RST.
   */
  inspect(state: State, segment: Segment, out: InspectOutcome): InspectVerdict;
  /** The flow ended: `state` is not used again. */
  close(state: State): void;
}
