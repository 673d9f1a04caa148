// Text a host wrote about itself in an identity frame (LLDP, DHCP, Modbus device identification),
// made safe to store and show: decoded as UTF-8 (bad sequences become U+FFFD), control and other
// non-printable characters replaced by '?', surrounding space trimmed, at most 255 characters. Slow
// path only: it allocates the string, so callers decide first whether the frame is reported at all.

import { formatIpv4, formatIpv6, formatMac } from '../../wire/address-text';
import { read32, read48 } from './bytes';

export const IDENTITY_TEXT_MAX = 255;

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** frame[off, off + length) as printable text of at most IDENTITY_TEXT_MAX characters. */
export function identityText(frame: Uint8Array, off: number, length: number): string {
  const raw = utf8.decode(frame.subarray(off, off + Math.min(length, IDENTITY_TEXT_MAX * 4)));
  // \p{C}: control, format, unassigned, private use and surrogate code points.
  const text = raw.replace(/[\p{C}\uFFFD]/gu, '?').trim();
  return Array.from(text).slice(0, IDENTITY_TEXT_MAX).join('');
}

/** Six bytes as "00:11:22:33:44:55". */
export function macText(frame: Uint8Array, off: number): string {
  return formatMac(read48(frame, off));
}

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address as text; '' for another length. */
export function addressBytesText(frame: Uint8Array, off: number, length: number): string {
  if (length === 4) return formatIpv4(read32(frame, off));
  if (length !== 16) return '';
  return formatIpv6([read32(frame, off), read32(frame, off + 4), read32(frame, off + 8), read32(frame, off + 12)]);
}
