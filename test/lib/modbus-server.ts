// The real Modbus server of the Modbus lab tests (modbus-server.py, Debian's pymodbus) started in the
// lab's server namespace, and the oracle built on its log: which connections it saw, which bytes its
// TCP delivered, which requests it executed, and its memory. It reads the server's own files, never
// asks through the gatekeeper; it does not judge (the tests do).

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labAddresses, labUnavailable, sleep, type RunningLab } from './lab-fixture';

/** Debian's interpreter: a python3 earlier on PATH may not see Debian's pymodbus. */
export const python = '/usr/bin/python3';
const serverScript = join(__dirname, 'modbus-server.py');

/** Function codes that change the server's memory (5, 6, 15, 16, 22, 23; 21 writes file records). */
const writeFunctions: ReadonlySet<number> = new Set([5, 6, 15, 16, 21, 22, 23]);

/** Why the Modbus lab cannot run here, or false; `tools` are the client's (mbpoll, nft). */
export function modbusLabUnavailable(tools: string[]): string | false {
  const lab = labUnavailable();
  if (lab) return lab;
  for (const tool of tools) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `Modbus lab tests need ${tool}`;
  }
  if (spawnSync(python, ['-c', 'import pymodbus.server.async_io']).status !== 0) {
    return 'Modbus lab tests need Debian\'s python3-pymodbus (with python3-serial-asyncio) for /usr/bin/python3';
  }
  return false;
}

export interface LogEntry {
  event: 'connect' | 'disconnect' | 'bytes' | 'request';
  conn: number;
  peer?: string;
  error?: string | null;
  hex?: string;
  function?: number;
  unit?: number;
  address?: number | null;
  count?: number | null;
  value?: number | boolean | null;
  values?: (number | boolean)[] | null;
}

/** One ADU as the server's TCP delivered it, framed by its MBAP length. */
export interface ReceivedAdu {
  conn: number;
  unit: number;
  function: number;
  hex: string;
}

export interface ServerMemory {
  holding: number[];
  coils: number[];
}

export class ModbusServer {
  readonly logFile: string;
  readonly stateFile: string;

  constructor(readonly lab: RunningLab) {
    this.logFile = join(lab.lab.dir, 'modbus-server.log');
    this.stateFile = join(lab.lab.dir, 'modbus-state.json');
  }

  /** Start it in the server namespace and wait until it listens. */
  async start(): Promise<void> {
    const child = this.lab.lab.spawn(this.lab.lab.server, [python, serverScript, this.logFile, this.stateFile]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!out.includes('listening')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`modbus server did not start: ${out}`);
      await sleep(50);
    }
  }

  /** Where the log ends now: entries() after it are what happened since. */
  mark(): number {
    return this.entries().length;
  }

  entries(since = 0): LogEntry[] {
    if (!existsSync(this.logFile)) return [];
    return readFileSync(this.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogEntry).slice(since);
  }

  /** Requests pymodbus executed since the mark. */
  executed(since: number): LogEntry[] {
    return this.entries(since).filter((e) => e.event === 'request');
  }

  /**
   * Every ADU in the bytes the server's TCP delivered per connection since the mark, framed by MBAP
   * length, plus each connection's bytes left over that do not make a whole ADU. This sees what
   * pymodbus would not execute too (an unknown unit, a broken frame).
   */
  received(since: number): { adus: ReceivedAdu[]; partial: Map<number, string> } {
    const streams = new Map<number, string>();
    for (const e of this.entries(since)) {
      if (e.event === 'bytes') streams.set(e.conn, (streams.get(e.conn) ?? '') + e.hex);
    }
    const adus: ReceivedAdu[] = [];
    const partial = new Map<number, string>();
    for (const [conn, hex] of streams) {
      const bytes = Buffer.from(hex, 'hex');
      let off = 0;
      while (off + 8 <= bytes.length) {
        const len = bytes.readUInt16BE(off + 4);
        if (len < 2 || off + 6 + len > bytes.length) break;
        adus.push({ conn, unit: bytes[off + 6], function: bytes[off + 7], hex: bytes.subarray(off, off + 6 + len).toString('hex') });
        off += 6 + len;
      }
      if (off < bytes.length) partial.set(conn, bytes.subarray(off).toString('hex'));
    }
    return { adus, partial };
  }

  /** Write function codes that reached the server since the mark: delivered as whole ADUs or executed. */
  writesReceived(since: number): number[] {
    const delivered = this.received(since).adus.map((a) => a.function);
    const executed = this.executed(since).map((e) => e.function as number);
    return [...delivered, ...executed].filter((f) => writeFunctions.has(f));
  }

  /** The connections the server saw end since the mark, with the error each ended with (null: closed cleanly). */
  disconnects(since: number): (string | null)[] {
    return this.entries(since).filter((e) => e.event === 'disconnect').map((e) => e.error ?? null);
  }

  memory(unit = 1): ServerMemory {
    return (JSON.parse(readFileSync(this.stateFile, 'utf8')) as Record<string, ServerMemory>)[String(unit)];
  }
}

/** The Modbus lab tests' policy: the lab's client may open Modbus to its server; `block` is the rule's modbus block (or ''). */
export const modbusLabPolicy = (block: string, mode = 'enforce'): string => `version: 1
mode: ${mode}
default: deny
groups:
  client: [${labAddresses.client4}, "${labAddresses.client6}"]
  server: [${labAddresses.server4}, "${labAddresses.server6}"]
rules:
  - name: client-modbus
    from: client
    to: server
    service: modbus
    action: allow${block}
`;
