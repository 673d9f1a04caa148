// Which rule decides: the compiled policy's lookup for the packet being processed, or for a tracked
// flow when a reload re-decides it. Must not look at flow state or act on the answer.

import type { Packet } from '../decode/packet';
import type { Flow } from '../flow/flow';
import { Action, type CompiledPolicy } from '../../policy/types';
import { Family } from '../../wire/protocols';
import { flowRuleKeyOf, ruleKeyOf } from '../../policy/match';

/** First matching rule for `pkt`; `reversed` asks as if it travelled the other way. */
export function matchPacket(policy: CompiledPolicy, pkt: Packet, reversed: boolean): number {
  const proto = pkt.proto;
  const key = ruleKeyOf(proto, reversed ? pkt.srcPort : pkt.dstPort, pkt.icmpType, pkt.icmpCode);
  if (pkt.family === Family.V4) {
    return reversed ? policy.match4(pkt.dst4, pkt.src4, proto, key) : policy.match4(pkt.src4, pkt.dst4, proto, key);
  }
  return reversed ? policy.match6(pkt.dst6, pkt.src6, proto, key) : policy.match6(pkt.src6, pkt.dst6, proto, key);
}

/** First matching rule for a tracked flow, initiator to responder. */
export function matchFlow(policy: CompiledPolicy, flow: Flow): number {
  const i = flow.initiatorIsA;
  const key = flowRuleKeyOf(flow.proto, i ? flow.portB : flow.portA);
  if (flow.family === Family.V4) return policy.match4(i ? flow.a4 : flow.b4, i ? flow.b4 : flow.a4, flow.proto, key);
  return policy.match6(i ? flow.a6 : flow.b6, i ? flow.b6 : flow.a6, flow.proto, key);
}

export function allows(policy: CompiledPolicy, rule: number): boolean {
  return policy.ruleActions[rule] === Action.Allow;
}
