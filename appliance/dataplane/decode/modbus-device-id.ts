// Modbus "read device identification" answers (function 43, MEI type 14) from a server: the objects a
// device names itself with. Decodes the response ADU (MBAP header + PDU) into a reused DeviceIdAnswer
// that holds only where the objects are; deviceIdFields() makes the text, on the slow path, for
// answers that are reported. Says why an answer could not be decoded (deviceIdErrorNames). The
// inspector frames the stream (inspect/modbus/parser.ts); this reads one framed answer. It never judges.

import { read16 } from './bytes';
import { identityText } from './identity-text';

export const DeviceIdError = {
  None: 0,
  /** Shorter than the fixed part of the answer (MBAP, function, MEI type, codes, object count). */
  Truncated: 1,
  /** Not function 43 / MEI type 14, or an exception answer. */
  NotDeviceId: 2,
  /** An object's length runs past the end of the answer. */
  BadObject: 3,
} as const;

/** Kebab-case names of DeviceIdError, indexed by code. */
export const deviceIdErrorNames: readonly string[] = ['none', 'modbus-device-id-truncated', 'modbus-device-id-not-device-id', 'modbus-device-id-bad-object'];

/** The object ids 0..5 and how the identity observation names them (ipc/messages.ts IdentityObservation). */
export const deviceIdObjectNames = ['vendorName', 'productCode', 'revision', 'vendorUrl', 'productName', 'modelName'] as const;
const OBJECTS = deviceIdObjectNames.length;
/** MBAP 7, function, MEI type, read device id code, conformity level, more follows, next object id, number of objects. */
const FIXED = 7 + 7;

export class DeviceIdAnswer {
  error = 0;
  unit = 0;
  /** Per object id 0..5: value offset and length, length -1 when the answer did not carry it. */
  readonly offset = new Int32Array(OBJECTS);
  readonly length = new Int32Array(OBJECTS);
}

/** Decode the response ADU frame[off, off + length) into `out`; returns out.error (DeviceIdError.None when whole). */
export function decodeDeviceId(b: Uint8Array, off: number, length: number, out: DeviceIdAnswer): number {
  out.length.fill(-1);
  out.error = walk(b, off, off + length, out);
  return out.error;
}

function walk(b: Uint8Array, off: number, end: number, out: DeviceIdAnswer): number {
  if (off + 9 > end) return DeviceIdError.Truncated;
  out.unit = b[off + 6];
  if (b[off + 7] !== 43 || b[off + 8] !== 14) return DeviceIdError.NotDeviceId;
  if (off + FIXED > end || off + 6 + read16(b, off + 4) > end) return DeviceIdError.Truncated;
  const count = b[off + 13];
  let at = off + FIXED;
  for (let n = 0; n < count; n++) {
    if (at + 2 > end) return DeviceIdError.BadObject;
    const id = b[at];
    const length = b[at + 1];
    if (at + 2 + length > end) return DeviceIdError.BadObject;
    if (id < OBJECTS) {
      out.offset[id] = at + 2;
      out.length[id] = length;
    }
    at += 2 + length;
  }
  return DeviceIdError.None;
}

/** The answer's objects as the identity observation names them, with its unit. Allocates: slow path. */
export function deviceIdFields(b: Uint8Array, a: DeviceIdAnswer): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let id = 0; id < OBJECTS; id++) {
    if (a.length[id] <= 0) continue;
    const text = identityText(b, a.offset[id], a.length[id]);
    if (text !== '') fields[deviceIdObjectNames[id]] = text;
  }
  fields.unit = String(a.unit);
  return fields;
}
