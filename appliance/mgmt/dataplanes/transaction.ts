// The two-phase policy apply over a fixed set of dataplanes: prepare everywhere; if every one prepared,
// commit everywhere, else abort everywhere (each keeps the policy it runs). A refusal, a timeout and a
// disconnect are all failures of that dataplane.

import type { DataplaneConnection } from './connection';
import type { ApplyResult } from './types';

export interface TransactionTimeouts {
  prepareMs: number;
  commitMs: number;
}

export interface Committed {
  connection: DataplaneConnection;
  generation: number;
  policyHash: string;
}

export interface TransactionOutcome {
  result: ApplyResult;
  /** Dataplanes that confirmed the commit (on a failed commit phase, some may have). */
  committed: Committed[];
}

type Failure = { pair: string; error: string };

export async function runTransaction(
  targets: DataplaneConnection[],
  text: string,
  source: string,
  requestId: number,
  timeouts: TransactionTimeouts,
): Promise<TransactionOutcome> {
  if (targets.length === 0) return { result: { ok: true, pairs: [] }, committed: [] };

  const prepared = await Promise.all(
    targets.map(async (c): Promise<Failure | null> => {
      const reply = c.expect(requestId, 'policy.prepared', timeouts.prepareMs);
      c.send({ type: 'policy.prepare', requestId, text, source });
      try {
        const m = await reply;
        return m.ok ? null : { pair: c.pair, error: `refused: ${m.errors.length > 0 ? m.errors.join('; ') : 'no reason given'}` };
      } catch (err) {
        return { pair: c.pair, error: (err as Error).message };
      }
    }),
  );
  const refusals = prepared.filter((f): f is Failure => f !== null);
  if (refusals.length > 0) {
    for (const c of targets) c.send({ type: 'policy.abort', requestId });
    return {
      result: {
        ok: false,
        error: `${refusals.length} of ${targets.length} dataplanes did not prepare the policy (${refusals.map((f) => f.pair).join(', ')}): every dataplane keeps its running policy`,
        details: refusals,
      },
      committed: [],
    };
  }

  const committed: Committed[] = [];
  const failures: Failure[] = [];
  await Promise.all(
    targets.map(async (c) => {
      const reply = c.expect(requestId, 'policy.committed', timeouts.commitMs);
      c.send({ type: 'policy.commit', requestId });
      try {
        const m = await reply;
        committed.push({ connection: c, generation: m.generation, policyHash: m.policyHash });
      } catch (err) {
        failures.push({ pair: c.pair, error: `commit not confirmed: ${(err as Error).message}` });
      }
    }),
  );
  if (failures.length > 0) {
    return {
      result: {
        ok: false,
        error: `${failures.length} of ${targets.length} dataplanes did not confirm the commit (${failures.map((f) => f.pair).join(', ')})`,
        details: failures,
      },
      committed,
    };
  }
  const byPair = new Map(committed.map((c) => [c.connection.pair, c.generation]));
  return { result: { ok: true, pairs: targets.map((c) => ({ pair: c.pair, generation: byPair.get(c.pair) ?? 0 })) }, committed };
}
