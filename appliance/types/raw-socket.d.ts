// The subset of `raw-socket` (SOCK_RAW bindings, no published types) that management's liveness
// probes (mgmt/inventory/liveness.ts) use.
declare module 'raw-socket' {
  import { EventEmitter } from 'node:events';

  export const AddressFamily: { IPv4: number; IPv6: number };
  export const Protocol: { ICMP: number; ICMPv6: number };

  export interface SocketOptions {
    addressFamily?: number;
    protocol?: number;
    /** Receive buffer for one datagram (default 4096). */
    bufferSize?: number;
  }

  export class Socket extends EventEmitter {
    /** Queues a datagram; `before` runs just before the send system call, `after` once it returned. */
    send(buffer: Buffer, offset: number, length: number, address: string,
      before: () => void, after: (error: Error | null, bytes: number) => void): this;
    close(): this;
    /** The buffer is the socket's own, valid only during the call (IPv4: with the IP header). */
    on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
    /** The socket is closed after an error. */
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'close', listener: () => void): this;
  }

  /** Throws (e.g. "Operation not permitted") when the socket cannot be created. */
  export function createSocket(options?: SocketOptions): Socket;
  /** One's complement checksum of the buffers, as ICMP wants it. */
  export function createChecksum(...buffers: Buffer[]): number;
  export function writeChecksum(buffer: Buffer, offset: number, checksum: number): Buffer;
}
