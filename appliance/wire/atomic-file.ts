// The one atomic file write of the appliance. A crash at any moment leaves either the old or the new
// content, never a mix: write a temp file in the same directory, fsync it, rename it over the target,
// fsync the directory so the rename itself survives a power cut. A leaf: imports nothing from appliance/.

import { closeSync, fchownSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Suffix of temp files; management's start-up removes any a crash left behind. */
export const TEMP_SUFFIX = '.tmp';

export interface AtomicWriteOptions {
  /** File mode of a new file (default 0600). */
  mode?: number;
  /**
   * fsync file and directory (default true). Only for files rewritten every second under /run,
   * such as the stats snapshot: there durability buys nothing and fsync wears flash.
   */
  durable?: boolean;
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Run as root (`gatekeeper user add` on the box), files take the owner of their directory, so a
 * service that runs as its own user can still read what root wrote.
 */
export function giveToDirOwner(fd: number, dir: string): void {
  if (process.getuid?.() !== 0) return;
  const owner = statSync(dir);
  if (owner.uid !== 0 || owner.gid !== 0) fchownSync(fd, owner.uid, owner.gid);
}

/**
 * Writes the whole buffer: a write may take only part of it (a disk that is filling up), and the
 * next one then fails with the reason (ENOSPC), instead of a short file passing for a whole one.
 */
export function writeAll(fd: number, data: Buffer): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done);
}

export function writeFileAtomic(path: string, content: string, options: AtomicWriteOptions = {}): void {
  const durable = options.durable ?? true;
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}${TEMP_SUFFIX}`);
  try {
    const fd = openSync(temp, 'w', options.mode ?? 0o600);
    try {
      giveToDirOwner(fd, dir);
      writeAll(fd, Buffer.from(content));
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  if (durable) fsyncDir(dir);
}
