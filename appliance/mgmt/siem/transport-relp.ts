// Syslog over RELP (the Reliable Event Logging Protocol of rsyslog's imrelp, librelp's wire format):
// every message is a numbered transaction the receiver acknowledges, so after an outage exactly the
// messages it did not acknowledge are sent again: no loss and no duplicates, which plain TCP syslog
// cannot give. Frames are "TXNR SP COMMAND SP DATALEN [SP DATA] LF". This file is the session: the
// open handshake, numbering, the window of unacknowledged messages and the parsing of responses.
// It owns no socket policy (reconnects, spooling): target.ts does that.

import type { Socket } from 'node:net';

/** Transaction numbers run 1..999999999 and wrap (librelp). */
const TXNR_MAX = 999_999_999;
/** Unacknowledged messages in flight at most (librelp's default window is 128). */
export const RELP_WINDOW = 128;
/** A receiver silent this long while we wait (open, acknowledgements) is treated as gone. */
export const RELP_ANSWER_TIMEOUT_MS = 30_000;
/** A response frame longer than this is a broken peer, not a RELP server. */
const MAX_FRAME_BYTES = 128 * 1024;

const OFFERS = 'relp_version=0\nrelp_software=gatekeeper\ncommands=syslog';

function encode(txnr: number, command: string, data: string): string {
  const length = Buffer.byteLength(data);
  return length === 0 ? `${txnr} ${command} 0\n` : `${txnr} ${command} ${length} ${data}\n`;
}

export interface RelpResponse {
  txnr: number;
  command: string;
  /** "200 OK ..." or "500 reason" for rsp. */
  data: string;
}

/** Splits a byte stream into RELP frames; throws on a frame that cannot be RELP. */
export class RelpParser {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): RelpResponse[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: RelpResponse[] = [];
    for (;;) {
      const frame = this.next();
      if (frame === null) break;
      out.push(frame);
    }
    if (this.buffer.length > MAX_FRAME_BYTES) throw new Error('RELP: response frame too long');
    return out;
  }

  private next(): RelpResponse | null {
    const b = this.buffer;
    // Header: txnr SP command SP datalen, then SP data or directly LF.
    const s1 = b.indexOf(0x20);
    if (s1 < 0) return null;
    const s2 = b.indexOf(0x20, s1 + 1);
    if (s2 < 0) return null;
    let end = s2 + 1;
    while (end < b.length && b[end] >= 0x30 && b[end] <= 0x39) end++;
    if (end === b.length) return null;
    const txnr = Number(b.subarray(0, s1).toString('latin1'));
    const command = b.subarray(s1 + 1, s2).toString('latin1');
    const length = Number(b.subarray(s2 + 1, end).toString('latin1'));
    if (!Number.isInteger(txnr) || !/^[a-z]{1,32}$/.test(command) || end === s2 + 1) throw new Error('RELP: malformed response header');
    const dataStart = length === 0 ? end : end + 1;
    if (length > 0 && b[end] !== 0x20) throw new Error('RELP: malformed response header');
    if (b.length < dataStart + length + 1) return null;
    if (b[dataStart + length] !== 0x0a) throw new Error('RELP: response frame without its trailer');
    const data = b.subarray(dataStart, dataStart + length).toString('utf8');
    this.buffer = b.subarray(dataStart + length + 1);
    return { txnr, command, data };
  }
}

/**
 * One RELP session on a connected socket. `send` numbers a message and writes it; `acked` is called
 * with each message the receiver acknowledged, in order of their numbers; `failed` once when the
 * session can no longer deliver (a refusal, a broken frame, or the server closing).
 */
export class RelpSession {
  private readonly parser = new RelpParser();
  private nextTxnr = 1;
  private opened = false;
  /** Messages written and not yet acknowledged, oldest first, with their numbers. */
  private readonly inFlight: { txnr: number; line: string }[] = [];
  private done = false;
  /** Armed while an answer is owed (the open, or acknowledgements). */
  private answerTimer?: NodeJS.Timeout;

  constructor(
    private readonly socket: Socket,
    private readonly handlers: { opened: () => void; acked: (line: string) => void; failed: (reason: string) => void },
    private readonly answerTimeoutMs = RELP_ANSWER_TIMEOUT_MS,
  ) {
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('close', () => this.stopTimer());
    socket.write(encode(this.take(), 'open', OFFERS));
    this.awaitAnswer();
  }

  private awaitAnswer(): void {
    this.stopTimer();
    if (this.done || (this.opened && this.inFlight.length === 0)) return;
    this.answerTimer = setTimeout(() => this.fail(`no answer from the RELP receiver for ${this.answerTimeoutMs / 1000} s`), this.answerTimeoutMs);
    this.answerTimer.unref();
  }

  private stopTimer(): void {
    if (this.answerTimer) clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
  }

  /** The receiver accepted the session and there is room in the window. */
  get ready(): boolean {
    return this.opened && !this.done && this.inFlight.length < RELP_WINDOW;
  }

  /** Lines written that the receiver has not acknowledged yet, oldest first. */
  unacknowledged(): string[] {
    return this.inFlight.map((m) => m.line);
  }

  /** Writes one message; returns what socket.write returned (false: wait for 'drain'). */
  send(line: string): boolean {
    const txnr = this.take();
    this.inFlight.push({ txnr, line });
    if (this.inFlight.length === 1) this.awaitAnswer();
    return this.socket.write(encode(txnr, 'syslog', line));
  }

  /** Ends the session politely (the receiver answers and closes). */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.stopTimer();
    this.socket.end(encode(this.take(), 'close', ''));
  }

  private take(): number {
    const txnr = this.nextTxnr;
    this.nextTxnr = txnr >= TXNR_MAX ? 1 : txnr + 1;
    return txnr;
  }

  private received(chunk: Buffer): void {
    let frames: RelpResponse[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    for (const frame of frames) {
      if (this.done) return;
      if (frame.command === 'serverclose') {
        this.fail('the RELP receiver closed the session');
        return;
      }
      if (frame.command !== 'rsp') continue;
      if (!frame.data.startsWith('200')) {
        this.fail(`the RELP receiver refused: ${frame.data.split('\n')[0]}`);
        return;
      }
      if (!this.opened) {
        this.opened = true;
        this.handlers.opened();
        continue;
      }
      // Responses come in order; one for a number we do not hold is ignored (a late close answer).
      const at = this.inFlight.findIndex((m) => m.txnr === frame.txnr);
      if (at < 0) continue;
      for (const message of this.inFlight.splice(0, at + 1)) this.handlers.acked(message.line);
    }
    this.awaitAnswer();
  }

  private fail(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.stopTimer();
    this.handlers.failed(reason);
    this.socket.destroy();
  }
}
