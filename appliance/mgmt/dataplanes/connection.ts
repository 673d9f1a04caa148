// One connected dataplane: sends management messages and matches replies to the requests waiting for
// them (by requestId and reply type). A reply that arrives after its request gave up is ignored.

import type { Socket } from 'node:net';
import { encodeMessage } from '../../ipc/framing';
import type { DataplaneMessage, HelloMessage, ManagementMessage } from '../../ipc/messages';

type Reply = Extract<DataplaneMessage, { requestId: number }>;

interface PendingReply {
  type: Reply['type'];
  resolve(message: Reply): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class DataplaneConnection {
  /** Set once the dataplane said hello in a version we speak. */
  hello: HelloMessage | null = null;
  closed = false;
  private readonly pending = new Map<number, PendingReply>();

  constructor(private readonly socket: Socket) {}

  get pair(): string {
    return this.hello?.pair ?? '(no hello yet)';
  }

  /** False when the connection is gone (the message is not sent). */
  send(message: ManagementMessage): boolean {
    if (this.closed) return false;
    this.socket.write(encodeMessage(message));
    return true;
  }

  /**
   * Resolves with the reply of `type` carrying `requestId`; rejects on timeout, on an `error` reply
   * for that request, or when the connection closes.
   */
  expect<T extends Reply['type']>(requestId: number, type: T, timeoutMs: number): Promise<Extract<Reply, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('disconnected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`no ${type} answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, {
        type,
        resolve: resolve as (message: Reply) => void,
        reject,
        timer,
      });
    });
  }

  /** Hands a reply or a request's `error` to whoever waits for it; false when nobody does. */
  settle(message: Reply | { type: 'error'; requestId?: number; message: string }): boolean {
    if (message.requestId === undefined) return false;
    const waiting = this.pending.get(message.requestId);
    if (waiting === undefined) return false;
    if (message.type === 'error') {
      this.finish(message.requestId, waiting);
      waiting.reject(new Error(message.message));
      return true;
    }
    if (message.type !== waiting.type) return false;
    this.finish(message.requestId, waiting);
    waiting.resolve(message);
    return true;
  }

  /** Closes the socket (after flushing what was written) and fails every waiting request. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
    // A peer that never reads must not keep the socket open.
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.failPending(reason);
  }

  /** The socket is gone (closed by the peer or by close()). */
  onSocketClosed(): void {
    this.closed = true;
    this.failPending('disconnected');
  }

  private failPending(reason: string): void {
    for (const [id, waiting] of this.pending) {
      this.finish(id, waiting);
      waiting.reject(new Error(reason));
    }
  }

  private finish(id: number, waiting: PendingReply): void {
    clearTimeout(waiting.timer);
    this.pending.delete(id);
  }
}
