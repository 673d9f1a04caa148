// One tracked connection. Records are pooled by the flow table and reused, so their typed arrays are
// allocated once per pool slot, not per flow. A record, not a stage: must not import detect/ or later.

import type { Side } from '../verdict';
import { FlowTuple } from './flow-key';

/** TCP progress, used to pick the idle timeout and to end flows. */
export const TcpState = { None: 0, Opening: 1, Established: 2, Closing: 3 } as const;

/** The key fields (canonical order: the lower address/port endpoint is "a") come from FlowTuple. */
export class Flow extends FlowTuple {
  /** Next record whose key hashes to the same bucket (hash collisions are chained). */
  next: Flow | null = null;
  /** Position in the table's list of live records (FlowTable.sweep walks it); -1 when not live. */
  liveIndex = -1;

  // --- early drop (flow-table.ts): flows nobody has answered yet, oldest first
  /** Not yet answered (see Engine.continueFlow): the first to go when too many new flows arrive. */
  embryonic = false;
  olderEmbryonic: Flow | null = null;
  newerEmbryonic: Flow | null = null;

  // --- orientation and decision
  /** True when the initiator (the "from" side of the rule) is endpoint a. */
  initiatorIsA = true;
  /** Appliance port on which the initiator's packets arrive. */
  initiatorSide: Side = 0;
  ruleIndex = 0;
  /** Policy generation that decided this flow; a reload re-decides it at its next packet. */
  generation = 0;
  /** Monitor mode tracks flows the policy would drop so their packets are counted, not dropped. */
  wouldDrop = false;
  tcpState = 0;
  finFromInitiator = false;
  finFromResponder = false;
  /** Started mid-stream (pickup-established): answered once both directions were seen. */
  pickedUp = false;
  /** The ack number that completes the handshake (the responder's SYN-ACK seq + 1); -1 before that SYN-ACK. */
  handshakeAck = -1;
  /** An application-layer inspector (inspect/) claimed this flow; false costs its packets nothing more. */
  inspected = false;
  /**
   * Observed only (inspect/observer.ts): a flow on an application port whose rule has no block for it,
   * parsed to learn what it carries (function counts, device identity), never judged.
   */
  observed = false;
  /**
   * Offloaded to the kernel fast path (flow/offload.ts): its slot of kernel counters, or -1; and the
   * directions the kernel forwards (bit 0: initiator to responder, bit 1: back).
   */
  offloadSlot = -1;
  offloadedDirs = 0;

  // --- what the plant looks like (events/observations.ts)
  /** Ethernet source of the initiator's first frame and of the responder's, 48-bit numbers; -1 before it was seen. */
  clientMac = -1;
  serverMac = -1;

  // --- accounting (index 0: initiator → responder, 1: responder → initiator)
  packetsOut = 0;
  packetsIn = 0;
  bytesOut = 0;
  bytesIn = 0;
  firstSeen = 0;
  lastSeen = 0;
  /**
   * How much of packetsOut + packetsIn / bytesOut + bytesIn is already in the rule counters. A flow's
   * packets are added to its rule's counters in bulk (see Engine.ruleTotals), not one by one.
   */
  settledPackets = 0;
  settledBytes = 0;
  /** The same for the observations' conversation deltas (events/observations.ts): what was reported so far. */
  reportedPackets = 0;
  reportedBytes = 0;
  /** Counted as begun in a conversation delta already. */
  reportedStart = false;
}
