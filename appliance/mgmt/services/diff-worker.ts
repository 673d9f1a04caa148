// The unified diff of two policy texts, computed on a worker thread: for two large, very different
// texts the diff takes seconds, which on the event loop would stall the API, the dataplane hub and
// the SIEM export. Small texts are diffed in place: starting a worker costs more than their diff.
// Like policy/load-worker.ts, this file is both the caller and the worker.
// Must not touch state: text in, diff out.

import { createTwoFilesPatch, diffLines } from 'diff';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export interface PolicyDiff {
  diff: string;
  added: number;
  removed: number;
}

interface DiffInput {
  gatekeeperPolicyDiff: { beforeName: string; before: string; after: string };
}

/** The diff from `before` (named `beforeName` in the patch header) to the candidate. */
export function policyDiff(beforeName: string, before: string, after: string): PolicyDiff {
  const diff = createTwoFilesPatch(beforeName, 'candidate', before, after);
  let added = 0;
  let removed = 0;
  for (const part of diffLines(before, after)) {
    if (part.added) added += part.count ?? 0;
    if (part.removed) removed += part.count ?? 0;
  }
  return { diff, added, removed };
}

/** Texts up to this many characters together (a few hundred lines) diff in milliseconds at worst. */
const IN_PLACE_CHARS = 16 * 1024;

/** policyDiff() on a fresh worker thread (in place for small texts). Rejects when the worker fails. */
export function policyDiffInBackground(beforeName: string, before: string, after: string): Promise<PolicyDiff> {
  if (before.length + after.length <= IN_PLACE_CHARS) return Promise.resolve().then(() => policyDiff(beforeName, before, after));
  return new Promise((resolve, reject) => {
    const input: DiffInput = { gatekeeperPolicyDiff: { beforeName, before, after } };
    const worker = new Worker(__filename, { workerData: input });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the diff worker stopped (exit code ${code}) without an answer`)));
  });
}

const input = workerData as DiffInput | null;
if (!isMainThread && input?.gatekeeperPolicyDiff !== undefined) {
  const { beforeName, before, after } = input.gatekeeperPolicyDiff;
  parentPort!.postMessage(policyDiff(beforeName, before, after));
}
