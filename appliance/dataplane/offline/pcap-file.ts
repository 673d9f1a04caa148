// Frames of a pcap file, in order, with their capture times, through `pcap-parser`. Offline tooling
// only (replay, tuples, conformance): allocation is fine here; the live ports never read files.

const pcapParser = require('pcap-parser') as {
  parse(path: string): {
    on(event: 'globalHeader', listener: (header: { linkLayerType: number }) => void): void;
    on(event: 'packet', listener: (packet: { header: PcapRecordHeader; data: Buffer }) => void): void;
    on(event: 'end', listener: () => void): void;
    on(event: 'error', listener: (err: Error) => void): void;
  };
};

interface PcapRecordHeader {
  timestampSeconds: number;
  timestampMicroseconds: number;
  capturedLength: number;
}

export const LINKTYPE_ETHERNET = 1;

export interface PcapFrame {
  /** 1-based position in the file. */
  number: number;
  data: Buffer;
  length: number;
  linkType: number;
  /** Capture time of the record, milliseconds since the epoch (the clock the engine's `now` runs on). */
  timeMs: number;
}

export async function* readPcap(path: string): AsyncGenerator<PcapFrame> {
  const frames: PcapFrame[] = [];
  let done = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let linkType = LINKTYPE_ETHERNET;
  let number = 0;
  const parser = pcapParser.parse(path);
  parser.on('globalHeader', (header) => {
    linkType = header.linkLayerType;
  });
  parser.on('packet', (packet) => {
    number++;
    const h = packet.header;
    const timeMs = h.timestampSeconds * 1000 + h.timestampMicroseconds / 1000;
    frames.push({ number, data: packet.data, length: h.capturedLength, linkType, timeMs });
    notify();
  });
  parser.on('error', (err) => {
    failure = err;
    done = true;
    notify();
  });
  parser.on('end', () => {
    done = true;
    notify();
  });
  for (;;) {
    if (frames.length > 0) {
      yield* frames.splice(0, frames.length);
      continue;
    }
    if (failure) throw new Error(`${path}: ${failure.message}`);
    if (done) return;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
}
