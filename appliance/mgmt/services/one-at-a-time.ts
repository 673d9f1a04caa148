// Keeps slow work (a policy compile or diff on a worker thread) from piling up when requests come
// faster than it finishes, as validate-as-you-type does: per purpose, at most one job runs and one
// waits. A newer job takes the waiting place, and the one it replaces is answered 429 with
// retry-after (only the newest text matters to the editor that sent both). A job for the same input as the running or
// waiting one shares its answer. Must not do the work itself, only order it.

import { HttpError } from '../http-error';

interface Waiting<T> {
  key: string;
  job: () => Promise<T>;
  answer: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

export class OneAtATime<T> {
  private running: { key: string; answer: Promise<T> } | null = null;
  private waiting: Waiting<T> | null = null;

  /** `purpose` names the work in the 429 ("validate", "diff", ...). */
  constructor(private readonly purpose: string) {}

  /** `key` identifies the input: equal keys mean equal answers. */
  run(key: string, job: () => Promise<T>): Promise<T> {
    if (this.running?.key === key) return this.running.answer;
    if (this.waiting?.key === key) return this.waiting.answer;
    if (this.running === null) return this.start(key, job);
    this.waiting?.reject(new HttpError(429, `a newer ${this.purpose} request replaced this one before it ran`, undefined, 1));
    let resolve!: (value: T) => void;
    let reject!: (err: unknown) => void;
    const answer = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.waiting = { key, job, answer, resolve, reject };
    return answer;
  }

  private start(key: string, job: () => Promise<T>): Promise<T> {
    const answer = Promise.resolve().then(job);
    this.running = { key, answer };
    const next = () => {
      this.running = null;
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting) this.start(waiting.key, waiting.job).then(waiting.resolve, waiting.reject);
    };
    answer.then(next, next);
    return answer;
  }
}
