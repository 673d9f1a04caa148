// Every event as a JSON line (pino) in <stateDir>/log/events.log, rotated to events.log.1 … .N-1
// so the files together never exceed maxBytes. Lines collect in memory and are written once a
// second or every 64 KiB (few, large writes for flash); no fsync: these are logs, not the spool.
// A write that fails (a full disk) drops the lines it held, counted in `dropped`, and never leaves
// a partial line; onError hears of the first failure only and onRecovered of the next write that
// works, so a full disk is two log lines, not one a second.

import pino from 'pino';
import type { Logger } from 'pino';
import { closeSync, ftruncateSync, mkdirSync, openSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeAll } from '../../wire/atomic-file';
import { describe } from './describe';
import type { ExportRecord } from './describe';
import { pinoLevel } from './severity';

export interface LocalLogOptions {
  /** Total bytes of all files (default 64 MiB). */
  maxBytes?: number;
  /** Number of files including the current one (default 4, at least 2). */
  files?: number;
}

const flushIntervalMs = 1000;

/** A pino destination that batches writes and rotates by size. */
export class RotatingFile {
  private fd?: number;
  private size = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private failing = false;
  private readonly timer: NodeJS.Timeout;
  /** Lines lost to failed writes. */
  dropped = 0;
  readonly fileBytes: number;
  /** Write once this much has collected: 64 KiB, less for tiny files so a file stays near its bound. */
  private readonly flushBytes: number;

  constructor(
    readonly path: string,
    maxBytes: number,
    readonly files: number,
    private readonly onError: (err: Error) => void,
    private readonly onRecovered: (dropped: number) => void = () => undefined,
  ) {
    this.fileBytes = Math.max(1024, Math.floor(maxBytes / files));
    this.flushBytes = Math.min(64 * 1024, Math.floor(this.fileBytes / 4));
    try {
      this.size = statSync(path).size;
    } catch {
      this.size = 0;
    }
    this.timer = setInterval(() => this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  /** Called by pino with one complete line. */
  write(line: string): void {
    this.pending.push(line);
    this.pendingBytes += Buffer.byteLength(line);
    if (this.pendingBytes >= this.flushBytes && !this.flushScheduled) {
      // Written soon, not during the caller's publish().
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Writes what has collected, rotating whenever the current file would pass its share of the bound. */
  flush(): void {
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    let from = 0;
    try {
      while (from < lines.length) {
        let to = from;
        let bytes = 0;
        while (to < lines.length) {
          const size = Buffer.byteLength(lines[to]);
          if (this.size + bytes + size > this.fileBytes && (to > from || this.size > 0)) break;
          bytes += size;
          to++;
        }
        if (to === from) {
          this.rotate();
          continue;
        }
        this.fd ??= openSync(this.path, 'a', 0o600);
        this.append(this.fd, lines.slice(from, to).join(''));
        this.size += bytes;
        from = to;
      }
      if (from > 0 && this.failing) {
        this.failing = false;
        this.onRecovered(this.dropped);
      }
    } catch (err) {
      this.dropped += lines.length - from;
      if (this.failing) return;
      this.failing = true;
      this.onError(err as Error);
    }
  }

  /** Appends whole lines or nothing: what part of them did fit is cut off again. */
  private append(fd: number, text: string): void {
    try {
      writeAll(fd, Buffer.from(text));
    } catch (err) {
      ftruncateSync(fd, this.size);
      throw err;
    }
  }

  /** events.log → .1 → .2 …; renaming onto the last one drops the oldest. */
  private rotate(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.size = 0;
    for (let n = this.files - 1; n >= 1; n--) {
      const from = n === 1 ? this.path : `${this.path}.${n - 1}`;
      try {
        renameSync(from, `${this.path}.${n}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export class LocalLog {
  readonly path: string;
  private readonly file: RotatingFile;
  private readonly logger: Logger;

  constructor(stateDir: string, options: LocalLogOptions, onError: (err: Error) => void, onRecovered?: (dropped: number) => void) {
    const dir = join(stateDir, 'log');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'events.log');
    this.file = new RotatingFile(this.path, options.maxBytes ?? 64 * 1024 * 1024, Math.max(2, options.files ?? 4), onError, onRecovered);
    this.logger = pino({
      level: 'debug',
      base: undefined,
      // Events carry their own ISO time; the level is written as its name.
      timestamp: false,
      formatters: { level: (label) => ({ level: label }) },
    }, this.file);
  }

  write(record: ExportRecord): void {
    this.logger[pinoLevel(record.severity)]({ ...record }, describe(record));
  }

  /** Lines lost to failed writes since start. */
  get dropped(): number {
    return this.file.dropped;
  }

  close(): void {
    this.file.close();
  }
}
