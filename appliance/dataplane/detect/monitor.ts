// Monitor mode: the policy is watched, not enforced. What enforce mode would drop is forwarded and
// counted as would-drop; flows it would refuse are tracked so their packets are counted too; nothing
// is answered (the engine asks respond/ for a reject only in enforce mode).

import { Action, type CompiledPolicy } from '../../policy/types';
import { NO_RULE, Verdict, type PacketResult } from '../verdict';

export function isMonitor(policy: CompiledPolicy): boolean {
  return policy.mode === 'monitor';
}

/** Enforce mode's drop, as monitor mode carries it out. */
export function forwardInstead(result: PacketResult): void {
  result.verdict = Verdict.Forward;
  result.monitored = true;
}

/** Would `rule` refuse what monitor mode lets through? (NO_RULE: nothing a rule refused.) */
export function wouldDrop(policy: CompiledPolicy, rule: number): boolean {
  return isMonitor(policy) && rule !== NO_RULE && policy.ruleActions[rule] !== Action.Allow;
}
