// Fuzz: seeded mutations of the Modbus streams of the conformance captures, and random bytes, cut
// into random chunks, through the parser (both directions), the policy decision and the inspector
// with its stream guard (segments in order, retransmitted, overlapping, ahead). Never a throw, always
// progress, every reason named. About 200k chunks in bounded time.

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { decodeFrame } from '../appliance/dataplane/decode/decoder';
import { Packet } from '../appliance/dataplane/decode/packet';
import { readPcap } from '../appliance/dataplane/offline/pcap-file';
import { InspectOutcome, InspectVerdict } from '../appliance/dataplane/inspect/inspector';
import { ModbusInspector, holdReasons, modbusReasons } from '../appliance/dataplane/inspect/modbus/modbus';
import { ModbusParser, ParseStatus, malformedReasons } from '../appliance/dataplane/inspect/modbus/parser';
import { compileModbusBlock } from '../appliance/policy/modbus-block';
import type { ModbusPolicy } from '../appliance/policy/types';
import { decide, policyReasons } from '../appliance/policy/modbus-match';
import type { TcpSegment } from '../appliance/dataplane/inspect/tcp-stream';
import { Proto, TcpFlag } from '../appliance/wire/protocols';
import { prng } from '../appliance/policy/generate';

const otDir = path.resolve(__dirname, '../../shared/conformance/ot');
const SEED = 0x6d6f6462;
const CHUNKS = 200_000;
const TIME_LIMIT_MS = 60_000;

/** Per capture and direction, the TCP payload bytes of port 502 flows, concatenated in file order. */
async function captureStreams(): Promise<Array<{ request: boolean; bytes: Uint8Array }>> {
  const out: Array<{ request: boolean; bytes: Uint8Array }> = [];
  if (!fs.existsSync(otDir)) return out;
  const pkt = new Packet();
  for (const file of fs.readdirSync(otDir).filter((f) => f.endsWith('.pcap')).sort()) {
    const parts: Record<'req' | 'rsp', number[]> = { req: [], rsp: [] };
    for await (const frame of readPcap(path.join(otDir, file))) {
      decodeFrame(frame.data, frame.length, pkt);
      if (pkt.error !== 0 || pkt.proto !== Proto.TCP || !pkt.hasPorts) continue;
      const request = pkt.dstPort === 502;
      if (!request && pkt.srcPort !== 502) continue;
      const start = pkt.l4Offset + (frame.data[pkt.l4Offset + 12] >> 4) * 4;
      parts[request ? 'req' : 'rsp'].push(...frame.data.subarray(start, start + pkt.l4PayloadLength));
    }
    out.push({ request: true, bytes: Uint8Array.from(parts.req) }, { request: false, bytes: Uint8Array.from(parts.rsp) });
  }
  return out;
}

function mutate(src: Uint8Array, rand: () => number): Uint8Array {
  const b = Array.from(src.length > 0 ? src : [0]);
  const edits = 1 + Math.floor(rand() * 8);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rand() * b.length);
    const op = Math.floor(rand() * 6);
    if (op === 0) b[at] = Math.floor(rand() * 256);
    else if (op === 1) b[at] ^= 1 << Math.floor(rand() * 8);
    else if (op === 2) b.splice(at, 0, Math.floor(rand() * 256));
    else if (op === 3 && b.length > 1) b.splice(at, 1);
    // MBAP lengths and quantities are where parsers break: set 16-bit fields to edge values.
    else if (op === 4) [b[at], b[at + 1]] = [[0, 0], [0, 1], [0, 2], [0, 0xfe], [0, 0xff], [0xff, 0xff], [0x07, 0xd0], [0x7f, 0xff]][Math.floor(rand() * 8)];
    else b.splice(at, 0, ...b.slice(Math.max(0, at - 12), at));
  }
  return Uint8Array.from(b.slice(0, 4096));
}

const allowed = new Set<string>([...malformedReasons, ...policyReasons]);

t.test('mutated streams and random bytes: never a throw, always progress', async (t) => {
  const streams = await captureStreams();
  t.ok(streams.length > 0, 'capture streams to mutate');
  const compiled = compileModbusBlock({ functions: ['read', 'write', 'diagnostics', 43], units: ['0-10'], addresses: { 'holding-registers': ['0-999'], coils: ['0-99'] }, 'max-length': 200 });
  if (compiled.errors) throw new Error('policy');
  const policy: ModbusPolicy = compiled.policy;
  const rand = prng(SEED);
  const parsers = [new ModbusParser(true), new ModbusParser(false)];
  const inspector = new ModbusInspector();
  const out = new InspectOutcome();
  const verdictNames = new Set<string>([...modbusReasons, ...holdReasons, '']);
  const started = Date.now();
  let chunks = 0;
  let messages = 0;
  let rounds = 0;
  const seen = new Set<string>();
  while (chunks < CHUNKS && Date.now() - started < TIME_LIMIT_MS) {
    rounds++;
    const pick = streams[Math.floor(rand() * streams.length)];
    const random = rand() < 0.2;
    const data = random ? Uint8Array.from({ length: 1 + Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)) : mutate(pick.bytes, rand);
    const request = random ? rand() < 0.5 : pick.request;
    const parser = parsers[request ? 0 : 1];
    parser.reset(request);
    let off = 0;
    while (off < data.length) {
      const end = Math.min(data.length, off + 1 + Math.floor(rand() * 64));
      chunks++;
      while (off < end) {
        const next = parser.push(data, off, end);
        if (next < off || next > end) throw new Error(`offset ${next} outside [${off}, ${end}]`);
        if (parser.status === ParseStatus.Message) {
          messages++;
          const reason = request ? decide(policy, parser.msg) : parser.msg.malformed;
          if (reason !== null) {
            if (!allowed.has(reason)) throw new Error(`unnamed reason ${reason}`);
            seen.add(reason);
          }
        } else if (next !== end) {
          throw new Error('stopped inside a chunk without a message');
        }
        off = next;
        if (parser.lost) break;
      }
      if (parser.lost) {
        parser.reset(request);
        off = end;
      }
    }

    // The same bytes through the inspector as TCP segments, with retransmissions, overlaps and gaps.
    const state = inspector.open({ proto: Proto.TCP }, policy, false, false);
    const base = 0xfffff001; // the stream crosses the 2^32 wrap
    const handshake = (fromInitiator: boolean, ack: number): TcpSegment => ({ frame: data, offset: 0, length: 0, seq: 0, ack, flags: TcpFlag.ACK, fromInitiator });
    inspector.inspect(state, handshake(false, base), out);
    inspector.inspect(state, handshake(true, 77), out);
    for (let n = 0; n < 64 && state.violation === null; n++) {
      // Near where the guard expects the next byte: behind (retransmission, overlap), at, or ahead.
      const pos = (state.guard.nextSeq(true) - base) >>> 0;
      if (pos >= data.length) break;
      const jitter = rand() < 0.3 ? Math.floor(rand() * 40) - 20 : 0;
      const from = Math.max(0, Math.min(data.length - 1, pos + jitter));
      const bytes = data.subarray(from, Math.min(data.length, from + 1 + Math.floor(rand() * 80)));
      const seg: TcpSegment = {
        frame: bytes,
        offset: 0,
        length: bytes.length,
        seq: (base + from) >>> 0,
        ack: 77 + Math.floor(rand() * 100),
        flags: TcpFlag.ACK,
        fromInitiator: rand() < 0.8,
      };
      chunks++;
      const v = inspector.inspect(state, seg, out);
      if (v < InspectVerdict.Forward || v > InspectVerdict.Answer || !verdictNames.has(out.reason)) throw new Error(`verdict ${v} ${out.reason}`);
    }
    inspector.close(state);
  }
  const ms = Date.now() - started;
  t.comment(`${rounds} streams, ${chunks} chunks, ${messages} messages in ${ms} ms; reasons seen: ${[...seen].sort().join(' ')}`);
  t.ok(chunks >= CHUNKS || ms >= TIME_LIMIT_MS, 'ran its course');
  t.ok(messages > 0, 'messages were parsed');
});
