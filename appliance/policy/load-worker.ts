// Loads a policy on a worker thread, the one way to compile a large policy off the caller's thread
// (the dataplane for its loads, management for validate, dry-run and apply). Parsing, checking and
// compiling take seconds for a big policy (about 2 s for 10k rules, much more for 100k); on a
// dataplane's own thread that would stop forwarding for as long and could outlast the systemd
// watchdog. The worker (load-worker-entry.ts) posts back the compiled tables, whose typed arrays are
// transferred rather than copied, and the policy's groups (for the event log); binding the lookup
// functions afterwards takes a few milliseconds.
// This side runs on the caller's thread and must not load the compiler: it imports only the matching
// module, the diagnostics and types (test/policy-match.test.ts checks what a fresh process loads).

import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileFailure, type Diagnostic, type LoadFailure } from './diagnostics';
import { bindPolicy } from './match';
import type { ModelGroup } from './model';
import type { CompiledPolicy, PolicyTables } from './types';

export type BackgroundLoad =
  | { ok: true; policy: CompiledPolicy; groups: Map<string, ModelGroup>; warnings: Diagnostic[] }
  | LoadFailure;

/** What the worker posts: the load without lookup functions (functions cannot cross threads). */
export type WorkerReply =
  | { ok: true; tables: PolicyTables; groups: Map<string, ModelGroup>; warnings: Diagnostic[] }
  | LoadFailure;

/** What the worker is started with. */
export interface WorkerInput {
  text: string;
  file: string;
}

/** The worker's entry, next to this file (.js when built, .ts under the test runner). */
const ENTRY = join(__dirname, `load-worker-entry${extname(__filename)}`);

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
    const input: WorkerInput = { text, file };
    const worker = new Worker(ENTRY, { workerData: input });
    worker.once('message', (reply: WorkerReply) => {
      settle(reply.ok ? { ok: true, policy: bindPolicy(reply.tables), groups: reply.groups, warnings: reply.warnings } : reply);
    });
    worker.once('error', (err) => settle(fileFailure(file, `the policy compiler failed: ${err.message}`)));
    worker.once('exit', (code) => settle(fileFailure(file, `the policy compiler stopped (exit code ${code}) without an answer`)));
  });
}
