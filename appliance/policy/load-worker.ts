// Loads a policy on a worker thread. Parsing, checking and compiling take seconds for a big policy
// (about 2 s for 10k rules, much more for 100k); on a dataplane's own thread that would stop
// forwarding for as long and could outlast the systemd watchdog. The worker posts back the compiled
// tables, whose typed arrays are transferred rather than copied, and the policy's groups (for the
// event log); binding the lookup functions afterwards takes a few milliseconds.

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { bindPolicy } from './match';
import { fileFailure, loadPolicyTables, type Diagnostic, type LoadFailure } from './load';
import type { ModelGroup } from './model';
import type { CompiledPolicy, PolicyTables } from './types';

export type BackgroundLoad =
  | { ok: true; policy: CompiledPolicy; groups: Map<string, ModelGroup>; warnings: Diagnostic[] }
  | LoadFailure;

/** What the worker posts: the load without lookup functions (functions cannot cross threads). */
type WorkerReply =
  | { ok: true; tables: PolicyTables; groups: Map<string, ModelGroup>; warnings: Diagnostic[] }
  | LoadFailure;

interface WorkerInput {
  gatekeeperPolicyLoad: { text: string; file: string };
}

/**
 * loadPolicyText() on a fresh worker thread; `file` names the text in diagnostics. Never rejects: a
 * worker that fails is a load error.
 */
export function loadPolicyInBackground(text: string, file: string): Promise<BackgroundLoad> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: BackgroundLoad): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const input: WorkerInput = { gatekeeperPolicyLoad: { text, file } };
    const worker = new Worker(__filename, { workerData: input });
    worker.once('message', (reply: WorkerReply) => {
      settle(reply.ok ? { ok: true, policy: bindPolicy(reply.tables), groups: reply.groups, warnings: reply.warnings } : reply);
    });
    worker.once('error', (err) => settle(fileFailure(file, `the policy compiler failed: ${err.message}`)));
    worker.once('exit', (code) => settle(fileFailure(file, `the policy compiler stopped (exit code ${code}) without an answer`)));
  });
}

/** Every buffer behind the tables' typed arrays, once each (a transfer list must not repeat one). */
function buffersOf(t: PolicyTables): ArrayBuffer[] {
  const arrays = [t.ruleActions, t.l2Allow, t.bitsets, t.keySlot, t.keyed, t.protoSet];
  for (const field of [t.src4, t.dst4]) arrays.push(field.top, field.mid, field.runs);
  for (const field of [t.src6, t.dst6]) arrays.push(field.bounds, field.sets);
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

function runInWorker(text: string, file: string): void {
  const loaded = loadPolicyTables(text, file);
  if (!loaded.ok) {
    parentPort!.postMessage(loaded satisfies WorkerReply);
    return;
  }
  const reply: WorkerReply = { ok: true, tables: loaded.tables, groups: loaded.model.groups, warnings: loaded.warnings };
  parentPort!.postMessage(reply, buffersOf(loaded.tables));
}

const input = workerData as WorkerInput | null;
if (!isMainThread && input?.gatekeeperPolicyLoad !== undefined) runInWorker(input.gatekeeperPolicyLoad.text, input.gatekeeperPolicyLoad.file);
