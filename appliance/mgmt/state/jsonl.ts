// JSON-lines files (audit log, event log): one JSON object per line, appended. A crash can leave a
// torn last line; readers skip it and report it instead of failing.

import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync } from 'node:fs';

export interface JsonLines {
  values: unknown[];
  /** Lines that did not parse (a torn write, or damage), 1-based from the first line read. */
  badLines: number[];
}

/** Most of a file read at start: the audit log is never rotated and may grow past what a string can hold. */
export const READ_TAIL_BYTES = 64 * 1024 * 1024;

/** The lines of the last `maxBytes` of the file (the first, partial, line of that tail is dropped). */
export function readJsonLines(path: string, maxBytes = READ_TAIL_BYTES): JsonLines {
  if (!existsSync(path)) return { values: [], badLines: [] };
  const values: unknown[] = [];
  const badLines: number[] = [];
  const lines = readTail(path, maxBytes).split('\n');
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

function readTail(path: string, maxBytes: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    let from = 0;
    if (start > 0) {
      // The tail starts inside a line: drop it up to its end (all of it when there is no newline).
      const newline = buf.subarray(0, got).indexOf(0x0a);
      from = newline < 0 ? got : newline + 1;
    }
    return buf.subarray(from, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
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
