// JSON-lines files (audit log, event log): one JSON object per line, appended. A crash can leave a
// torn last line; readers skip it and report it instead of failing.

import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync } from 'node:fs';

export interface JsonLines {
  values: unknown[];
  /** Lines that did not parse (a torn write, or damage), 1-based. */
  badLines: number[];
}

export function readJsonLines(path: string): JsonLines {
  if (!existsSync(path)) return { values: [], badLines: [] };
  const values: unknown[] = [];
  const badLines: number[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      values.push(JSON.parse(line));
    } catch {
      badLines.push(i + 1);
    }
  });
  return { values, badLines };
}

/**
 * Cuts a torn last line (no final newline) so that the next append starts on a fresh line.
 * Returns the number of bytes removed.
 */
export function truncateTornTail(path: string): number {
  if (!existsSync(path)) return 0;
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return 0;
    const chunk = Buffer.alloc(Math.min(size, 1 << 20));
    let end = size;
    // Scan backwards for the last newline.
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const n = readSync(fd, chunk, 0, end - start, start);
      const at = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (at >= 0) {
        const keep = start + at + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return size - keep;
      }
      end = start;
    }
    ftruncateSync(fd, 0);
    return size;
  } finally {
    closeSync(fd);
  }
}
