// Identity the bridge can enforce: a policy's address@MAC bindings, checked against the frame. A
// packet whose IP source address is bound must come from the bound MAC (the Ethernet source), and an
// ARP packet whose sender address is bound must name the bound MAC as its sender (what ARP caches
// learn, so ARP spoofing is caught where it does harm). Lookup only: the engine drops and counts.
// Must not allocate; a policy without bindings never gets here (the engine checks hasBindings).

import type { Packet } from '../decode/packet';
import { read48 } from '../decode/bytes';
import { boundMac4, boundMac6 } from '../../policy/match';
import type { CompiledPolicy } from '../../policy/types';
import { EtherType, Family } from '../../wire/protocols';

/** Offset of the Ethernet source address. */
const ETHERNET_SOURCE = 6;

export function hasBindings(policy: CompiledPolicy): boolean {
  return policy.bound4.length > 0 || policy.bound6.length > 0;
}

/** The MAC the frame claims its source address from: the ARP sender for ARP, else the Ethernet source. */
export function sourceMacOf(pkt: Packet, frame: Uint8Array): number {
  return pkt.etherType === EtherType.ARP ? pkt.arpSenderMac : read48(frame, ETHERNET_SOURCE);
}

/**
 * The MAC the packet's source address is bound to when the frame came from another one (spoofed);
 * -1 when the address is not bound, the MAC is the bound one, or the packet claims no address (an
 * ARP of another hardware type).
 */
export function spoofedBinding(policy: CompiledPolicy, pkt: Packet, frame: Uint8Array): number {
  let bound: number;
  if (pkt.family === Family.V4) {
    bound = boundMac4(policy.bound4, policy.bound4Macs, pkt.src4);
  } else if (pkt.family === Family.V6) {
    bound = boundMac6(policy.bound6, policy.bound6Macs, pkt.src6);
  } else if (pkt.etherType === EtherType.ARP && pkt.arpOp !== 0) {
    bound = boundMac4(policy.bound4, policy.bound4Macs, pkt.arpSenderIp);
  } else {
    return -1;
  }
  return bound < 0 || bound === sourceMacOf(pkt, frame) ? -1 : bound;
}
