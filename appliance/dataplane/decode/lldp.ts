// LLDP (IEEE 802.1AB, EtherType 0x88cc): the TLVs a neighbour announces about itself. Decodes into a
// reused LldpFrame that holds only where each field is (offset, length, subtype), so decoding
// allocates nothing; lldpFields() makes the text, on the slow path, for frames that are reported.
// Says why a frame could not be decoded (lldpErrorNames). Observation only: whether the frame is
// forwarded is the engine's business, not this file's.

import { read16 } from './bytes';
import { addressBytesText, identityText, macText } from './identity-text';

export const LldpError = {
  None: 0,
  /** A TLV header or value runs past the end of the frame. */
  Truncated: 1,
  /** The mandatory chassis id, port id and TTL TLVs are not the first three, in that order. */
  MissingMandatory: 2,
  /** A mandatory or known TLV is shorter than its fixed part (e.g. a chassis id without its subtype). */
  BadTlvLength: 3,
} as const;

/** Kebab-case names of LldpError, indexed by code. */
export const lldpErrorNames: readonly string[] = ['none', 'lldp-truncated', 'lldp-missing-mandatory', 'lldp-bad-tlv-length'];

const Tlv = { End: 0, ChassisId: 1, PortId: 2, Ttl: 3, PortDescription: 4, SystemName: 5, SystemDescription: 6, ManagementAddress: 8 } as const;
/** Chassis id subtype 4 and port id subtype 3: a MAC address; chassis 5 / port 4: a network address. */
const CHASSIS_MAC = 4;
const CHASSIS_NETWORK = 5;
const PORT_MAC = 3;
const PORT_NETWORK = 4;
/** IANA address family numbers in a network-address id and a management address. */
const IANA_IPV4 = 1;
const IANA_IPV6 = 2;

/** Where one field is in the frame: value bytes frame[offset, offset + length); length -1 when absent. */
export class LldpField {
  offset = 0;
  length = -1;
  subtype = 0;
}

export class LldpFrame {
  error = 0;
  readonly chassisId = new LldpField();
  readonly portId = new LldpField();
  ttl = 0;
  readonly portDescription = new LldpField();
  readonly systemName = new LldpField();
  readonly systemDescription = new LldpField();
  /** The first management address TLV (its address, subtype = IANA family). */
  readonly managementAddress = new LldpField();
}

function clear(f: LldpField): void {
  f.offset = 0;
  f.length = -1;
  f.subtype = 0;
}

/** Decode the LLDPDU frame[off, end) into `out`; returns out.error (LldpError.None when whole). */
export function decodeLldp(b: Uint8Array, off: number, end: number, out: LldpFrame): number {
  clear(out.chassisId);
  clear(out.portId);
  clear(out.portDescription);
  clear(out.systemName);
  clear(out.systemDescription);
  clear(out.managementAddress);
  out.ttl = 0;
  out.error = walk(b, off, end, out);
  return out.error;
}

function walk(b: Uint8Array, off: number, end: number, out: LldpFrame): number {
  let index = 0;
  while (true) {
    if (off + 2 > end) return LldpError.Truncated;
    const header = read16(b, off);
    const type = header >> 9;
    const length = header & 0x1ff;
    const value = off + 2;
    if (value + length > end) return LldpError.Truncated;
    off = value + length;
    // Chassis id, port id, TTL: first, in this order (802.1AB 8.2).
    if (index < 3 && type !== index + 1) return LldpError.MissingMandatory;
    index++;
    switch (type) {
      case Tlv.End:
        return LldpError.None;
      case Tlv.ChassisId:
      case Tlv.PortId: {
        if (length < 2) return LldpError.BadTlvLength;
        const f = type === Tlv.ChassisId ? out.chassisId : out.portId;
        f.subtype = b[value];
        f.offset = value + 1;
        f.length = length - 1;
        break;
      }
      case Tlv.Ttl:
        if (length < 2) return LldpError.BadTlvLength;
        out.ttl = read16(b, value);
        break;
      case Tlv.PortDescription:
      case Tlv.SystemName:
      case Tlv.SystemDescription: {
        const f = type === Tlv.PortDescription ? out.portDescription : type === Tlv.SystemName ? out.systemName : out.systemDescription;
        f.offset = value;
        f.length = length;
        break;
      }
      case Tlv.ManagementAddress: {
        // Address string length (subtype + address), subtype, address, then interface fields.
        if (length < 2) return LldpError.BadTlvLength;
        const addressLength = b[value];
        if (addressLength < 2 || 1 + addressLength > length) return LldpError.BadTlvLength;
        const f = out.managementAddress;
        if (f.length < 0) {
          f.subtype = b[value + 1];
          f.offset = value + 2;
          f.length = addressLength - 1;
        }
        break;
      }
      default:
        // Capabilities, organizationally specific and the rest: skipped.
        break;
    }
  }
}

/** An id TLV as text: a MAC or network address when its subtype says so, else the text it carries. */
function idText(b: Uint8Array, f: LldpField, macSubtype: number, networkSubtype: number): string {
  if (f.subtype === macSubtype && f.length === 6) return macText(b, f.offset);
  if (f.subtype === networkSubtype && f.length >= 1) {
    const family = b[f.offset];
    if (family === IANA_IPV4 || family === IANA_IPV6) return addressBytesText(b, f.offset + 1, f.length - 1);
  }
  return identityText(b, f.offset, f.length);
}

/**
 * The decoded frame's fields as the identity observation names them (ipc/messages.ts
 * IdentityObservation), only those the frame carried and that are not empty. Allocates: slow path.
 */
export function lldpFields(b: Uint8Array, frame: LldpFrame): Record<string, string> {
  const fields: Record<string, string> = {};
  const put = (name: string, text: string): void => {
    if (text !== '') fields[name] = text;
  };
  if (frame.chassisId.length >= 0) put('chassisId', idText(b, frame.chassisId, CHASSIS_MAC, CHASSIS_NETWORK));
  if (frame.portId.length >= 0) put('portId', idText(b, frame.portId, PORT_MAC, PORT_NETWORK));
  if (frame.portDescription.length > 0) put('portDescription', identityText(b, frame.portDescription.offset, frame.portDescription.length));
  if (frame.systemName.length > 0) put('systemName', identityText(b, frame.systemName.offset, frame.systemName.length));
  if (frame.systemDescription.length > 0) put('systemDescription', identityText(b, frame.systemDescription.offset, frame.systemDescription.length));
  const m = frame.managementAddress;
  if (m.length > 0 && (m.subtype === IANA_IPV4 || m.subtype === IANA_IPV6)) put('managementAddress', addressBytesText(b, m.offset, m.length));
  return fields;
}
