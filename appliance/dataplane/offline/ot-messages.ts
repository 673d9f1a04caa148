// `replay --ot`: the industrial-protocol messages of a pcap in the format of
// ../shared/conformance/tshark_ot.py (`frame modbus direction unit function exception`), so the
// parser can be compared with tshark's dissector. Offline tooling: allocation is fine here. It does
// not judge policy and is not the dataplane's stream guard (inspect/tcp-stream.ts): it reassembles
// as tshark does, so that the two agree message for message, including on damaged captures.
//
// tshark's reassembly, as its output on the conformance captures shows (Wireshark 4.0):
// - per direction, a segment starting before the highest sequence number seen (retransmission, out
//   of order) is not dissected and moves nothing; one after a gap is dissected as a fresh start;
// - where no message is pending, a segment (or the rest of one, after a completed message) must
//   start with 8 bytes, protocol id 0 and length >= 2, or all of it is skipped as data;
// - messages then follow one another by their MBAP length, unchecked; an unfinished one waits for
//   the following segments (fewer than 6 bytes: it takes the whole next segment with it).
// Each message so framed goes through the parser; its unit, function and exception are printed.

import { decodeFrame } from '../decode/decoder';
import { Packet } from '../decode/packet';
import { EtherType, Proto, TcpFlag } from '../../wire/protocols';
import { DecodeError } from '../decode/errors';
import { LINKTYPE_ETHERNET, readPcap } from '../port/pcap-file';
import { ModbusParser, ParseStatus } from '../inspect/modbus/parser';

export const MODBUS_PORT = 502;

/** Waiting for "one more segment": fewer than the 6 bytes that give the length. */
const ONE_MORE = -1;

/** a before b in sequence space (exactly 2^31 apart counts as before, as in tshark's LT_SEQ). */
function seqLess(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** One direction of one connection, reassembled tshark's way. */
class DirectionStream {
  next: number | null = null;
  pending: number[] | null = null;
  /** Bytes the pending message needs in all, or ONE_MORE. */
  need = 0;
  /** Sequence number of the pending message's first byte. */
  pendingSeq = 0;
  private readonly parser: ModbusParser;

  constructor(
    private readonly request: boolean,
    private readonly emit: (line: string) => void,
  ) {
    this.parser = new ModbusParser(request);
  }

  segment(frame: number, seq: number, flags: number, payload: Uint8Array): void {
    const syn = (flags & TcpFlag.SYN) !== 0 ? 1 : 0;
    const fin = (flags & TcpFlag.FIN) !== 0 ? 1 : 0;
    if (payload.length === 0 && syn + fin === 0) return;
    if (this.next !== null && seqLess(seq, this.next)) return;
    const gap = this.next !== null && seq !== this.next;
    this.next = (seq + payload.length + syn + fin) >>> 0;
    if (payload.length === 0) return;
    const dataSeq = (seq + syn) >>> 0;
    if (gap && this.pending !== null) {
      const inside = this.need !== ONE_MORE && !seqLess(dataSeq, this.pendingSeq) && seqLess(dataSeq, (this.pendingSeq + this.need) >>> 0);
      // A segment inside the pending message leaves a hole that is never filled: it never completes.
      if (inside) return;
      this.pending = null;
    }
    let data = Array.from(payload);
    let dataStart = dataSeq;
    if (this.pending !== null) {
      const pending = this.pending;
      if (this.need === ONE_MORE) {
        this.pending = null;
        this.topLevel(frame, [...pending, ...data], this.pendingSeq);
        return;
      }
      const take = Math.min(this.need - pending.length, data.length);
      pending.push(...data.slice(0, take));
      data = data.slice(take);
      dataStart = (dataStart + take) >>> 0;
      if (pending.length < this.need) return;
      this.pending = null;
      this.topLevel(frame, pending, this.pendingSeq);
    }
    if (data.length > 0) this.topLevel(frame, data, dataStart);
  }

  /** The dissector called on `tvb` (a segment's bytes or a reassembled message). */
  private topLevel(frame: number, tvb: number[], tvbSeq: number): void {
    if (tvb.length < 8 || tvb[2] !== 0 || tvb[3] !== 0 || ((tvb[4] << 8) | tvb[5]) < 2) return;
    let off = 0;
    while (off < tvb.length) {
      const rest = tvb.length - off;
      const total = rest >= 6 ? 6 + ((tvb[off + 4] << 8) | tvb[off + 5]) : ONE_MORE;
      if (total === ONE_MORE || rest < total) {
        this.pending = tvb.slice(off);
        this.need = total;
        this.pendingSeq = (tvbSeq + off) >>> 0;
        return;
      }
      this.message(frame, Uint8Array.from(tvb.slice(off, off + total)));
      off += total;
    }
  }

  private message(frame: number, adu: Uint8Array): void {
    // tshark reads the unit and function (and the exception code, MEI type or sub-function it names
    // the message by) before anything else: a message too short for them prints nothing.
    const code = adu.length > 7 ? adu[7] : -1;
    if (code < 0) return;
    if ((code & 0x80) !== 0 ? adu.length < 9 : (code === 43 && adu.length < 9) || (code === 8 && adu.length < 10)) return;
    const p = this.parser;
    p.reset(this.request);
    p.push(adu, 0, adu.length);
    const m = p.msg;
    let unit: number;
    let fn: number;
    let exception: number;
    if (p.status === ParseStatus.Message && !p.lost) {
      unit = m.unit;
      fn = m.function;
      exception = m.exception && adu.length > 8 ? adu[8] : -1;
    } else {
      // Framing tshark does not check inside a run of messages (protocol id, length over 254): the
      // parser refuses the message; print what tshark prints from the raw header.
      unit = adu[6];
      fn = code & 0x7f;
      exception = (code & 0x80) !== 0 ? adu[8] : -1;
    }
    this.emit(`${frame}\tmodbus\t${this.request ? 'request' : 'response'}\t${unit}\t${fn}\t${exception < 0 ? '-' : exception}`);
  }
}

/** The Modbus/TCP messages of a pcap, one line each, in frame order. */
export async function* pcapOtMessages(path: string): AsyncGenerator<string> {
  const pkt = new Packet();
  const streams = new Map<string, DirectionStream>();
  const lines: string[] = [];
  const emit = (line: string): void => {
    lines.push(line);
  };
  for await (const frame of readPcap(path)) {
    if (frame.linkType !== LINKTYPE_ETHERNET) continue;
    let b = frame.data;
    decodeFrame(b, frame.length, pkt);
    if (pkt.error === DecodeError.Ipv4Truncated && pkt.etherType === EtherType.IPV4 && frame.length >= pkt.l3Offset + 20) {
      // tshark dissects what was captured of a packet whose IPv4 total length claims more: decode a
      // copy whose total length says what is there.
      b = Buffer.from(b.subarray(0, frame.length));
      b.writeUInt16BE(frame.length - pkt.l3Offset, pkt.l3Offset + 2);
      decodeFrame(b, frame.length, pkt);
    }
    if (pkt.error !== 0 || pkt.proto !== Proto.TCP || !pkt.hasPorts || pkt.isFragment) continue;
    const request = pkt.dstPort === MODBUS_PORT;
    if (!request && pkt.srcPort !== MODBUS_PORT) continue;
    const src = pkt.family === 4 ? String(pkt.src4) : Array.from(pkt.src6).join(':');
    const dst = pkt.family === 4 ? String(pkt.dst4) : Array.from(pkt.dst6).join(':');
    const key = `${src}/${pkt.srcPort}>${dst}/${pkt.dstPort}`;
    let stream = streams.get(key);
    if (stream === undefined) {
      stream = new DirectionStream(request, emit);
      streams.set(key, stream);
    }
    const tcp = pkt.l4Offset;
    const start = tcp + (b[tcp + 12] >> 4) * 4;
    stream.segment(frame.number, pkt.tcpSeq, pkt.tcpFlags, b.subarray(start, start + pkt.l4PayloadLength));
    yield* lines.splice(0, lines.length);
  }
}
