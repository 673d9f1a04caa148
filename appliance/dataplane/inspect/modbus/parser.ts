// Streaming Modbus/TCP parser: MBAP header + PDU, fed arbitrary byte chunks of one direction of one
// stream, into one reused ModbusMessage. It frames and checks the shape of each message against the
// specification; it does not judge policy (policy.ts) nor keep TCP order (../tcp-stream.ts).
// Per flow direction it holds one 260-byte buffer (the largest ADU) for a message split over chunks;
// a message whole inside one chunk is read in place. Nothing allocates per chunk.

import { read16 } from '../../decode/bytes';
import { FunctionCode as F, Limits, MEI_READ_DEVICE_ID, Table, requestTable } from '../../../policy/modbus-functions';

/**
 * Why a message is malformed. Framing reasons (bad_protocol_id, bad_length) lose the stream: the parser
 * stops until reset. Every other reason leaves framing intact, the next message parses normally.
 */
export const malformedReasons = [
  'bad_protocol_id',
  'bad_length',
  'bad_function',
  'truncated_pdu',
  'trailing_bytes',
  'bad_quantity',
  'bad_byte_count',
  'address_overflow',
  'bad_value',
  'bad_exception',
] as const;
export type MalformedReason = (typeof malformedReasons)[number];

export const MBAP_LENGTH = 7;

/** One parsed message; reused: every field is rewritten for every message. */
export class ModbusMessage {
  /** Parsed as a request (client → server) or as a response. */
  request = true;
  transactionId = 0;
  protocolId = 0;
  /** MBAP length field: unit id + PDU bytes. */
  length = 0;
  unit = 0;
  /** Function code without the exception bit. */
  function = 0;
  /** Response with the exception bit set; exceptionCode is its code. */
  exception = false;
  exceptionCode = 0;
  /** MEI type of function 43, sub-function of 8; -1 when absent. */
  subFunction = -1;
  /** Table the request touches (Table.*), start and quantity; quantity 0 when it touches none. */
  table: number = Table.None;
  start = 0;
  quantity = 0;
  /** Write range of 23 (read/write multiple registers), same table; writeQuantity 0 otherwise. */
  writeStart = 0;
  writeQuantity = 0;
  /** Byte count field of functions that carry one, -1 otherwise. */
  byteCount = -1;
  /** Whole ADU length in bytes (MBAP header + PDU). */
  aduLength = 0;
  malformed: MalformedReason | null = null;
}

export const ParseStatus = { NeedMore: 0, Message: 1 } as const;
export type ParseStatus = (typeof ParseStatus)[keyof typeof ParseStatus];

export class ModbusParser {
  readonly msg = new ModbusMessage();
  /** After push: Message when `msg` holds a completed (possibly malformed) message. */
  status: ParseStatus = ParseStatus.NeedMore;
  /** A framing error was reported: the stream cannot be framed any more; push consumes nothing. */
  lost = false;
  /** After a Message: the whole ADU is aduBytes[aduOffset, aduOffset + msg.aduLength) (the chunk or the parser's buffer). */
  aduBytes: Uint8Array;
  aduOffset = 0;
  private requests = true;
  private readonly buf = new Uint8Array(Limits.aduMax);
  private have = 0;

  constructor(requests = true) {
    this.requests = requests;
    this.aduBytes = this.buf;
  }

  /** Start a new stream; `requests` selects request (client → server) or response checks. */
  reset(requests: boolean): void {
    this.requests = requests;
    this.have = 0;
    this.lost = false;
    this.status = ParseStatus.NeedMore;
  }

  /**
   * Consume bytes of b[off, end) up to the end of the next message (status Message) or of the chunk
   * (status NeedMore). Returns the offset after the bytes consumed. Call again while off < end.
   */
  push(b: Uint8Array, off: number, end: number): number {
    this.status = ParseStatus.NeedMore;
    if (this.lost) return off;
    if (this.have === 0 && end - off >= 6) {
      // Fast path: the message starts here; if it ends inside the chunk, read it in place.
      const length = read16(b, off + 4);
      if (b[off + 2] === 0 && b[off + 3] === 0 && length >= Limits.mbapLengthMin && length <= Limits.mbapLengthMax) {
        const adu = 6 + length;
        if (end - off >= adu) {
          this.parse(b, off, adu);
          return off + adu;
        }
      }
    }
    const buf = this.buf;
    while (off < end) {
      if (this.have < 6) {
        buf[this.have++] = b[off++];
        if (this.have === 4 && (buf[2] !== 0 || buf[3] !== 0)) {
          this.framingError('bad_protocol_id');
          return off;
        }
        if (this.have === 6) {
          const length = read16(buf, 4);
          if (length < Limits.mbapLengthMin || length > Limits.mbapLengthMax) {
            this.framingError('bad_length');
            return off;
          }
        }
        continue;
      }
      const want = 6 + read16(buf, 4) - this.have;
      const take = Math.min(want, end - off);
      // A byte loop: subarray would allocate a view per chunk.
      for (let i = 0; i < take; i++) buf[this.have + i] = b[off + i];
      this.have += take;
      off += take;
      if (take === want) {
        this.parse(buf, 0, this.have);
        this.have = 0;
        return off;
      }
    }
    return off;
  }

  /**
   * The message begun but not complete after the last push: when its unit and function code (and for
   * 43 its MEI type) have arrived, write them and its transaction id into `m` and return true.
   */
  pendingHeader(m: ModbusMessage): boolean {
    const buf = this.buf;
    if (this.lost || this.have < MBAP_LENGTH + 1) return false;
    const code = buf[MBAP_LENGTH];
    if ((code & 0x7f) === F.EncapsulatedInterface && this.have < MBAP_LENGTH + 2) return false;
    this.clear(m);
    m.transactionId = read16(buf, 0);
    m.protocolId = read16(buf, 2);
    m.length = read16(buf, 4);
    m.unit = buf[6];
    m.function = code & 0x7f;
    m.subFunction = m.function === F.EncapsulatedInterface ? buf[MBAP_LENGTH + 1] : -1;
    m.aduLength = 6 + m.length;
    return true;
  }

  /** The header in buf cannot start a message: report it with the fields read so far. */
  private framingError(reason: MalformedReason): void {
    const m = this.msg;
    const buf = this.buf;
    this.clear(m);
    m.transactionId = read16(buf, 0);
    m.protocolId = read16(buf, 2);
    m.length = this.have >= 6 ? read16(buf, 4) : 0;
    m.malformed = reason;
    this.have = 0;
    this.lost = true;
    this.status = ParseStatus.Message;
  }

  private clear(m: ModbusMessage): void {
    m.request = this.requests;
    m.unit = 0;
    m.function = 0;
    m.exception = false;
    m.exceptionCode = 0;
    m.subFunction = -1;
    m.table = Table.None;
    m.start = 0;
    m.quantity = 0;
    m.writeStart = 0;
    m.writeQuantity = 0;
    m.byteCount = -1;
    m.aduLength = 0;
    m.malformed = null;
  }

  /** Parse the whole ADU b[s, s + n) (framing already checked). */
  private parse(b: Uint8Array, s: number, n: number): void {
    const m = this.msg;
    this.clear(m);
    m.transactionId = read16(b, s);
    m.protocolId = read16(b, s + 2);
    m.length = read16(b, s + 4);
    m.unit = b[s + 6];
    m.aduLength = n;
    this.aduBytes = b;
    this.aduOffset = s;
    const code = b[s + 7];
    m.function = code & 0x7f;
    this.status = ParseStatus.Message;
    const p = s + 7;
    const pduLength = n - MBAP_LENGTH;
    m.malformed = this.requests ? checkRequest(m, code, b, p, pduLength) : checkResponse(m, code, b, p, pduLength);
  }
}

/** Exact PDU length `want`: shorter is truncated, longer carries bytes the server would not check. */
function exact(pduLength: number, want: number): MalformedReason | null {
  if (pduLength < want) return 'truncated_pdu';
  return pduLength > want ? 'trailing_bytes' : null;
}

function range(m: ModbusMessage, b: Uint8Array, p: number, max: number): MalformedReason | null {
  m.start = read16(b, p + 1);
  m.quantity = read16(b, p + 3);
  if (m.quantity < 1 || m.quantity > max) return 'bad_quantity';
  return m.start + m.quantity > Limits.addressSpace ? 'address_overflow' : null;
}

function checkRequest(m: ModbusMessage, code: number, b: Uint8Array, p: number, n: number): MalformedReason | null {
  if (code >= 0x80) {
    // An exception shape where a request belongs: recorded as what it looks like, refused.
    m.exception = true;
    m.exceptionCode = n > 1 ? b[p + 1] : 0;
    return 'bad_function';
  }
  if (code === 0) return 'bad_function';
  m.table = requestTable[code];
  switch (code) {
    case F.ReadCoils:
    case F.ReadDiscreteInputs:
      return exact(n, 5) ?? range(m, b, p, Limits.readBits);
    case F.ReadHoldingRegisters:
    case F.ReadInputRegisters:
      return exact(n, 5) ?? range(m, b, p, Limits.readRegisters);
    case F.WriteSingleCoil: {
      const bad = exact(n, 5);
      if (bad) return bad;
      m.start = read16(b, p + 1);
      m.quantity = 1;
      const value = read16(b, p + 3);
      return value === 0 || value === 0xff00 ? null : 'bad_value';
    }
    case F.WriteSingleRegister:
    case F.MaskWriteRegister: {
      const bad = exact(n, code === F.WriteSingleRegister ? 5 : 7);
      if (bad) return bad;
      m.start = read16(b, p + 1);
      m.quantity = 1;
      return null;
    }
    case F.WriteMultipleCoils:
    case F.WriteMultipleRegisters: {
      if (n < 6) return 'truncated_pdu';
      const coils = code === F.WriteMultipleCoils;
      const bad = range(m, b, p, coils ? Limits.writeCoils : Limits.writeRegisters);
      m.byteCount = b[p + 5];
      if (bad) return bad;
      if (m.byteCount !== (coils ? (m.quantity + 7) >> 3 : 2 * m.quantity)) return 'bad_byte_count';
      return exact(n, 6 + m.byteCount);
    }
    case F.ReadWriteMultipleRegisters: {
      if (n < 10) return 'truncated_pdu';
      const bad = range(m, b, p, Limits.readWriteRead);
      m.writeStart = read16(b, p + 5);
      m.writeQuantity = read16(b, p + 7);
      m.byteCount = b[p + 9];
      if (bad) return bad;
      if (m.writeQuantity < 1 || m.writeQuantity > Limits.readWriteWrite) return 'bad_quantity';
      if (m.writeStart + m.writeQuantity > Limits.addressSpace) return 'address_overflow';
      if (m.byteCount !== 2 * m.writeQuantity) return 'bad_byte_count';
      return exact(n, 10 + m.byteCount);
    }
    case F.ReadFifoQueue: {
      const bad = exact(n, 3);
      if (bad) return bad;
      m.start = read16(b, p + 1);
      m.quantity = 1;
      return null;
    }
    case F.ReadExceptionStatus:
    case F.GetCommEventCounter:
    case F.GetCommEventLog:
    case F.ReportServerId:
      return exact(n, 1);
    case F.Diagnostics:
      if (n < 3) return 'truncated_pdu';
      m.subFunction = read16(b, p + 1);
      return null;
    case F.ReadFileRecord:
    case F.WriteFileRecord: {
      if (n < 2) return 'truncated_pdu';
      m.byteCount = b[p + 1];
      // Read sub-requests are 7 bytes each (0x07..0xF5); write ones carry data (0x09..0xFB).
      const read = code === F.ReadFileRecord;
      if (read ? m.byteCount < 7 || m.byteCount > 0xf5 || m.byteCount % 7 !== 0 : m.byteCount < 9 || m.byteCount > 0xfb) {
        return 'bad_byte_count';
      }
      return exact(n, 2 + m.byteCount);
    }
    case F.EncapsulatedInterface:
      if (n < 2) return 'truncated_pdu';
      m.subFunction = b[p + 1];
      if (m.subFunction !== MEI_READ_DEVICE_ID) return null;
      {
        const bad = exact(n, 4);
        if (bad) return bad;
      }
      // Read device ID codes: 1 basic, 2 regular, 3 extended, 4 one object.
      return b[p + 2] >= 1 && b[p + 2] <= 4 ? null : 'bad_value';
    default:
      // User-defined and vendor codes have no public structure: function and unit are all we check.
      m.table = Table.None;
      return null;
  }
}

function checkResponse(m: ModbusMessage, code: number, b: Uint8Array, p: number, n: number): MalformedReason | null {
  if (code === 0) return 'bad_function';
  if (code >= 0x80) {
    m.exception = true;
    m.exceptionCode = n > 1 ? b[p + 1] : 0;
    return n !== 2 || m.exceptionCode === 0 ? 'bad_exception' : null;
  }
  switch (code) {
    case F.ReadCoils:
    case F.ReadDiscreteInputs:
    case F.ReadHoldingRegisters:
    case F.ReadInputRegisters:
    case F.ReadWriteMultipleRegisters:
    case F.GetCommEventLog:
    case F.ReportServerId:
    case F.ReadFileRecord:
    case F.WriteFileRecord: {
      if (n < 2) return 'truncated_pdu';
      m.byteCount = b[p + 1];
      const registers = code === F.ReadHoldingRegisters || code === F.ReadInputRegisters || code === F.ReadWriteMultipleRegisters;
      if (registers && (m.byteCount & 1) !== 0) return 'bad_byte_count';
      return exact(n, 2 + m.byteCount);
    }
    case F.WriteSingleCoil:
    case F.WriteSingleRegister:
    case F.WriteMultipleCoils:
    case F.WriteMultipleRegisters:
    case F.GetCommEventCounter: {
      const bad = exact(n, 5);
      if (bad) return bad;
      m.start = read16(b, p + 1);
      m.quantity = read16(b, p + 3);
      return null;
    }
    case F.MaskWriteRegister:
      return exact(n, 7);
    case F.ReadExceptionStatus:
      return exact(n, 2);
    case F.ReadFifoQueue:
      if (n < 3) return 'truncated_pdu';
      m.byteCount = read16(b, p + 1);
      return exact(n, 3 + m.byteCount);
    default:
      return null;
  }
}
