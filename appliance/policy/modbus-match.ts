// The decision on one Modbus request against its rule's compiled block (types.ts's ModbusPolicy), as
// match.ts is for addresses and ports: the Modbus inspector calls it per parsed message, `policy
// explain` per question, and the exception answering a refusal. Runs per message and allocates nothing;
// building the block is modbus-block.ts's.

import { DEVICE_ID_BIT, FunctionCode, MEI_READ_DEVICE_ID, Table } from './modbus-functions';
import type { ModbusPolicy } from './types';

/** The fields of a request the decision reads (the parser's ModbusMessage has them). */
export interface ModbusRequest<Malformed extends string = string> {
  /** Why the message is not a well-formed request, null when it is. */
  malformed: Malformed | null;
  aduLength: number;
  function: number;
  /** MEI type of function 43. */
  subFunction: number;
  unit: number;
  /** The data table the request touches (Table.*), Table.None when it touches none. */
  table: number;
  start: number;
  quantity: number;
  /** Function 23's write range (quantity 0 for every other function). */
  writeStart: number;
  writeQuantity: number;
}

export const policyReasons = ['function_not_allowed', 'unit_not_allowed', 'address_not_allowed', 'too_long'] as const;
export type PolicyReason = (typeof policyReasons)[number];

function hasBit(set: Uint32Array, n: number): boolean {
  return (set[n >>> 5] & (1 << (n & 31))) !== 0;
}

/** Is [start, start + quantity) inside one allowed interval? Intervals are disjoint and merged. */
function covered(intervals: Uint32Array, start: number, quantity: number): boolean {
  const last = start + quantity - 1;
  // Binary search for the last interval whose lo <= start.
  let lo = 0;
  let hi = (intervals.length >>> 1) - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (intervals[2 * mid] <= start) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found >= 0 && intervals[2 * found + 1] >= last;
}

/**
 * The decision on one parsed request: null when allowed, else why not. Malformed messages are
 * violations whatever the policy says.
 */
export function decide<Malformed extends string>(policy: ModbusPolicy, msg: ModbusRequest<Malformed>): PolicyReason | Malformed | null {
  if (msg.malformed !== null) return msg.malformed;
  if (msg.aduLength > policy.maxLength) return 'too_long';
  const header = decideHeader(policy, msg.unit, msg.function, msg.subFunction);
  if (header !== null) return header;
  if (policy.addresses !== null && msg.table !== Table.None) {
    const allowed = policy.addresses[msg.table];
    if (!covered(allowed, msg.start, msg.quantity)) return 'address_not_allowed';
    if (msg.writeQuantity > 0 && !covered(allowed, msg.writeStart, msg.writeQuantity)) return 'address_not_allowed';
  }
  return null;
}

/**
 * The part of the decision a request's first bytes already settle: its function (`subFunction` the
 * MEI type of 43) and unit. The inspector asks it as soon as a request's function code has arrived,
 * so a refused function never reaches the server, not even as the start of a request.
 */
export function decideHeader(policy: ModbusPolicy, unit: number, fn: number, subFunction: number): PolicyReason | null {
  const bit = fn === FunctionCode.EncapsulatedInterface && subFunction === MEI_READ_DEVICE_ID ? DEVICE_ID_BIT : fn;
  if (!hasBit(policy.functions, bit)) return 'function_not_allowed';
  if (policy.units !== null && !hasBit(policy.units, unit)) return 'unit_not_allowed';
  return null;
}

export const ExceptionCode = {
  IllegalFunction: 0x01,
  IllegalDataAddress: 0x02,
  IllegalDataValue: 0x03,
  ServerBusy: 0x06,
  GatewayTargetFailed: 0x0b,
} as const;

/**
 * The exception answering a request refused for `reason` (a decision or a malformed-request reason)
 * under on-violation: exception, or 0 when the request cannot be answered (its header is not trusted,
 * or the fault is in the stream): reset instead. A unit the rule does not allow gets
 * 0x0B (gateway target failed to respond), as a gateway answers for a device it cannot reach: the
 * client learns nothing about the unit's functions.
 */
export function exceptionCodeFor(reason: string): number {
  switch (reason) {
    case 'function_not_allowed':
    case 'bad_function':
      return ExceptionCode.IllegalFunction;
    case 'address_not_allowed':
    case 'address_overflow':
      return ExceptionCode.IllegalDataAddress;
    case 'unit_not_allowed':
      return ExceptionCode.GatewayTargetFailed;
    case 'too_many_outstanding':
      return ExceptionCode.ServerBusy;
    case 'too_long':
    case 'truncated_pdu':
    case 'trailing_bytes':
    case 'bad_quantity':
    case 'bad_byte_count':
    case 'bad_value':
      return ExceptionCode.IllegalDataValue;
    default:
      return 0;
  }
}
