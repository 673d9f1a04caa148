// The subset of `cap` (libpcap bindings, no published types) that the dataplane uses.
declare module 'cap' {
  import { EventEmitter } from 'node:events';

  export class Cap extends EventEmitter {
    /** Opens a live capture; frames are copied into `buffer`. Returns the link type name. */
    open(device: string, filter: string, bufferSize: number, buffer: Buffer): string;
    /** Sends the first `length` bytes of `frame`; throws with libpcap's error text on failure. */
    send(frame: Buffer, length?: number): void;
    close(): void;
    setMinBytes?(bytes: number): void;
    on(event: 'packet', listener: (length: number, truncated: boolean) => void): this;
    static deviceList(): Array<{ name: string; description?: string; addresses: unknown[] }>;
  }
}
