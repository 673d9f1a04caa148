// The bypass guard of a fail-open pair: a tiny shell process that holds the read end of a pipe whose
// write end only the dataplane holds. However the dataplane ends (exit, exception, kill -9, the
// watchdog's abort, systemctl stop), the kernel closes that end, the guard's read returns, and the
// guard lifts the bridge's block (kernel-bridge.ts): the ports are bridged by the kernel from then
// on, with no process needed. It ignores the signals systemd sends the unit's processes on the way
// down, so it finishes first. It records when bypass began; the dataplane that takes the pair back
// reads that (bypass.off). Must not do anything else: no forwarding, no policy, no network I/O.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * $1: the nft table to delete, $2: file that receives the time bypass began (ms since the epoch),
 * $3: the owner file, $4: the pid of the dataplane this guard watches. A guard whose dataplane no
 * longer owns the pair (a newer one took it over meanwhile) leaves the block alone.
 */
const GUARD_SCRIPT = [
  "trap '' HUP INT TERM",
  'cat >/dev/null',
  '[ "$(cat "$3" 2>/dev/null)" = "$4" ] || exit 0',
  'printf "table bridge %s\\ndelete table bridge %s\\n" "$1" "$1" | nft -f -',
  'date +%s%3N > "$2.tmp" && mv "$2.tmp" "$2"',
].join('\n');

/** Where a pair's bypass is written down between a dataplane's death and the next start. */
export class BypassRecord {
  constructor(private readonly dir: string) {}

  /** Written by the guard when it lifted the block. */
  get sinceFile(): string {
    return join(this.dir, 'bypass-since');
  }

  /** Pid of the dataplane that owns the pair now. */
  get ownerFile(): string {
    return join(this.dir, 'bypass-owner');
  }

  /** This process owns the pair from now on: only its guard may lift the block. */
  own(): void {
    writeFileSync(this.ownerFile, String(process.pid));
  }

  /** The dataplane's last words (why it stops), written just before it ends when it can. */
  get reasonFile(): string {
    return join(this.dir, 'bypass-reason');
  }

  /** Why the dataplane is going: read by the next one to say why bypass happened. */
  lastWords(reason: string): void {
    try {
      writeFileSync(this.reasonFile, reason.slice(0, 500));
    } catch {
      // The bypass itself does not depend on this note; a full disk must not stop the way down.
    }
  }

  /** The bypass a previous run left (and forgets it), or null when there was none. */
  take(): { since: number; reason: string } | null {
    const since = Number(readText(this.sinceFile));
    const reason = readText(this.reasonFile) ?? 'the dataplane ended without a word (killed, or crashed hard)';
    rmSync(this.sinceFile, { force: true });
    rmSync(this.reasonFile, { force: true });
    return Number.isFinite(since) && since > 0 ? { since, reason } : null;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

export class BypassGuard {
  private child: ChildProcess | null = null;
  private stopped = false;
  /** Guards that ended while the dataplane lived (each was replaced at once). */
  restarts = 0;

  constructor(
    private readonly table: string,
    private readonly record: BypassRecord,
    private readonly onRestart: (code: number | null, signal: string | null) => void,
  ) {}

  /** Start the guard; from now on this process's end lifts the block. */
  start(): void {
    const child = spawn('/bin/sh', ['-c', GUARD_SCRIPT, 'gatekeeper-bypass-guard', this.table, this.record.sinceFile,
      this.record.ownerFile, String(process.pid)], {
      stdio: ['pipe', 'ignore', 'inherit'],
      // Its own process group: a Ctrl-C or a group kill aimed at the dataplane does not reach it.
      detached: true,
    });
    this.child = child;
    child.unref();
    (child.stdin as unknown as { unref(): void }).unref();
    child.once('exit', (code, signal) => {
      if (this.stopped || this.child !== child) return;
      // Someone ended the guard: without one, this pair would fail closed. Replace it.
      this.restarts++;
      this.onRestart(code, signal);
      this.start();
    });
  }

  /** The dataplane is ending on purpose: its end lifts the block as any other would; no new guard. */
  letGo(): void {
    this.stopped = true;
  }

  /** The guard's process id (tests, logs). */
  get pid(): number | undefined {
    return this.child?.pid;
  }
}
