// The on-disk queue of one TCP/TLS target: formatted lines waiting for the receiver, oldest first.
// New lines collect in memory (the tail) and go to disk in batches, never during push() — soon after
// 64 KiB have collected, or once a second — appended to numbered segment files, so a flash disk sees few, large writes and
// one fsync per second at most. While the target keeps up, lines go from the tail straight to the
// socket and never touch the disk. The total (disk + tail) is bounded: when it is exceeded, the
// oldest segment is deleted and its lines counted as dropped. Segments left by a previous run are
// picked up again, so a management restart loses nothing that reached the disk.
// A full disk (ENOSPC, EDQUOT) stops the spool growing: lines that do not fit are dropped and
// counted apart (droppedDiskFull), a line cut off mid-write is removed again, onDiskFull reports
// the change both ways, and the next flush (once a second) tries again, so spooling resumes by
// itself once there is room. Lines the receiver takes straight from memory still go out.

import { closeSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeAll } from '../../wire/atomic-file';
import { isDiskFull } from '../state/atomic';

/** Lines handed to the sender, in order; release() once they are all written. */
export interface SpoolBatch {
  lines: string[];
  release(): void;
}

interface Segment {
  seq: number;
  file: string;
  bytes: number;
  records: number;
  /** Handed out as a batch: not appended to, not dropped, deleted on release. */
  taken: boolean;
}

const segmentSuffix = '.seg';
const flushIntervalMs = 1000;

export class Spool {
  /** Oldest first; the last one may be open for appending (this.fd). */
  private readonly segments: Segment[] = [];
  private fd?: number;
  /** Lines not yet on disk: tail[tailStart…] (dropping the oldest moves tailStart, not the array). */
  private tail: string[] = [];
  private tailStart = 0;
  private tailBytes = 0;
  private unsynced = false;
  private flushScheduled = false;
  /** Background fsyncs per fd, and sealed fds waiting for theirs to end (see sync()). */
  private readonly syncsInFlight = new Map<number, number>();
  private readonly closeAfterSync = new Set<number>();
  /** New spools start numbering high so requeue() can always number a segment ahead of the others. */
  private nextSeq = 1_000_000_000;
  private readonly timer: NodeJS.Timeout;
  /** Lines deleted unsent because the spool was full. */
  dropped = 0;
  /** Lines never spooled because the disk was full. */
  droppedDiskFull = 0;
  /** The last write found the disk full (cleared by the next write that fits). */
  diskFull = false;
  readonly segmentBytes: number;
  readonly flushBytes: number;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
    private readonly onError: (err: Error) => void,
    /** Called when the disk fills up (full: true) and when a write fits again (full: false). */
    private readonly onDiskFull: (full: boolean) => void = () => undefined,
  ) {
    this.segmentBytes = Math.min(1 << 20, Math.max(4096, Math.floor(maxBytes / 8)));
    this.flushBytes = Math.min(64 * 1024, this.segmentBytes);
    // Spooled events may carry user names and addresses: private, like the rest of the state.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.load();
    this.timer = setInterval(() => this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  /** Segments a previous run left behind. */
  private load(): void {
    const names = readdirSync(this.dir).filter((n) => /^\d{12}\.seg$/.test(n)).sort();
    for (const name of names) {
      const file = join(this.dir, name);
      const data = readFileSync(file);
      let records = 0;
      for (const byte of data) if (byte === 0x0a) records++;
      const seq = Number(name.slice(0, 12));
      this.segments.push({ seq, file, bytes: statSync(file).size, records, taken: false });
      this.nextSeq = seq + 1;
    }
  }

  /** Lines waiting, on disk or in memory (not counting those handed out as a batch). */
  get records(): number {
    return this.segments.reduce((n, s) => n + (s.taken ? 0 : s.records), 0) + this.tail.length - this.tailStart;
  }

  /** Bytes on disk (including handed-out segments) and in memory: what the bound limits. */
  get bytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0) + this.tailBytes;
  }

  /** Queues one line (without a line break). Memory only: the disk write runs later, off the caller. */
  push(line: string): void {
    this.tail.push(line);
    this.tailBytes += Buffer.byteLength(line) + 1;
    if (this.tailBytes >= this.flushBytes && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.writeTail();
      });
    }
    this.enforceBound();
  }

  /**
   * The oldest lines: a whole segment from disk if there is one, else the memory tail. The caller
   * writes them and calls release(); until then a segment stays on disk (sent again after a crash).
   */
  takeBatch(): SpoolBatch | undefined {
    const segment = this.segments.find((s) => !s.taken);
    if (!segment) {
      // At most flushBytes from memory at a time, so a burst is not held twice.
      const lines: string[] = [];
      let bytes = 0;
      while (this.tailStart < this.tail.length && bytes < this.flushBytes) {
        const line = this.tail[this.tailStart];
        this.tail[this.tailStart++] = '';
        lines.push(line);
        bytes += Buffer.byteLength(line) + 1;
      }
      this.tailBytes -= bytes;
      if (this.tailStart === this.tail.length) this.takeTail();
      return lines.length > 0 ? { lines, release: () => undefined } : undefined;
    }
    if (segment === this.segments[this.segments.length - 1]) this.seal();
    segment.taken = true;
    let lines: string[];
    try {
      lines = readFileSync(segment.file, 'utf8').split('\n');
    } catch (err) {
      this.onError(err as Error);
      lines = [''];
    }
    // A last line without its line break was cut by a crash mid-write: it is dropped.
    const partial = lines.pop();
    if (partial) this.dropped++;
    return {
      lines,
      release: () => {
        const at = this.segments.indexOf(segment);
        if (at >= 0) this.segments.splice(at, 1);
        this.remove(segment.file);
      },
    };
  }

  /** Writes the tail to disk and fsyncs what was written since the last call. */
  flush(): void {
    this.writeTail();
    if (this.unsynced && this.fd !== undefined) {
      this.unsynced = false;
      this.sync(this.fd);
    }
  }

  /**
   * Puts lines that were handed out but not written back at the front, on disk and fsynced (at
   * shutdown, so the next run sends them first).
   */
  requeue(lines: string[]): void {
    if (lines.length === 0) return;
    const seq = this.segments.length > 0 ? this.segments[0].seq - 1 : this.nextSeq++;
    const file = join(this.dir, `${String(seq).padStart(12, '0')}${segmentSuffix}`);
    const chunk = Buffer.from(lines.join('\n') + '\n');
    try {
      const fd = openSync(file, 'w', 0o600);
      try {
        writeAll(fd, chunk);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.segments.unshift({ seq, file, bytes: chunk.length, records: lines.length, taken: false });
    } catch (err) {
      this.remove(file);
      this.failed(err as Error, lines.length);
    }
  }

  /** Flushes and stops the timer; the spool is picked up again by the next Spool on this dir. */
  close(): void {
    clearInterval(this.timer);
    this.writeTail();
    this.seal();
  }

  /** Closes and deletes everything (the target was removed). */
  destroy(): void {
    clearInterval(this.timer);
    this.seal();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private takeTail(): string[] {
    const lines = this.tailStart > 0 ? this.tail.slice(this.tailStart) : this.tail;
    this.tail = [];
    this.tailStart = 0;
    this.tailBytes = 0;
    return lines;
  }

  /** Appends the tail to segment files, starting a new segment whenever one would pass segmentBytes. */
  private writeTail(): void {
    const lines = this.takeTail();
    let from = 0;
    while (from < lines.length) {
      let segment = this.segments[this.segments.length - 1];
      const open = segment && !segment.taken && this.fd !== undefined && segment.bytes < this.segmentBytes;
      if (!open) {
        this.seal();
        segment = { seq: this.nextSeq++, file: '', bytes: 0, records: 0, taken: false };
        segment.file = join(this.dir, `${String(segment.seq).padStart(12, '0')}${segmentSuffix}`);
        try {
          this.fd = openSync(segment.file, 'a', 0o600);
        } catch (err) {
          this.failed(err as Error, lines.length - from);
          return;
        }
        this.segments.push(segment);
      }
      // As many lines as fit in this segment (at least one, so a huge line still goes somewhere).
      let to = from;
      let bytes = 0;
      while (to < lines.length) {
        const size = Buffer.byteLength(lines[to]) + 1;
        if (to > from && segment.bytes + bytes + size > this.segmentBytes) break;
        bytes += size;
        to++;
      }
      try {
        // Into the page cache; the fsync runs on the timer, asynchronously.
        writeAll(this.fd!, Buffer.from(lines.slice(from, to).join('\n') + '\n'));
        segment.bytes += bytes;
        segment.records += to - from;
        this.unsynced = true;
        if (this.diskFull) {
          this.diskFull = false;
          this.onDiskFull(false);
        }
      } catch (err) {
        // What part of the chunk did fit is cut off again: the segment ends on a whole line.
        try {
          ftruncateSync(this.fd!, segment.bytes);
        } catch (cut) {
          this.onError(cut as Error);
        }
        this.failed(err as Error, to - from);
      }
      from = to;
    }
  }

  /** Lines that could not be written: counted as dropped for a full disk or for the error. */
  private failed(err: Error, lines: number): void {
    if (!isDiskFull(err)) {
      this.onError(err);
      this.dropped += lines;
      return;
    }
    this.droppedDiskFull += lines;
    if (this.diskFull) return;
    this.diskFull = true;
    this.onError(err);
    this.onDiskFull(true);
  }

  /** Closes the open segment (after an fsync if it has unsynced data). */
  private seal(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    if (this.unsynced) {
      this.unsynced = false;
      this.closeAfterSync.add(fd);
      this.sync(fd);
    } else if (this.syncsInFlight.has(fd)) {
      this.closeAfterSync.add(fd);
    } else {
      closeSync(fd);
    }
  }

  /**
   * fsync in the background. A segment sealed while one is in flight is closed when the last one
   * ends: closing it at once would fail that fsync, or aim it at a file opened later on the same fd.
   */
  private sync(fd: number): void {
    this.syncsInFlight.set(fd, (this.syncsInFlight.get(fd) ?? 0) + 1);
    fsync(fd, (err) => {
      const left = this.syncsInFlight.get(fd)! - 1;
      if (left > 0) this.syncsInFlight.set(fd, left);
      else this.syncsInFlight.delete(fd);
      if (err) this.onError(err);
      if (left === 0 && this.closeAfterSync.delete(fd)) closeSync(fd);
    });
  }

  private enforceBound(): void {
    while (this.bytes > this.maxBytes) {
      const oldest = this.segments.find((s) => !s.taken);
      if (oldest) {
        if (oldest === this.segments[this.segments.length - 1]) this.seal();
        this.segments.splice(this.segments.indexOf(oldest), 1);
        this.dropped += oldest.records;
        this.remove(oldest.file);
      } else if (this.tailStart < this.tail.length) {
        this.tailBytes -= Buffer.byteLength(this.tail[this.tailStart]) + 1;
        this.tail[this.tailStart++] = ''; // let the dropped line be collected
        this.dropped++;
      } else {
        return;
      }
    }
  }

  private remove(file: string): void {
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err as Error);
    }
  }
}
