// The policy a dataplane runs, and the two ways it changes: a SIGHUP reload of the policy file, and
// management's two-phase transaction (prepare aside → commit or abort). Either way the new policy is
// loaded and compiled completely, on a worker thread while forwarding goes on, before anything
// changes, and is swapped in with generation + 1.
// A committed policy is first written to the policy file (atomically), so a restart while management
// is away runs the last committed policy and a later SIGHUP reloads the same text.

import type { Engine } from './engine';
import { fileFailure, formatDiagnostic, readPolicyFile, type Diagnostic } from '../policy/diagnostics';
import { loadPolicyInBackground } from '../policy/load-worker';
import type { ModelGroup } from '../policy/model';
import type { CompiledPolicy } from '../policy/types';
import { writeFileAtomic } from '../wire/atomic-file';

/** One accepted policy as it runs. */
export interface PolicyVersion {
  policy: CompiledPolicy;
  /** The policy's declared groups: events name the groups an address is in. */
  groups: ReadonlyMap<string, ModelGroup>;
  generation: number;
}

interface Prepared {
  policy: CompiledPolicy;
  groups: ReadonlyMap<string, ModelGroup>;
  text: string;
}

export type ChangeResult =
  | { ok: true; version: PolicyVersion; warnings: Diagnostic[] }
  | { ok: false; errors: Diagnostic[] };

export type PrepareResult = { ok: true; warnings: Diagnostic[] } | { ok: false; errors: Diagnostic[] };

export type CommitResult = { ok: true; version: PolicyVersion } | { ok: false; error: string };

/** The generation of the policy a dataplane starts with; each accepted change adds one. */
export const FIRST_GENERATION = 1;

/** Older generations whose rule names are kept for flows not yet re-decided. */
const KEPT_GENERATIONS = 8;

export class RunningPolicy {
  private prepared: Prepared | null = null;
  /** Bumped by every prepare and abort: a prepare whose load ends after a newer one started is void. */
  private prepareTicket = 0;
  /** Policies load one at a time, on a worker thread (see policy/load-worker.ts), in request order. */
  private loads: Promise<unknown> = Promise.resolve();
  private readonly versions: PolicyVersion[];

  constructor(
    private readonly engine: Engine,
    private readonly path: string,
    /** The policy the engine was started with; later generations are numbered from it, here only. */
    first: PolicyVersion,
    /** Called just before `next` starts running (the one it replaces is still `current`). */
    private readonly beforeSwap: (next: PolicyVersion) => void = () => {},
  ) {
    this.versions = [first];
  }

  get current(): PolicyVersion {
    return this.versions[this.versions.length - 1];
  }

  /** Name of rule `index` in generation `generation` (flows keep the generation that decided them). */
  ruleName(generation: number, index: number): string {
    const version = this.versions.find((v) => v.generation === generation) ?? this.current;
    return version.policy.rules[index]?.name ?? `#${index}`;
  }

  /**
   * SIGHUP: load the policy file; swap it in when valid, else nothing changes. Forwarding goes on
   * while it compiles. If management committed a policy meanwhile, the file changed after it was
   * read, so it is read again: the policy that runs afterwards is always what the file holds.
   */
  reload(): Promise<ChangeResult> {
    return this.serially(async () => {
      for (;;) {
        const generation = this.current.generation;
        const read = readPolicyFile(this.path);
        if (!read.ok) return { ok: false, errors: read.errors };
        const loaded = await loadPolicyInBackground(read.text, this.path);
        if (this.current.generation !== generation) continue;
        if (!loaded.ok) return { ok: false, errors: loaded.errors };
        return { ok: true, version: this.swap(loaded.policy, loaded.groups), warnings: loaded.warnings };
      }
    });
  }

  /**
   * Compile `text` aside (replacing any earlier prepared policy); the running one is untouched and
   * forwarding goes on while it compiles. A later prepare or an abort voids this one.
   */
  prepare(text: string, source: string): Promise<PrepareResult> {
    this.prepared = null;
    const ticket = ++this.prepareTicket;
    return this.serially(async () => {
      const loaded = await loadPolicyInBackground(text, source);
      if (ticket !== this.prepareTicket) return fileFailure(source, 'replaced by a newer prepare or aborted before it finished compiling');
      if (!loaded.ok) return { ok: false, errors: loaded.errors };
      this.prepared = { policy: loaded.policy, groups: loaded.groups, text };
      return { ok: true, warnings: loaded.warnings };
    });
  }

  /** Persist the prepared policy to the policy file, then run it. Without a prepared policy: an error. */
  commit(): CommitResult {
    const prepared = this.prepared;
    if (prepared === null) return { ok: false, error: 'no prepared policy to commit' };
    this.prepared = null;
    try {
      writeFileAtomic(this.path, prepared.text, { mode: 0o640 });
    } catch (err) {
      return { ok: false, error: `cannot write ${this.path}: ${(err as Error).message}; the running policy is unchanged` };
    }
    return { ok: true, version: this.swap(prepared.policy, prepared.groups) };
  }

  /** Forget the prepared policy (or the one still compiling); false when there was none. */
  abort(): boolean {
    const had = this.prepared !== null;
    this.prepared = null;
    this.prepareTicket++;
    return had;
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.loads.then(task);
    this.loads = run.catch(() => undefined);
    return run;
  }

  private swap(policy: CompiledPolicy, groups: ReadonlyMap<string, ModelGroup>): PolicyVersion {
    const version: PolicyVersion = { policy, groups, generation: this.current.generation + 1 };
    this.beforeSwap(version);
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
