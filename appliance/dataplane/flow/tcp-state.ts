// TCP progress of a tracked flow, from the flags of its segments: it picks the flow's idle timeout,
// ends the flow after FIN both ways or a RST, and says when the handshake really completed (the flow
// table keeps such flows through a SYN flood). Plain functions on the flow record; must not decide
// policy (detect/) or touch the flow table (the engine retimes or promotes the flow when told to).

import { Proto, TcpFlag } from '../../wire/protocols';
import { TcpState, type Flow } from './flow';

/** A SYN alone: the segment that opens a connection. */
export function isOpeningSyn(flags: number): boolean {
  return (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN;
}

/**
 * A segment that may pick up a connection already running (after a restart): neither a RST nor part
 * of a handshake. A SYN-ACK whose SYN made no flow (or whose flow a SYN flood's early drop ended) is
 * no running connection: picked up, the server's answers to a spoofed flood started a flow each,
 * doubling the table's churn (test/flood-wire.test.ts).
 */
export function mayPickUp(flags: number): boolean {
  return (flags & (TcpFlag.RST | TcpFlag.SYN)) === 0;
}

/** A new SYN on a closing flow: the 4-tuple is being reused for a new connection. */
export function isNewSynOnClosedFlow(flow: Flow, tcpFlags: number): boolean {
  return flow.proto === Proto.TCP && flow.tcpState === TcpState.Closing && (tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
}

/**
 * Advance `flow` by one segment's flags (and remember the responder's SYN-ACK `seq` for
 * handshakeDone). Returns true when the flow's state changed so that its idle timeout is another one
 * (FlowTimeouts.tcp(flow.tcpState)).
 */
export function trackTcp(flow: Flow, flags: number, seq: number, fromInitiator: boolean): boolean {
  // After a RST the connection is over; segments already in flight may still pass until the closing timeout.
  if ((flags & TcpFlag.RST) !== 0) return close(flow);
  let changed = false;
  if (!fromInitiator && (flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK)) flow.handshakeAck = (seq + 1) >>> 0;
  if (flow.tcpState === TcpState.Opening && fromInitiator && (flags & (TcpFlag.ACK | TcpFlag.SYN)) === TcpFlag.ACK) {
    flow.tcpState = TcpState.Established;
    changed = true;
  }
  if ((flags & TcpFlag.FIN) !== 0) {
    if (fromInitiator) flow.finFromInitiator = true;
    else flow.finFromResponder = true;
    if (flow.finFromInitiator && flow.finFromResponder && close(flow)) changed = true;
  }
  return changed;
}

function close(flow: Flow): boolean {
  if (flow.tcpState === TcpState.Closing) return false;
  flow.tcpState = TcpState.Closing;
  return true;
}

/**
 * Has the connection been answered, after trackTcp saw this segment? Not at the responder's SYN-ACK:
 * a server answers every spoofed SYN to an open port. At the initiator's ACK of that SYN-ACK (its ack
 * number, which a blind spoofer cannot know), or for a picked-up flow once both directions were seen.
 */
export function handshakeDone(flow: Flow, flags: number, ack: number, fromInitiator: boolean): boolean {
  if (flow.tcpState !== TcpState.Established) return false;
  if (flow.pickedUp) return flow.packetsOut > 0 && flow.packetsIn > 0;
  return fromInitiator && (flags & TcpFlag.ACK) !== 0 && ack === flow.handshakeAck;
}
