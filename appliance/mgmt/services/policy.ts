// The policy lifecycle behind the API: validate, diff, dry-run, and the apply transaction across
// every dataplane (apply and rollback share it), plus the active policy: the state stores it, and
// this service is the one place that reads it for the API and hands it to the hub. Apply stores and
// activates a version only after every dataplane acknowledged it; any failure leaves the old policy
// active everywhere. Every compile and diff runs on a worker thread (policy/load-worker.ts,
// diff-worker.ts): a 10k-rule policy takes seconds, and the event loop also serves the API, the
// dataplane hub and the SIEM export. Must not import routes.

import type { Diagnostic } from '../../policy/diagnostics';
import { loadPolicyInBackground } from '../../policy/load-worker';
import type { DataplaneHub, DryRunResult } from '../dataplanes/types';
import { HttpError } from '../http-error';
import { isDiskFull } from '../state/atomic';
import type { StateStore, StoredPolicy } from '../state/store';
import { policyDiffInBackground, type PolicyDiff } from './diff-worker';
import { OneAtATime } from './one-at-a-time';
import type { Recorder } from './recorder';

/** Who asks (for the audit trail). */
export interface Actor {
  user: string;
  from: string;
}

export interface Problem {
  line: number;
  col: number;
  message: string;
}

export type Validation =
  | { ok: false; errors: Problem[]; warnings: Problem[] }
  | { ok: true; errors: []; warnings: Problem[]; stats: object };

export type DryRunAnswer = { ok: false; errors: Problem[]; observed: 0; changes: [] } | ({ ok: true } & DryRunResult);

export interface Applied {
  version: number;
  pairs: { pair: string; generation: number }[];
}

const problems = (list: Diagnostic[]): Problem[] => list.map(({ line, col, message }) => ({ line, col, message }));

function diffFrom(active: StoredPolicy | null, text: string): Promise<PolicyDiff> {
  return policyDiffInBackground(active ? `policy v${active.version}` : 'no policy', active?.text ?? '', text);
}

export class PolicyService {
  private applying = false;
  // Validate-as-you-type and the review dialog: bounded, newest wins (one-at-a-time.ts).
  private readonly validations = new OneAtATime<Validation>('validate');
  private readonly diffs = new OneAtATime<PolicyDiff>('diff');
  private readonly dryRuns = new OneAtATime<DryRunAnswer>('dry-run');

  constructor(
    private readonly store: StateStore,
    private readonly hub: DataplaneHub,
    private readonly recorder: Recorder,
  ) {}

  /** The active version, or null before the first apply. */
  active(): StoredPolicy | null {
    return this.store.activePolicy();
  }

  /** Tells the hub what is active (at start), so dataplanes that run something else are brought to it. */
  announce(): void {
    const active = this.active();
    if (active) this.hub.setActivePolicy(active.text, active.hash);
  }

  /**
   * Stores `text` as version 1 by "system" when no policy is stored yet (mgmt --initial-policy).
   * Returns why it was refused, or null.
   */
  async seed(text: string, file: string): Promise<string | null> {
    if (this.active()) return null;
    const loaded = await loadPolicyInBackground(text, file);
    if (!loaded.ok) return loaded.errors.map((d) => `${d.file}:${d.line}:${d.col}: ${d.message}`).join('\n');
    this.store.commitPolicy({ text, hash: loaded.policy.sourceHash, mode: loaded.policy.mode, author: 'system',
      comment: `initial policy from ${file}` });
    return null;
  }

  history() {
    return this.store.policyHistory().map((p) => ({ version: p.version, author: p.author, comment: p.comment,
      appliedAt: p.appliedAt, hash: p.hash, mode: p.mode, active: this.store.isActive(p.version) }));
  }

  version(version: number): (StoredPolicy & { active: boolean }) | null {
    const p = this.store.policy(version);
    return p && { ...p, active: this.store.isActive(p.version) };
  }

  /** The stored version a dataplane runs, from the hash it reports (null: not from management). */
  versionOfHash(hash: string): number | null {
    return this.store.versionOfHash(hash);
  }

  validate(text: string): Promise<Validation> {
    return this.validations.run(text, async () => {
      const r = await loadPolicyInBackground(text, 'policy');
      if (!r.ok) return { ok: false, errors: problems(r.errors), warnings: problems(r.warnings) };
      return { ok: true, errors: [], warnings: problems(r.warnings), stats: r.policy.stats };
    });
  }

  diff(text: string): Promise<PolicyDiff> {
    const active = this.active();
    return this.diffs.run(`${active?.version ?? 0}\n${text}`, () => diffFrom(active, text));
  }

  dryRun(text: string): Promise<DryRunAnswer> {
    const active = this.active();
    return this.dryRuns.run(`${active?.version ?? 0}\n${text}`, async () => {
      // The hub compiles both policies itself; the candidate's own compile, alongside, gives its
      // errors line by line.
      const comparing = active ? this.hub.dryRun(active.text, text) : null;
      comparing?.catch(() => undefined); // not awaited when the candidate has errors
      const r = await loadPolicyInBackground(text, 'policy');
      if (!r.ok) return { ok: false, errors: problems(r.errors), observed: 0, changes: [] };
      if (!comparing) throw new HttpError(409, 'no policy is active yet, so there is nothing to compare with');
      return { ok: true, ...(await comparing) };
    });
  }

  apply(text: string, comment: string, by: Actor): Promise<Applied> {
    return this.transaction(text, comment, by);
  }

  /** Applies an earlier version's text again, as a new version. */
  rollback(version: number, comment: string, by: Actor): Promise<Applied> {
    const old = this.store.policy(version);
    if (!old) throw new HttpError(404, `version: no policy version ${version}`);
    return this.transaction(old.text, `rollback to v${old.version}${comment ? `: ${comment}` : ''}`, by, old.version);
  }

  private async transaction(text: string, comment: string, { user, from }: Actor, rollbackOf?: number): Promise<Applied> {
    // Claimed before the compile, so concurrent applies never compile side by side.
    if (this.applying) throw new HttpError(409, 'another policy apply is in progress; try again when it is done');
    this.applying = true;
    try {
      const loaded = await loadPolicyInBackground(text, 'policy');
      if (!loaded.ok) {
        throw new HttpError(400, `text: the policy has ${loaded.errors.length} error(s)`, problems(loaded.errors));
      }
      const active = this.active();
      const version = this.store.nextPolicyVersion();
      const { diff } = await diffFrom(active, text);
      const action = rollbackOf === undefined ? 'policy.apply' : 'policy.rollback';
      // A full state disk refuses the apply here, before any dataplane is asked to commit.
      this.store.ensureRoomForPolicy(text);
      const result = await this.hub.apply(text, `policy v${version}`);
      if (!result.ok) {
        this.recorder.audit({ type: 'admin.change', severity: 'warning', user, from, action: `${action}.refused`,
          detail: `${result.error}${comment ? ` (${comment})` : ''}`, diff });
        this.recorder.publish({ type: 'policy.refused', time: new Date().toISOString(), severity: 'warning', author: user, comment,
          policyHash: loaded.policy.sourceHash, errors: result.details.map((d) => `${d.pair}: ${d.error}`) });
        throw new HttpError(502, `policy not applied, the old policy is still running everywhere: ${result.error}`, result.details);
      }
      let stored;
      try {
        stored = this.store.commitPolicy({ text, hash: loaded.policy.sourceHash, mode: loaded.policy.mode, author: user, comment });
      } catch (err) {
        // The dataplanes committed a policy management could not store: they are brought back to
        // the stored active one (the hub pushes it to those that run something else).
        if (active) this.hub.setActivePolicy(active.text, active.hash);
        const refused = isDiskFull(err)
          ? new HttpError(507, `policy could not be stored, ${(err as Error).message}; the previous policy is being restored`)
          : new HttpError(500, 'policy could not be stored; the previous policy is being restored');
        try {
          this.recorder.audit({ type: 'admin.change', severity: 'error', user, from, action: `${action}.failed`,
            detail: `could not store v${version}: ${(err as Error).message}`, diff });
        } catch {
          // The audit line fails on the same full disk; the answer names the first failure.
        }
        throw refused;
      }
      this.hub.setActivePolicy(text, stored.hash);
      this.recorder.audit({ type: 'admin.change', severity: 'notice', user, from, action,
        detail: `v${stored.version}${comment ? `: ${comment}` : ''}`, diff });
      const time = new Date().toISOString();
      this.recorder.publish({ type: rollbackOf === undefined ? 'policy.applied' : 'policy.rollback', time, severity: 'notice',
        version: stored.version, author: user, comment, policyHash: stored.hash, mode: stored.mode });
      if (active && active.mode !== stored.mode) {
        this.recorder.publish({ type: 'mode.change', time, severity: 'warning', from: active.mode, to: stored.mode, author: user });
      }
      return { version: stored.version, pairs: result.pairs };
    } finally {
      this.applying = false;
    }
  }
}
