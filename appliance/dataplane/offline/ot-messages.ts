// `replay --ot`: the industrial-protocol messages of a pcap in the format of
// ../shared/conformance/tshark_ot.py (`frame modbus direction unit function exception`), so the
// parser can be compared with tshark's dissector. Offline tooling: allocation is fine here. It does
// not judge policy and is not the dataplane's stream guard (inspect/tcp-stream.ts): it reassembles
// as tshark does, so that the two agree message for message, including on damaged captures.
//
// tshark's reassembly, as its output on the conformance captures shows (Wireshark 4.0):
// - per direction, a segment starting before the highest sequence number seen (retransmission, out
//   of order) is not dissected and moves nothing; one after a gap is dissected as a fresh start,
//   unless it lands inside the pending message: that message then has a hole and never completes;
// - where no message is pending, a segment (or the rest of one, after a completed message) must
//   start with 8 bytes, protocol id 0 and length >= 2, or all of it is skipped as data;
// - messages then follow one another by their MBAP length, unchecked; an unfinished one waits for
//   the following segments (fewer than 6 bytes: it takes the whole next segment with it), except
//   after a message tshark's dissector threw on (one shorter than its fields): then the rest of the
//   segment is dissected as it stands.
// Synthetic captures mixing gaps, overlapping retransmissions and malformed messages agree with
// tshark on 78 of 80; the two that differ depend on how tshark reassembles overlapping data.
// Each message so framed goes through the parser; its unit, function and exception are printed.

import { decodeFrame } from '../decode/decoder';
import { Packet } from '../decode/packet';
import { EtherType, Proto, TcpFlag } from '../../wire/protocols';
import { DecodeError } from '../decode/errors';
import { LINKTYPE_ETHERNET, readPcap } from './pcap-file';
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
  /** Bytes of the unfinished message, from pendingSeq on; null when none is pending. */
  pending: number[] | null = null;
  /** Bytes the pending message needs in all, or ONE_MORE. */
  need = 0;
  pendingSeq = 0;
  /** A segment landed inside the pending message past its end: the hole is never filled. */
  holed = false;
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
    // Nothing past the highest byte seen: a retransmission, not dissected (not even to fill a hole).
    const end = (seq + payload.length + syn + fin) >>> 0;
    if (this.next !== null && seqLess(seq, this.next)) return;
    this.next = end;
    if (payload.length === 0) return;
    const dataSeq = (seq + syn) >>> 0;
    let data = Array.from(payload);
    let dataStart = dataSeq;
    const pending = this.pending;
    if (pending !== null && this.need === ONE_MORE) {
      this.pending = null;
      // The whole next segment joins the few bytes held, if it follows them.
      if (dataSeq === ((this.pendingSeq + pending.length) >>> 0)) {
        this.topLevel(frame, [...pending, ...data], this.pendingSeq, true);
        return;
      }
    } else if (pending !== null) {
      const pendingEnd = (this.pendingSeq + this.need) >>> 0;
      if (seqLess(dataSeq, this.pendingSeq) || !seqLess(dataSeq, pendingEnd)) {
        // Outside the pending message: it is abandoned, this segment starts afresh.
        this.pending = null;
        this.holed = false;
      } else {
        const into = (pendingEnd - dataSeq) >>> 0;
        if (this.holed || dataSeq !== ((this.pendingSeq + pending.length) >>> 0)) {
          this.holed = true;
        } else {
          pending.push(...data.slice(0, into));
        }
        data = data.slice(into);
        dataStart = pendingEnd;
        if (this.holed) {
          if (data.length === 0) return;
          this.pending = null;
          this.holed = false;
        } else if (pending.length === this.need) {
          this.pending = null;
          this.topLevel(frame, pending, this.pendingSeq, true);
        } else {
          return;
        }
      }
    }
    if (data.length > 0) this.topLevel(frame, data, dataStart, true);
  }

  /**
   * The dissector called on `tvb` (a segment's bytes or a reassembled message). `canDesegment` goes
   * false once a message throws in tshark's dissector (its reassembly flag is not restored then): the
   * rest of the tvb is dissected as it is, a short tail ends the run.
   */
  private topLevel(frame: number, tvb: number[], tvbSeq: number, canDesegment: boolean): void {
    if (tvb.length < 8 || tvb[2] !== 0 || tvb[3] !== 0 || ((tvb[4] << 8) | tvb[5]) < 2) return;
    let off = 0;
    while (off < tvb.length) {
      const rest = tvb.length - off;
      const total = rest >= 6 ? 6 + ((tvb[off + 4] << 8) | tvb[off + 5]) : ONE_MORE;
      if (total === ONE_MORE || rest < total) {
        if (canDesegment) {
          this.pending = tvb.slice(off);
          this.need = total;
          this.pendingSeq = (tvbSeq + off) >>> 0;
        } else if (total !== ONE_MORE) {
          this.message(frame, Uint8Array.from(tvb.slice(off)));
        }
        return;
      }
      if (!this.message(frame, Uint8Array.from(tvb.slice(off, off + total)))) canDesegment = false;
      off += total;
    }
  }

  /** Print one message; false when tshark's dissector would throw on it (a PDU shorter than its fields). */
  private message(frame: number, adu: Uint8Array): boolean {
    // tshark reads the unit and function (and the exception code, MEI type or sub-function it names
    // the message by) before anything else: a message too short for them prints nothing.
    const code = adu.length > 7 ? adu[7] : -1;
    if (code < 0) return false;
    if ((code & 0x80) !== 0 ? adu.length < 9 : (code === 43 && adu.length < 9) || (code === 8 && adu.length < 10)) return false;
    const p = this.parser;
    p.reset(this.request);
    p.push(adu, 0, adu.length);
    const m = p.msg;
    let unit: number;
    let fn: number;
    let exception: number;
    let throws = false;
    if (p.status === ParseStatus.Message && !p.lost) {
      unit = m.unit;
      fn = m.function;
      exception = m.exception ? m.exceptionCode : -1;
      throws = m.malformed === 'truncated_pdu';
    } else {
      // Framing tshark does not check inside a run of messages (protocol id, length over 254), or a
      // message cut short: the parser refuses it; print what tshark prints from the raw header.
      unit = adu[6];
      fn = code & 0x7f;
      exception = (code & 0x80) !== 0 ? adu[8] : -1;
      throws = adu.length < 6 + ((adu[4] << 8) | adu[5]);
    }
    this.emit(`${frame}\tmodbus\t${this.request ? 'request' : 'response'}\t${unit}\t${fn}\t${exception < 0 ? '-' : exception}`);
    return !throws;
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
