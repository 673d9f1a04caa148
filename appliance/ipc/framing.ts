// Line framing for IPC: each message is one JSON object followed by "\n". A reader that meets a line
// longer than MAX_MESSAGE_BYTES or a line that is not JSON reports it and the caller drops the peer.

import { MAX_MESSAGE_BYTES } from './messages';

export function encodeMessage(message: object): string {
  return `${JSON.stringify(message)}\n`;
}

export class LineReader<T> {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onMessage: (message: T) => void,
    private readonly onError: (reason: string) => void,
    private readonly maxBytes = MAX_MESSAGE_BYTES,
  ) {}

  /** Feed bytes from the socket. Returns false after an error (the caller should close). */
  push(chunk: Buffer): boolean {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      let line: Buffer = part;
      if (this.pendingBytes > 0) {
        line = Buffer.concat([...this.pending, part]);
        this.pending = [];
        this.pendingBytes = 0;
      }
      if (line.length > this.maxBytes) return this.fail(`message of ${line.length} bytes exceeds ${this.maxBytes}`);
      if (line.length === 0) continue;
      let message: T;
      try {
        message = JSON.parse(line.toString('utf8')) as T;
      } catch {
        return this.fail('message is not valid JSON');
      }
      if (typeof message !== 'object' || message === null || typeof (message as { type?: unknown }).type !== 'string') {
        return this.fail('message has no type');
      }
      this.onMessage(message);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.maxBytes) return this.fail(`message exceeds ${this.maxBytes} bytes`);
      this.pending.push(Buffer.from(rest));
    }
    return true;
  }

  private fail(reason: string): false {
    this.pending = [];
    this.pendingBytes = 0;
    this.onError(reason);
    return false;
  }
}
