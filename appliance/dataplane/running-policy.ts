// The policy a dataplane runs, and the two ways it changes: a SIGHUP reload of the policy file, and
// management's two-phase transaction (prepare aside → commit or abort). Either way the new policy is
// loaded and compiled completely before anything changes, and is swapped in with generation + 1.
// A committed policy is first written to the policy file (atomically), so a restart while management
// is away runs the last committed policy and a later SIGHUP reloads the same text.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Engine } from './engine';
import { formatDiagnostic, loadPolicyFile, loadPolicyText, type Diagnostic } from '../policy/load';
import type { PolicyModel } from '../policy/model';
import type { CompiledPolicy } from '../policy/types';

/** One accepted policy as it runs. */
export interface PolicyVersion {
  policy: CompiledPolicy;
  model: PolicyModel;
  generation: number;
}

interface Prepared {
  policy: CompiledPolicy;
  model: PolicyModel;
  text: string;
}

export type ChangeResult =
  | { ok: true; version: PolicyVersion; warnings: Diagnostic[] }
  | { ok: false; errors: Diagnostic[] };

export type PrepareResult = { ok: true; warnings: Diagnostic[] } | { ok: false; errors: Diagnostic[] };

export type CommitResult = { ok: true; version: PolicyVersion } | { ok: false; error: string };

/** Older generations whose rule names are kept for flows not yet re-decided. */
const KEPT_GENERATIONS = 8;

export class RunningPolicy {
  private prepared: Prepared | null = null;
  private readonly versions: PolicyVersion[];

  constructor(
    private readonly engine: Engine,
    private readonly path: string,
    first: { policy: CompiledPolicy; model: PolicyModel },
    /** Called just before a swap, with the version that is about to stop running. */
    private readonly beforeSwap: (old: PolicyVersion) => void = () => {},
  ) {
    this.versions = [{ policy: first.policy, model: first.model, generation: engine.generation }];
  }

  get current(): PolicyVersion {
    return this.versions[this.versions.length - 1];
  }

  /** Name of rule `index` in generation `generation` (flows keep the generation that decided them). */
  ruleName(generation: number, index: number): string {
    const version = this.versions.find((v) => v.generation === generation) ?? this.current;
    return version.policy.rules[index]?.name ?? `#${index}`;
  }

  /** SIGHUP: load the policy file; swap it in when valid, else nothing changes. */
  reload(): ChangeResult {
    const loaded = loadPolicyFile(this.path);
    if (!loaded.ok) return { ok: false, errors: loaded.errors };
    return { ok: true, version: this.swap(loaded.policy, loaded.model), warnings: loaded.warnings };
  }

  /** Compile `text` aside (replacing any earlier prepared policy); the running one is untouched. */
  prepare(text: string, source: string): PrepareResult {
    this.prepared = null;
    const loaded = loadPolicyText(text, source);
    if (!loaded.ok) return { ok: false, errors: loaded.errors };
    this.prepared = { policy: loaded.policy, model: loaded.model, text };
    return { ok: true, warnings: loaded.warnings };
  }

  /** Persist the prepared policy to the policy file, then run it. Without a prepared policy: an error. */
  commit(): CommitResult {
    const prepared = this.prepared;
    if (prepared === null) return { ok: false, error: 'no prepared policy to commit' };
    this.prepared = null;
    try {
      writeFileAtomic(this.path, prepared.text);
    } catch (err) {
      return { ok: false, error: `cannot write ${this.path}: ${(err as Error).message}; the running policy is unchanged` };
    }
    return { ok: true, version: this.swap(prepared.policy, prepared.model) };
  }

  /** Forget the prepared policy; false when there was none. */
  abort(): boolean {
    const had = this.prepared !== null;
    this.prepared = null;
    return had;
  }

  private swap(policy: CompiledPolicy, model: PolicyModel): PolicyVersion {
    this.beforeSwap(this.current);
    const version: PolicyVersion = { policy, model, generation: this.engine.generation + 1 };
    this.engine.setPolicy(policy, version.generation);
    this.versions.push(version);
    if (this.versions.length > KEPT_GENERATIONS) this.versions.shift();
    return version;
  }
}

/** Diagnostics as "file:line:col: message" lines (what policy.prepared carries). */
export function diagnosticLines(list: Diagnostic[]): string[] {
  return list.map(formatDiagnostic);
}

/**
 * Replace `path` so that a crash at any moment leaves either the old or the new content: write a
 * temporary file in the same directory, fsync it, rename it over the target, fsync the directory.
 */
export function writeFileAtomic(path: string, text: string): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
