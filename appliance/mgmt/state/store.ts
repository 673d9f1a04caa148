// Management state on disk, under one state directory:
//   policies/<version>.json   every applied policy version (never rewritten)
//   active.json               {version}: the active version, written last, so a crash before it
//                             leaves the previous version active
//   users.json                users and password hashes
//   settings.json             syslog targets, metrics token hash, session timeout
//   audit.jsonl               who did what, when, from where (appended, fsynced; only its tail
//                             is read at start)
// Every file is written atomically (state/atomic.ts); a write that fails (a full disk) throws a
// StateWriteError and leaves the previous file and the state in memory as they were. Opening the
// store recovers from a crash: stray temp files are removed, a torn audit line is cut, versions
// written but never made active are removed. Must not import siem/ or routes/ (state sits below them), nor hold rules: those are
// the services'.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../auth/roles';
import { appendLineDurable, makePrivateDir, removeStrayTemps, StateWriteError, writeJsonAtomic } from './atomic';
import { readJsonLines, truncateTornTail } from './jsonl';
import { DEFAULT_SESSION_TIMEOUT_MIN, type Settings } from './settings';
import { fsyncDir } from '../../wire/atomic-file';

export interface StoredPolicy {
  version: number;
  text: string;
  /** SHA-256 of the text (CompiledPolicy.sourceHash). */
  hash: string;
  mode: 'enforce' | 'monitor';
  author: string;
  comment: string;
  /** ISO time. */
  appliedAt: string;
}

export interface UserRecord {
  name: string;
  role: Role;
  /** auth/passwords.ts format. */
  passwordHash: string;
  createdAt: string;
  lastLoginAt: string | null;
}

export interface AuditEntry {
  time: string;
  user: string;
  /** Client address. */
  from: string;
  /** e.g. "policy.apply", "user.add". */
  action: string;
  detail: string;
  /** Unified diff of the policy, for policy changes. */
  diff?: string;
}

/** Room a policy commit needs beyond its text: active.json, the audit line, the file system's blocks. */
const ROOM_SLACK_BYTES = 64 * 1024;

/** Audit entries kept in memory for GET /audit; the file keeps all. */
const AUDIT_MEMORY = 10_000;
/** Longest policy diff kept in a memory entry (a policy may be megabytes); the file keeps it whole. */
export const AUDIT_MEMORY_DIFF_CHARS = 64 * 1024;

export interface StateLog {
  warn(obj: object, msg: string): void;
}

export class StateStore {
  private readonly policies = new Map<number, StoredPolicy>();
  private activeVersion: number | null = null;
  private userList: UserRecord[] = [];
  /** Identity of the users.json last read: `gatekeeper user ...` may rewrite it while the service runs. */
  private usersStamp = '';
  private currentSettings: Settings;
  private readonly audit: AuditEntry[] = [];

  private constructor(
    readonly dir: string,
    private readonly log: StateLog,
  ) {
    this.currentSettings = defaultSettings();
  }

  /**
   * Opens (creating if needed) the state directory and recovers the last committed state.
   * `recover: false` (the `gatekeeper user` commands, which may run beside the service) only creates
   * the directories and reads users and settings: the repairs would remove the running service's
   * in-flight writes.
   */
  static open(dir: string, log: StateLog, opts: { recover?: boolean } = {}): StateStore {
    const store = new StateStore(dir, log);
    store.load(opts.recover ?? true);
    return store;
  }

  private get policyDir(): string {
    return join(this.dir, 'policies');
  }

  private get auditPath(): string {
    return join(this.dir, 'audit.jsonl');
  }

  private load(recover: boolean): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    makePrivateDir(this.policyDir);
    this.reloadUsersIfChanged();
    const settings = readJson(join(this.dir, 'settings.json')) as Partial<Settings> | undefined;
    this.currentSettings = { ...defaultSettings(), ...settings };
    if (recover) this.recover();
  }

  private recover(): void {
    for (const dir of [this.dir, this.policyDir]) {
      const removed = removeStrayTemps(dir);
      if (removed.length) this.log.warn({ dir, removed }, 'removed temp files left by an interrupted write');
    }

    const active = readJson(join(this.dir, 'active.json')) as { version?: unknown } | undefined;
    this.activeVersion = typeof active?.version === 'number' ? active.version : null;
    for (const name of readdirSync(this.policyDir)) {
      const match = /^(\d+)\.json$/.exec(name);
      if (!match) continue;
      const version = Number(match[1]);
      const path = join(this.policyDir, name);
      if (this.activeVersion === null || version > this.activeVersion) {
        // Written by an apply that crashed before making it active: it never ran as management's policy.
        rmSync(path);
        this.log.warn({ version }, 'removed a policy version that was never made active');
        continue;
      }
      const policy = readJson(path) as StoredPolicy | undefined;
      if (!policy || policy.version !== version || typeof policy.text !== 'string') {
        this.log.warn({ path }, 'skipped an unreadable policy version');
        continue;
      }
      this.policies.set(version, policy);
    }
    if (this.activeVersion !== null && !this.policies.has(this.activeVersion)) {
      this.log.warn({ version: this.activeVersion }, 'the active policy version is missing; no policy is active');
      this.activeVersion = null;
    }
    fsyncDir(this.policyDir);

    const torn = truncateTornTail(this.auditPath);
    if (torn > 0) this.log.warn({ bytes: torn }, 'cut a torn last line from the audit log');
    const { values, badLines } = readJsonLines(this.auditPath);
    if (badLines.length) this.log.warn({ lines: badLines }, 'skipped unreadable audit log lines');
    this.audit.push(...(values.slice(-AUDIT_MEMORY) as AuditEntry[]).map(inMemory));
  }

  // --- policies ---

  activePolicy(): StoredPolicy | null {
    return this.activeVersion === null ? null : (this.policies.get(this.activeVersion) ?? null);
  }

  policy(version: number): StoredPolicy | null {
    return this.policies.get(version) ?? null;
  }

  /** All versions, newest first. */
  policyHistory(): StoredPolicy[] {
    return [...this.policies.values()].sort((a, b) => b.version - a.version);
  }

  isActive(version: number): boolean {
    return version === this.activeVersion;
  }

  nextPolicyVersion(): number {
    let max = 0;
    for (const v of this.policies.keys()) max = Math.max(max, v);
    return max + 1;
  }

  /** Newest stored version with this hash (what a dataplane runs, if it came from management). */
  versionOfHash(hash: string): number | null {
    return this.policyHistory().find((p) => p.hash === hash)?.version ?? null;
  }

  /**
   * Throws the StateWriteError (ENOSPC) a commit of `text` would, when the disk plainly has no room
   * for it: the version file, its audit line with the diff, and some slack. Lets an apply fail
   * before any dataplane is asked, so a full disk leaves the running policy untouched.
   */
  ensureRoomForPolicy(text: string): void {
    const { bavail, bsize } = statfsSync(this.policyDir);
    const needed = 3 * Buffer.byteLength(text) + ROOM_SLACK_BYTES;
    if (bavail * bsize >= needed) return;
    const full = Object.assign(new Error(`ENOSPC: ${bavail * bsize} bytes free, ${needed} needed`), { code: 'ENOSPC' });
    throw new StateWriteError(join(this.policyDir, `${this.nextPolicyVersion()}.json`), full);
  }

  /** Stores a new version and makes it active: the version file first, the active pointer last. */
  commitPolicy(p: Omit<StoredPolicy, 'version' | 'appliedAt'>): StoredPolicy {
    const stored: StoredPolicy = { ...p, version: this.nextPolicyVersion(), appliedAt: new Date().toISOString() };
    const file = join(this.policyDir, `${stored.version}.json`);
    writeJsonAtomic(file, stored);
    try {
      writeJsonAtomic(join(this.dir, 'active.json'), { version: stored.version });
    } catch (err) {
      // Not made active: the version file goes again (start-up would remove it too), so a full
      // disk is not made fuller by a version that never ran.
      rmSync(file, { force: true });
      throw err;
    }
    this.policies.set(stored.version, stored);
    this.activeVersion = stored.version;
    return stored;
  }

  // --- users ---

  private get usersPath(): string {
    return join(this.dir, 'users.json');
  }

  private reloadUsersIfChanged(): void {
    const stamp = fileStamp(this.usersPath);
    if (stamp === this.usersStamp) return;
    const users = readJson(this.usersPath) as { users?: UserRecord[] } | undefined;
    this.userList = Array.isArray(users?.users) ? users.users : [];
    this.usersStamp = stamp;
  }

  users(): readonly UserRecord[] {
    this.reloadUsersIfChanged();
    return this.userList;
  }

  user(name: string): UserRecord | undefined {
    return this.users().find((u) => u.name === name);
  }

  /** Replaces the user list (callers build the new list; the write is atomic). */
  saveUsers(users: UserRecord[]): void {
    writeJsonAtomic(this.usersPath, { users });
    this.userList = users;
    this.usersStamp = fileStamp(this.usersPath);
  }

  // --- settings ---

  settings(): Settings {
    return this.currentSettings;
  }

  saveSettings(settings: Settings): void {
    writeJsonAtomic(join(this.dir, 'settings.json'), settings);
    this.currentSettings = settings;
  }

  // --- audit ---

  appendAudit(entry: AuditEntry): void {
    appendLineDurable(this.auditPath, JSON.stringify(entry));
    this.audit.push(inMemory(entry));
    if (this.audit.length > AUDIT_MEMORY) this.audit.splice(0, this.audit.length - AUDIT_MEMORY);
  }

  /** Newest first. */
  recentAudit(limit: number): AuditEntry[] {
    return this.audit.slice(-limit).reverse();
  }
}

function inMemory(entry: AuditEntry): AuditEntry {
  if (entry.diff === undefined || entry.diff.length <= AUDIT_MEMORY_DIFF_CHARS) return entry;
  return { ...entry, diff: `${entry.diff.slice(0, AUDIT_MEMORY_DIFF_CHARS)}\n… diff cut here; audit.jsonl has all of it\n` };
}

function defaultSettings(): Settings {
  return { syslog: { targets: [] }, metricsTokenHash: null, sessionTimeoutMin: DEFAULT_SESSION_TIMEOUT_MIN };
}

/** Changes whenever the file is replaced (atomic writes give it a new inode). */
function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** Parsed JSON file, or undefined when it does not exist; a damaged file is an error (atomic writes never leave one). */
function readJson(path: string): unknown {
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8'));
}
