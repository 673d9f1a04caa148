// The vocabulary the pipeline's stages share: verdicts, appliance ports, and the result of one frame.
// A leaf of dataplane/: must import nothing, so every stage may use it; holds no logic.

export const Verdict = { Forward: 0, Drop: 1, Reject: 2 } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** Appliance ports. Rules are written by address; the port only pins which way a flow may travel. */
export const Side = { Inside: 0, Outside: 1 } as const;
export type Side = (typeof Side)[keyof typeof Side];

export function otherSide(side: Side): Side {
  return side === Side.Inside ? Side.Outside : Side.Inside;
}

/** No rule was involved (L2, decode error, flow state). */
export const NO_RULE = -1;
/** Nothing was dropped (PacketResult.reason). */
export const NO_REASON = -1;

/**
 * What the pipeline decided about one frame. One instance per engine, overwritten completely by every
 * frame (so nothing in it is left from an earlier one): valid until the next frame is processed.
 */
export class PacketResult {
  verdict: Verdict = Verdict.Forward;
  /** Rule that decided, or NO_RULE. */
  rule = NO_RULE;
  /**
   * Why the frame was dropped or rejected (a DropReason), also when monitor mode forwarded it anyway;
   * NO_REASON otherwise. A packet of a flow monitor mode tracks only to count it has none: its
   * flow's first packet was counted with the reason.
   */
  reason = NO_REASON;
  /** Forwarded only because the policy is in monitor mode. */
  monitored = false;
  /** A reject rule matched but the reject rate limit was reached: dropped without an answer. */
  rejectSuppressed = false;
  /** Why an application-layer inspector refused the frame (its own words), else null. */
  inspectorReason: string | null = null;
  /** On Verdict.Reject: the answer to send back out of the arrival port is answer[0, answerLength). */
  answerLength = 0;
  /**
   * On Verdict.Reject of a segment an inspector refused: onward[0, onwardLength) goes out of the other
   * port (the RST to the receiver), after what was forwarded before it. 0: nothing onward.
   */
  onwardLength = 0;

  constructor(readonly answer: Buffer, readonly onward: Buffer) {}
}
