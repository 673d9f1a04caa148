// Learn mode's sessions: start/stop learning on a pair for a period, monitor mode meanwhile when asked
// (and the previous mode back after), the end of the period by timer (also across a management
// restart: the sessions live in a small JSON state file), learn.start/learn.stop events, asset.new
// switched on once a pair has learned, and the last proposal per pair for its review. Propose and
// review run on a worker (learn-worker.ts). It never applies anything learned: review returns a text
// that goes through the policy service's dry-run and apply. Must not import routes.

import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { LearnEvent } from '../../ipc/events';
import { HttpError } from '../http-error';
import type { Inventory } from '../inventory/types';
import { writeJsonAtomic } from '../state/atomic';
import { proposeInBackground, reviewInBackground } from './learn-worker';
import { withMode } from './merge';
import { ReviewError } from './review';
import type { Decision, LearnStatus, Proposal, ReviewResult } from './types';

type Mode = 'enforce' | 'monitor';

/** The policy's mode, as learning reads and sets it (policy-mode.ts: through the policy service). */
export interface ModeControl {
  /** The mode the pair's policy runs in, null when no policy is active. */
  current(pair: string): Mode | null;
  /** Puts the pair's policy in `mode`; rejects when it could not. */
  set(pair: string, mode: Mode, author: string, why: string): Promise<void>;
}

/** Time and timers (a fake in tests). */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface LearnDeps {
  inventory: Inventory;
  modes: ModeControl;
  /** The active policy's text, null before the first apply. */
  activeText: () => string | null;
  /** The pairs management knows (configured or connected). */
  pairs: () => string[];
  clock: Clock;
  /** The JSON file the sessions are kept in (in the state directory). */
  stateFile: string;
  onEvent: (event: LearnEvent) => void;
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

interface Session {
  pair: string;
  state: 'learning' | 'done';
  mode: Mode;
  startedAt: number;
  endsAt: number;
  stoppedAt: number | null;
  author: string;
  /** The mode to put back when learning ends; null when learning did not change it. */
  restoreMode: Mode | null;
}

interface StateFile {
  version: 1;
  sessions: Session[];
}

/** The sessions' state file in the state directory. */
export const LEARN_FILE = 'learn.json';

/** Longest timer Node keeps (2^31 - 1 ms, about 24.8 days); longer periods are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Status counts are read from the inventory at most this often per pair (the UI polls the status). */
const COUNT_TTL_MS = 5_000;
/** Conversations read for one proposal (the inventory's own bounds are lower). */
const MAX_CONVERSATIONS = 500_000;
const HOUR_MS = 3_600_000;

export class LearnService {
  private readonly sessions = new Map<string, Session>();
  private readonly timers = new Map<string, unknown>();
  private readonly proposals = new Map<string, Proposal>();
  private readonly counts = new Map<string, { at: number; assets: number; conversations: number }>();
  private proposing = false;

  constructor(private readonly deps: LearnDeps) {}

  /** Reads the state file; a period that ended while management was down ends now, the others go on. */
  async resume(): Promise<void> {
    const saved = this.read();
    for (const s of saved) this.sessions.set(s.pair, s);
    const now = this.deps.clock.now();
    for (const s of saved) {
      if (s.state === 'done') this.deps.inventory.setAnnounceNew(s.pair, true);
      else if (s.endsAt <= now) await this.finish(s, 'period over (it ended while management was down)', 'system');
      else this.schedule(s);
    }
  }

  status(): LearnStatus[] {
    const pairs = new Set([...this.deps.pairs(), ...this.sessions.keys()]);
    return [...pairs].sort().map((pair) => this.statusOf(pair));
  }

  async start(pair: string, durationMs: number, mode: Mode, author: string): Promise<LearnStatus> {
    this.knownPair(pair);
    const running = this.sessions.get(pair);
    if (running?.state === 'learning') {
      throw new HttpError(409, `pair '${pair}' is learning already (since ${new Date(running.startedAt).toISOString()}); stop it first`);
    }
    const now = this.deps.clock.now();
    let restoreMode: Mode | null = null;
    if (mode === 'monitor') {
      const current = this.deps.modes.current(pair);
      if (current === null) throw new HttpError(409, 'no policy is active yet: learning in monitor mode needs a policy to put in monitor mode');
      if (current === 'enforce') {
        await this.deps.modes.set(pair, 'monitor', author, `learning on pair ${pair}`);
        restoreMode = 'enforce';
      }
    }
    const s: Session = { pair, state: 'learning', mode, startedAt: now, endsAt: now + durationMs, stoppedAt: null, author, restoreMode };
    const before = this.sessions.get(pair);
    this.sessions.set(pair, s);
    try {
      this.save();
    } catch (err) {
      // Not recorded (a full state disk): no session, and the mode it set is put back.
      if (before) this.sessions.set(pair, before);
      else this.sessions.delete(pair);
      if (restoreMode !== null) await this.deps.modes.set(pair, restoreMode, author, `learning on pair ${pair} could not start`).catch(() => undefined);
      throw err;
    }
    this.counts.delete(pair);
    // No asset.new while the pair learns: everything is new then.
    this.deps.inventory.setAnnounceNew(pair, false);
    this.schedule(s);
    this.deps.onEvent({ type: 'learn.start', time: new Date(now).toISOString(), severity: 'notice', pair, author, durationMs,
      detail: mode === 'monitor' ? `monitor mode${restoreMode ? ' (was enforce)' : ''}` : 'enforcing, everything observed' });
    return this.statusOf(pair);
  }

  async stop(pair: string, author: string): Promise<LearnStatus> {
    this.knownPair(pair);
    const s = this.sessions.get(pair);
    if (s?.state !== 'learning') throw new HttpError(409, `pair '${pair}' is not learning`);
    await this.finish(s, `stopped by ${author}`, author);
    return this.statusOf(pair);
  }

  /** A proposal from what the pair learned (and the last `hours`, the coverage window); kept for review. */
  async propose(pair: string, hours: number): Promise<Proposal> {
    this.knownPair(pair);
    if (this.proposing) throw new HttpError(409, 'a proposal is being built; try again when it is done');
    this.proposing = true;
    try {
      const now = this.deps.clock.now();
      const window = now - hours * HOUR_MS;
      const s = this.sessions.get(pair);
      const since = s ? Math.min(s.startedAt, window) : window;
      const conversations = this.deps.inventory.conversations({ pair, since, limit: MAX_CONVERSATIONS });
      const assets = this.deps.inventory.assets({ pair });
      const proposal = await proposeInBackground({ id: randomUUID(), pair, conversations, assets, activeText: this.deps.activeText(), now, hours });
      this.proposals.set(pair, proposal);
      return proposal;
    } finally {
      this.proposing = false;
    }
  }

  async review(pair: string, proposalId: string, decisions: Decision[]): Promise<ReviewResult> {
    this.knownPair(pair);
    const proposal = this.proposals.get(pair);
    if (!proposal) throw new HttpError(404, `pair '${pair}' has no proposal (proposals are kept until management restarts); propose first`);
    if (proposal.id !== proposalId) {
      throw new HttpError(404, `proposal ${proposalId} is not the latest for pair '${pair}' (that is ${proposal.id}); review the latest or propose again`);
    }
    try {
      return await reviewInBackground(proposal, decisions, this.deps.activeText(), this.deps.clock.now());
    } catch (err) {
      throw err instanceof ReviewError ? new HttpError(400, err.message) : err;
    }
  }

  /** Stops the timers (management shuts down; the sessions stay in the state file). */
  close(): void {
    for (const h of this.timers.values()) this.deps.clock.clearTimer(h);
    this.timers.clear();
  }

  private statusOf(pair: string): LearnStatus {
    const s = this.sessions.get(pair);
    if (!s) return { pair, state: 'idle', mode: null, startedAt: null, endsAt: null, author: null, assets: 0, conversations: 0 };
    const now = this.deps.clock.now();
    let c = this.counts.get(pair);
    if (!c || now - c.at >= COUNT_TTL_MS) {
      const assets = this.deps.inventory.assets({ pair }).filter((a) => a.lastSeen >= s.startedAt).length;
      const conversations = this.deps.inventory.conversations({ pair, since: s.startedAt, limit: MAX_CONVERSATIONS }).length;
      this.counts.set(pair, (c = { at: now, assets, conversations }));
    }
    return { pair, state: s.state, mode: s.mode, startedAt: s.startedAt, endsAt: s.stoppedAt ?? s.endsAt, author: s.author,
      assets: c.assets, conversations: c.conversations };
  }

  private knownPair(pair: string): void {
    const pairs = this.deps.pairs();
    if (!pairs.includes(pair) && !this.sessions.has(pair)) {
      throw new HttpError(404, `pair '${pair}': no such pair${pairs.length ? ` (known: ${pairs.join(', ')})` : ''}`);
    }
  }

  private schedule(s: Session): void {
    const wait = Math.max(0, Math.min(s.endsAt - this.deps.clock.now(), MAX_TIMER_MS));
    this.timers.set(s.pair, this.deps.clock.setTimer(() => {
      this.timers.delete(s.pair);
      if (this.sessions.get(s.pair) !== s || s.state !== 'learning') return;
      if (this.deps.clock.now() < s.endsAt) this.schedule(s);
      else void this.finish(s, 'period over', 'system');
    }, wait));
  }

  private async finish(s: Session, why: string, author: string): Promise<void> {
    const timer = this.timers.get(s.pair);
    if (timer !== undefined) this.deps.clock.clearTimer(timer);
    this.timers.delete(s.pair);
    const now = this.deps.clock.now();
    s.state = 'done';
    s.stoppedAt = Math.min(now, s.endsAt);
    let detail = why;
    if (s.restoreMode !== null) {
      const mode = s.restoreMode;
      s.restoreMode = null;
      // Another pair still learning in monitor mode keeps the policy there and restores it after.
      const heir = [...this.sessions.values()].find((o) => o !== s && o.state === 'learning' && o.mode === 'monitor');
      if (heir) heir.restoreMode = mode;
      else if (this.deps.modes.current(s.pair) === 'monitor') {
        try {
          await this.deps.modes.set(s.pair, mode, author, `learning ended on pair ${s.pair}`);
          detail += `; ${mode} mode restored`;
        } catch (err) {
          this.deps.log.error({ err, pair: s.pair }, 'learning ended but the previous mode could not be restored');
          detail += `; ${mode} mode could not be restored: ${(err as Error).message}`;
        }
      }
    }
    this.save();
    this.deps.inventory.setAnnounceNew(s.pair, true);
    this.deps.onEvent({ type: 'learn.stop', time: new Date(now).toISOString(), severity: 'notice', pair: s.pair, author, detail });
  }

  private read(): Session[] {
    const file = this.deps.stateFile;
    if (!existsSync(file)) return [];
    try {
      const data = JSON.parse(readFileSync(file, 'utf8')) as StateFile;
      if (data.version !== 1 || !Array.isArray(data.sessions)) throw new Error('not a learn state file of version 1');
      return data.sessions.filter((s) => typeof s.pair === 'string' && typeof s.endsAt === 'number' && typeof s.startedAt === 'number');
    } catch (err) {
      // A damaged file loses the sessions, not management: say so and start without them.
      this.deps.log.error({ err, file }, 'the learn state file could not be read; learning sessions are forgotten');
      return [];
    }
  }

  private save(): void {
    writeJsonAtomic(this.deps.stateFile, { version: 1, sessions: [...this.sessions.values()] } satisfies StateFile);
  }
}

/** Minimal view of the policy service the mode control needs (services/policy.ts). */
export interface PolicyAccess {
  active(): { text: string; mode: Mode } | null;
  apply(text: string, comment: string, by: { user: string; from: string }): Promise<unknown>;
}

/**
 * Mode changes through the policy service: the active text with its `mode:` line changed, applied
 * as a new version (audited, mode.change raised). The policy is one for every pair, so monitor mode
 * for one pair's learning puts every pair in monitor mode for the period.
 */
export class PolicyModeControl implements ModeControl {
  constructor(private readonly policies: PolicyAccess) {}

  current(): Mode | null {
    return this.policies.active()?.mode ?? null;
  }

  async set(_pair: string, mode: Mode, author: string, why: string): Promise<void> {
    const active = this.policies.active();
    if (!active) throw new HttpError(409, 'no policy is active');
    if (active.mode === mode) return;
    await this.policies.apply(withMode(active.text, mode), `${mode} mode: ${why}`, { user: author, from: 'learn mode' });
  }
}
