// Durable state files of management: private directories, JSON written through the appliance's one
// atomic write (wire/atomic-file.ts), the fsync'd append of the audit log, and clean-up after a crash.

import { chownSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncDir, giveToDirOwner, TEMP_SUFFIX, writeFileAtomic } from '../../wire/atomic-file';

/** Creates a private directory (and its parents); run as root, it takes its parent's owner. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() !== 0) return;
  const owner = statSync(dirname(dir));
  const current = statSync(dir);
  if (current.uid !== owner.uid || current.gid !== owner.gid) chownSync(dir, owner.uid, owner.gid);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Appends one line and fsyncs it before returning (the audit log must survive a crash); when this
 * creates the file, the directory is fsynced too, so the new file's name survives as well.
 */
export function appendLineDurable(path: string, line: string): void {
  const created = !existsSync(path);
  const fd = openSync(path, 'a', 0o600);
  try {
    giveToDirOwner(fd, dirname(path));
    writeSync(fd, `${line}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (created) fsyncDir(dirname(path));
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
