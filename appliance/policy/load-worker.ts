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

/** One load asked of the worker. */
export interface WorkerInput {
  text: string;
  file: string;
}

/** The worker's entry, next to this file (.js when built, .ts under the test runner). */
const ENTRY = join(__dirname, `load-worker-entry${extname(__filename)}`);

/**
 * One worker is kept warm between loads. Measured with docs/examples/lab.yaml on this busy 2-core
 * box, 8 loads in a row, 4 times: a fresh worker answers in 0.3–0.9 s (starting the thread, loading
 * the YAML parser, compiling the policy schema), a warm one in 5–70 ms (median about 25 ms), like
 * loadPolicyText() on the caller's thread (15–90 ms). After IDLE_MS without a load the worker is
 * stopped, which frees what the last compile left on its heap.
 */
const IDLE_MS = 30_000;

interface Warm {
  worker: Worker;
  timer: NodeJS.Timeout;
  /**
   * Forgets the worker if it stops or fails while idle; as its 'error' listener it also keeps an idle
   * worker's error from being thrown on the caller's thread.
   */
  forget: () => void;
}

let warm: Warm | null = null;

function takeWorker(): Worker {
  if (warm === null) return new Worker(ENTRY);
  const { worker, timer, forget } = warm;
  warm = null;
  clearTimeout(timer);
  worker.off('exit', forget);
  worker.off('error', forget);
  worker.ref();
  return worker;
}

/** Keeps `worker` for the next load, unless one is kept already; an idle worker holds no process open. */
function keepWarm(worker: Worker): void {
  if (warm !== null) {
    void worker.terminate();
    return;
  }
  const forget = (): void => {
    if (warm?.worker !== worker) return;
    clearTimeout(warm.timer);
    warm = null;
  };
  const timer = setTimeout(() => {
    forget();
    void worker.terminate();
  }, IDLE_MS);
  timer.unref();
  worker.unref();
  warm = { worker, timer, forget };
  worker.once('exit', forget);
  worker.on('error', forget);
}

/**
 * Start the worker now and keep it warm for the first load: a starting dataplane calls this before
 * it loads its own modules, so the worker starts its thread and loads the compiler meanwhile, on
 * the other core (a restart forwards sooner by about that: see dataplane/dataplane.ts).
 */
export function prewarmWorker(): void {
  if (warm === null) keepWarm(new Worker(ENTRY));
}

/**
 * loadPolicyText() on a worker thread (a warm one when there is one); `file` names the text in
 * diagnostics. Never rejects: a worker that fails is a load error, and that worker is not reused.
 */
export function loadPolicyInBackground(text: string, file: string): Promise<BackgroundLoad> {
  return new Promise((resolve) => {
    const worker = takeWorker();
    const done = (result: BackgroundLoad, reusable: boolean): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (reusable) keepWarm(worker);
      else void worker.terminate();
      resolve(result);
    };
    const onMessage = (reply: WorkerReply): void =>
      done(reply.ok ? { ok: true, policy: bindPolicy(reply.tables), groups: reply.groups, warnings: reply.warnings } : reply, true);
    const onError = (err: Error): void => done(fileFailure(file, `the policy compiler failed: ${err.message}`), false);
    const onExit = (code: number): void => done(fileFailure(file, `the policy compiler stopped (exit code ${code}) without an answer`), false);
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage({ text, file } satisfies WorkerInput);
  });
}
