// Durable state files of management: private directories, JSON written through the appliance's one
// atomic write (wire/atomic-file.ts), the fsync'd append of the audit log, clean-up after a crash,
// and the one error a failed state write becomes (StateWriteError, naming the file and the cause,
// so a full disk reads as such). A failed write never leaves a partial file or line behind.

import { chownSync, closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, giveToDirOwner, TEMP_SUFFIX, writeAll, writeFileAtomic } from '../../wire/atomic-file';

/** Creates a private directory (and its parents); run as root, it takes its parent's owner. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() !== 0) return;
  const owner = statSync(dirname(dir));
  const current = statSync(dir);
  if (current.uid !== owner.uid || current.gid !== owner.gid) chownSync(dir, owner.uid, owner.gid);
}

/** Error codes of a disk without room: no space, or the service user's quota used up. */
const DISK_FULL_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

export function isDiskFull(err: unknown): boolean {
  return DISK_FULL_CODES.has((err as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/** A state file could not be written; `code` is the system error's (ENOSPC on a full disk). */
export class StateWriteError extends Error {
  readonly code: string;
  constructor(readonly file: string, cause: unknown) {
    const why = cause as NodeJS.ErrnoException;
    super(`could not write ${basename(file)} in the state directory: ${isDiskFull(why) ? 'the disk is full' : why.message} (${why.code ?? 'error'})`,
      { cause });
    this.code = why.code ?? 'EIO';
  }
}

/** Runs a state write; any failure becomes a StateWriteError for `file`. */
export function writingState<T>(file: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    throw err instanceof StateWriteError ? err : new StateWriteError(file, err);
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writingState(path, () => writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`));
}

/**
 * Appends one line and fsyncs it before returning (the audit log must survive a crash); when this
 * creates the file, the directory is fsynced too, so the new file's name survives as well. A line
 * the disk has no room for is cut off again, so the file never ends in a partial line.
 */
export function appendLineDurable(path: string, line: string): void {
  writingState(path, () => {
    const created = !existsSync(path);
    const fd = openSync(path, 'a', 0o600);
    try {
      giveToDirOwner(fd, dirname(path));
      const before = fstatSync(fd).size;
      try {
        writeAll(fd, Buffer.from(`${line}\n`));
        fsyncSync(fd);
      } catch (err) {
        ftruncateSync(fd, before);
        throw err;
      }
    } finally {
      closeSync(fd);
    }
    if (created) fsyncDir(dirname(path));
  });
}

/** Removes temp files a crash left in `dir`; returns their names. */
export function removeStrayTemps(dir: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(TEMP_SUFFIX)) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
