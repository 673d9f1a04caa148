// Runs propose() and review() on a worker thread: both compile policies and propose decides every
// conversation of the window. Measured on this 2-core box with a synthetic pair of 2000 assets and
// 100k conversations (test/lib/fake-inventory.ts syntheticInventory; bench/learn-propose.ts):
// propose takes 0.5-1.4 s on the caller's thread (5-12 s when few assets merge: 38k rules), and
// structured-cloning its input in one postMessage takes about 530 ms, both far over the ~50 ms the
// event loop (API, dataplane hub, SIEM export) may be held. So the input goes over in slices of
// CHUNK conversations with a turn of the loop between them (about 25 ms each), a big answer comes
// back in slices too, and the work runs on the worker. Like services/diff-worker.ts, this file is
// both the caller and the worker.
// Must not touch state: data in, proposal or review out.

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Asset, Conversation } from '../inventory/types';
import { propose, type ProposeInput } from './propose';
import { review, ReviewError } from './review';
import type { Decision, Proposal, ReviewResult } from './types';

/** Conversations per message: a slice clones in about 25 ms (530 ms per 100k measured). */
const CHUNK = 5_000;

type ToWorker =
  | { kind: 'assets'; assets: Asset[] }
  | { kind: 'conversations'; conversations: Conversation[] }
  | { kind: 'propose'; input: Omit<ProposeInput, 'assets' | 'conversations'> }
  | { kind: 'review'; proposal: Proposal; decisions: Decision[]; activeText: string | null; now: number };

type FromWorker =
  | { ok: true; value: unknown }
  | { ok: false; message: string; review: boolean }
  /** A slice of a big proposal's groups or rules, ahead of the proposal itself (sent without them). */
  | { part: 'groups' | 'rules'; items: unknown[] };

interface WorkerFlag {
  gatekeeperLearnWorker: true;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * One idle worker is kept for IDLE_MS, so the clicks of a review (each a review() call) do not pay for
 * a fresh thread each time (starting one and loading the compiler takes 0.3-0.9 s on this box, see
 * policy/load-worker.ts); an idle worker holds no process open.
 */
const IDLE_MS = 30_000;
let idle: { worker: Worker; timer: NodeJS.Timeout; forget: () => void } | null = null;

// Listeners are removed one by one: Worker keeps listeners of its own (removeAllListeners() breaks it).
function takeWorker(): Worker {
  if (idle === null) return new Worker(__filename, { workerData: { gatekeeperLearnWorker: true } satisfies WorkerFlag });
  const { worker, timer, forget } = idle;
  idle = null;
  clearTimeout(timer);
  worker.off('exit', forget);
  worker.off('error', forget);
  worker.ref();
  return worker;
}

function keepIdle(worker: Worker): void {
  if (idle !== null) {
    void worker.terminate();
    return;
  }
  const timer = setTimeout(() => {
    if (idle?.worker === worker) idle = null;
    void worker.terminate();
  }, IDLE_MS).unref();
  worker.unref();
  // An idle worker that fails or stops is forgotten (its error must not reach the caller's thread).
  const forget = (): void => {
    if (idle?.worker !== worker) return;
    clearTimeout(idle.timer);
    idle = null;
  };
  worker.once('exit', forget);
  worker.on('error', forget);
  idle = { worker, timer, forget };
}

function run<T>(send: (post: (m: ToWorker) => void) => Promise<void>): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = takeWorker();
    let done = false;
    const finish = (fn: () => void, reusable: boolean) => {
      if (done) return;
      done = true;
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (reusable) keepIdle(worker);
      else void worker.terminate();
      fn();
    };
    const parts: { groups: unknown[]; rules: unknown[] } = { groups: [], rules: [] };
    const onMessage = (m: FromWorker): void => {
      if ('part' in m) {
        for (const item of m.items) parts[m.part].push(item);
        return;
      }
      finish(() => (m.ok ? resolve((parts.groups.length + parts.rules.length > 0 ? { ...(m.value as object), ...parts } : m.value) as T)
        : reject(m.review ? new ReviewError(m.message) : new Error(m.message))), true);
    };
    const onError = (err: Error): void => finish(() => reject(err), false);
    const onExit = (code: number): void => finish(() => reject(new Error(`the learn worker stopped (exit code ${code}) without an answer`)), false);
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    send((m) => worker.postMessage(m)).catch((err: Error) => finish(() => reject(err), false));
  });
}

/** propose() on a worker thread; the conversations go over in slices so the loop stays free. */
export function proposeInBackground(input: ProposeInput): Promise<Proposal> {
  return run<Proposal>(async (post) => {
    const { assets, conversations, ...rest } = input;
    post({ kind: 'assets', assets });
    for (let i = 0; i < conversations.length; i += CHUNK) {
      await nextTurn();
      post({ kind: 'conversations', conversations: conversations.slice(i, i + CHUNK) });
    }
    post({ kind: 'propose', input: rest });
  });
}

/** review() on a worker thread (it compiles the active and the reviewed policy). Rejects with its ReviewError. */
export function reviewInBackground(proposal: Proposal, decisions: Decision[], activeText: string | null, now: number): Promise<ReviewResult> {
  return run<ReviewResult>(async (post) => post({ kind: 'review', proposal, decisions, activeText, now }));
}

if (!isMainThread && (workerData as WorkerFlag | null)?.gatekeeperLearnWorker === true) {
  let assets: Asset[] = [];
  const conversations: Conversation[] = [];
  parentPort!.on('message', (m: ToWorker) => {
    try {
      // A job starts with its assets (propose) or is whole in one message (review): nothing of the last job stays.
      if (m.kind === 'assets') {
        assets = m.assets;
        conversations.length = 0;
      }
      else if (m.kind === 'conversations') for (const c of m.conversations) conversations.push(c);
      else if (m.kind === 'propose') {
        const { groups, rules, ...rest } = propose({ ...m.input, assets, conversations });
        // In slices: the caller's thread clones each message as it arrives, one at a time.
        for (let i = 0; i < groups.length; i += CHUNK) parentPort!.postMessage({ part: 'groups', items: groups.slice(i, i + CHUNK) } satisfies FromWorker);
        for (let i = 0; i < rules.length; i += CHUNK) parentPort!.postMessage({ part: 'rules', items: rules.slice(i, i + CHUNK) } satisfies FromWorker);
        parentPort!.postMessage({ ok: true, value: { ...rest, groups: [], rules: [] } } satisfies FromWorker);
      }
      else parentPort!.postMessage({ ok: true, value: review(m.proposal, m.decisions, m.activeText, m.now) } satisfies FromWorker);
    } catch (err) {
      parentPort!.postMessage({ ok: false, message: (err as Error).message, review: err instanceof ReviewError } satisfies FromWorker);
    }
  });
}
