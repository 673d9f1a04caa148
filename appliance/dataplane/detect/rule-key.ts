// The key a rule's service is matched on, for a packet and for a tracked flow. The same signatures as
// the policy's one definition (policy/match.ts on the policy branch): when that lands, this file goes
// and detect/ imports it from there. Must not grow a second meaning: explain and dry-run use the same.

import { Proto } from '../../wire/protocols';

/** dst port for TCP/UDP/SCTP, (icmpType << 8) | icmpCode for ICMP/ICMPv6, 0 otherwise. */
export function ruleKeyOf(proto: number, dstPort: number, icmpType: number, icmpCode: number): number {
  if (proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP) return dstPort;
  if (proto === Proto.ICMP || proto === Proto.ICMPV6) return (icmpType << 8) | icmpCode;
  return 0;
}

/** The key a tracked flow is re-decided with: the responder's port, echo request for ICMP, else 0. */
export function flowRuleKeyOf(proto: number, responderPort: number): number {
  if (proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP) return responderPort;
  if (proto === Proto.ICMP) return 8 << 8;
  if (proto === Proto.ICMPV6) return 128 << 8;
  return 0;
}
