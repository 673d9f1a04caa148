// Modbus function codes as the policy spells them, the classes a rule may name, which data table each
// request touches and the specification's quantity limits (Modbus Application Protocol V1.1b3).
// Plain data, read by the parser, the policy builder and the decision; nothing here runs per packet
// except table lookups.

export const FunctionCode = {
  ReadCoils: 1,
  ReadDiscreteInputs: 2,
  ReadHoldingRegisters: 3,
  ReadInputRegisters: 4,
  WriteSingleCoil: 5,
  WriteSingleRegister: 6,
  ReadExceptionStatus: 7,
  Diagnostics: 8,
  GetCommEventCounter: 11,
  GetCommEventLog: 12,
  WriteMultipleCoils: 15,
  WriteMultipleRegisters: 16,
  ReportServerId: 17,
  ReadFileRecord: 20,
  WriteFileRecord: 21,
  MaskWriteRegister: 22,
  ReadWriteMultipleRegisters: 23,
  ReadFifoQueue: 24,
  EncapsulatedInterface: 43,
} as const;

/** MEI type of function 43 that reads device identification (a read, unlike the other MEI types). */
export const MEI_READ_DEVICE_ID = 14;

/**
 * Function sets are bitsets of FUNCTION_BITS bits: bit n is function code n (0..255) and bit
 * DEVICE_ID_BIT is 43/14, so a rule can allow reading device identification without the rest of 43.
 */
export const DEVICE_ID_BIT = 256;
export const FUNCTION_BITS = 257;
export const FUNCTION_WORDS = Math.ceil(FUNCTION_BITS / 32);

/** Function names as rules spell them; "read-device-identification" is 43/14 (bit DEVICE_ID_BIT). */
export const functionNames: ReadonlyMap<string, number> = new Map([
  ['read-coils', 1],
  ['read-discrete-inputs', 2],
  ['read-holding-registers', 3],
  ['read-input-registers', 4],
  ['write-single-coil', 5],
  ['write-single-register', 6],
  ['read-exception-status', 7],
  ['diagnostics', 8],
  ['get-comm-event-counter', 11],
  ['get-comm-event-log', 12],
  ['write-multiple-coils', 15],
  ['write-multiple-registers', 16],
  ['report-server-id', 17],
  ['read-file-record', 20],
  ['write-file-record', 21],
  ['mask-write-register', 22],
  ['read-write-multiple-registers', 23],
  ['read-fifo-queue', 24],
  ['encapsulated-interface', 43],
  ['read-device-identification', DEVICE_ID_BIT],
]);

function range(lo: number, hi: number): number[] {
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

/**
 * The classes a rule may name. 23 (read/write multiple registers) reads as well as writes, so the
 * classes grant it only to a rule that names both read and write (see classesGrant); naming 23
 * itself always grants it. Write file record (21) is in no class: name it to allow it.
 */
export const functionClasses: ReadonlyMap<string, readonly number[]> = new Map([
  ['read', [1, 2, 3, 4, DEVICE_ID_BIT]],
  ['write', [5, 6, 15, 16, 22]],
  ['diagnostics', [7, 8, 11, 12, 17, 20, 24]],
  // Vendor and user-defined codes (65-72, 100-110) and the programming codes seen in the field:
  // 40 and 42 (vendor), 90 (Schneider UMAS), 125 and 126 (Modicon programming).
  ['program', [40, 42, ...range(65, 72), 90, ...range(100, 110), 125, 126]],
]);

/** Functions granted by a set of class names beyond each class's own list (23 needs read and write). */
export function classesGrant(classes: ReadonlySet<string>): number[] {
  return classes.has('read') && classes.has('write') ? [FunctionCode.ReadWriteMultipleRegisters] : [];
}

/** The four data tables addresses are allowed in, as a rule's `addresses` block names them. */
export const Table = { None: -1, Coils: 0, DiscreteInputs: 1, HoldingRegisters: 2, InputRegisters: 3 } as const;
export const tableNames: readonly string[] = ['coils', 'discrete-inputs', 'holding-registers', 'input-registers'];

/** The table a request of `code` touches (23 touches holding registers with both ranges), or Table.None. */
export const requestTable: Int8Array = (() => {
  const t = new Int8Array(256).fill(Table.None);
  t[1] = Table.Coils;
  t[2] = Table.DiscreteInputs;
  t[3] = Table.HoldingRegisters;
  t[4] = Table.InputRegisters;
  t[5] = Table.Coils;
  t[6] = Table.HoldingRegisters;
  t[15] = Table.Coils;
  t[16] = Table.HoldingRegisters;
  t[22] = Table.HoldingRegisters;
  t[23] = Table.HoldingRegisters;
  // The FIFO pointer register is a holding register.
  t[24] = Table.HoldingRegisters;
  return t;
})();

/** Quantity limits of the specification (inclusive). */
export const Limits = {
  readBits: 2000,
  readRegisters: 125,
  writeCoils: 1968,
  writeRegisters: 123,
  readWriteRead: 125,
  readWriteWrite: 121,
  /** MBAP length counts the unit id and the PDU: 1 + 253. */
  mbapLengthMin: 2,
  mbapLengthMax: 254,
  /** 7-byte MBAP header + 253-byte PDU. */
  aduMax: 260,
  addressSpace: 65536,
} as const;
