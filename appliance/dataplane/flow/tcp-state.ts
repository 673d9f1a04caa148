// TCP progress of a tracked flow, from the flags of its segments: it picks the flow's idle timeout
// and ends the flow after FIN both ways or a RST. Plain functions on the flow record; must not
// decide policy (detect/) or touch the flow table (the engine retimes the flow when told to).

import { Proto, TcpFlag } from '../../wire/protocols';
import { TcpState, type Flow } from './flow';

/** A SYN alone: the segment that opens a connection. */
export function isOpeningSyn(flags: number): boolean {
  return (flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN;
}

/** A segment that may pick up a connection already running (after a restart): anything but a RST. */
export function mayPickUp(flags: number): boolean {
  return (flags & TcpFlag.RST) === 0;
}

/** A new SYN on a closing flow: the 4-tuple is being reused for a new connection. */
export function isNewSynOnClosedFlow(flow: Flow, tcpFlags: number): boolean {
  return flow.proto === Proto.TCP && flow.tcpState === TcpState.Closing && (tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
}

/**
 * Advance `flow` by one segment's flags. Returns true when the flow's state changed so that its idle
 * timeout is another one (FlowTimeouts.tcp(flow.tcpState)).
 */
export function trackTcp(flow: Flow, flags: number, fromInitiator: boolean): boolean {
  // After a RST the connection is over; segments already in flight may still pass until the closing timeout.
  if ((flags & TcpFlag.RST) !== 0) return close(flow);
  let changed = false;
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
