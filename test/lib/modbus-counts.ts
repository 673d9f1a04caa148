// What the dataplane counted about Modbus inspection between two stats snapshots of a lab: the
// violations and holds by reason that changed, and one rule's violation count. It reads the stats file
// (lab.freshStats), never the dataplane's log, and judges nothing.

import type { Lab } from '../../appliance/lab/lab';
import type { DataplaneStats } from '../../appliance/ipc/stats';

export interface ModbusCounts {
  /** Violations by reason, only the reasons whose count changed. */
  violations: Record<string, number>;
  /** Held segments by reason, only the reasons whose count changed. */
  held: Record<string, number>;
  /** Violations counted on the rule. */
  rule: number;
}

function changed(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, n] of Object.entries(after)) if (n !== (before[reason] ?? 0)) out[reason] = n - (before[reason] ?? 0);
  return out;
}

/** Counts since the previous call (the first call starts from the stats at construction). */
export class ModbusCounter {
  private constructor(private readonly lab: Lab, private readonly rule: string, private last: DataplaneStats) {}

  static async start(lab: Lab, rule: string): Promise<ModbusCounter> {
    return new ModbusCounter(lab, rule, await lab.freshStats());
  }

  /** Wait for a stats file written after now and return what changed since the last call. */
  async since(): Promise<ModbusCounts> {
    const now = await this.lab.freshStats();
    const before = this.last;
    this.last = now;
    const ruleViolations = (s: DataplaneStats) => s.rules.find((r) => r.name === this.rule)?.violations ?? 0;
    return {
      violations: changed(before.inspect.modbus.violations, now.inspect.modbus.violations),
      held: changed(before.inspect.modbus.held, now.inspect.modbus.held),
      rule: ruleViolations(now) - ruleViolations(before),
    };
  }
}
