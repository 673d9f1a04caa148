// Durable file writes for management state. A crash at any moment leaves either the old or the new
// content of a file, never a mix: write a temp file in the same directory, fsync it, rename it over
// the target, fsync the directory so the rename itself survives a power cut.

import { chownSync, closeSync, existsSync, fchownSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Suffix of temp files; start-up removes any left behind by a crash. */
export const TEMP_SUFFIX = '.tmp';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Run as root (`gatekeeper user add` on the box), files take the owner of their directory, so the
 * service, which runs as its own user, can still read what root wrote.
 */
function giveToDirOwner(fd: number, dir: string): void {
  if (process.getuid?.() !== 0) return;
  const owner = statSync(dir);
  if (owner.uid !== 0 || owner.gid !== 0) fchownSync(fd, owner.uid, owner.gid);
}

/** Creates a private directory (and its parents); run as root, it takes its parent's owner. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.getuid?.() !== 0) return;
  const owner = statSync(dirname(dir));
  const current = statSync(dir);
  if (current.uid !== owner.uid || current.gid !== owner.gid) chownSync(dir, owner.uid, owner.gid);
}

export function writeFileAtomic(path: string, content: string, mode = 0o600): void {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}${TEMP_SUFFIX}`);
  const fd = openSync(temp, 'w', mode);
  try {
    giveToDirOwner(fd, dir);
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  fsyncDir(dir);
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
