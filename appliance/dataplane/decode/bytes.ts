// Big-endian reads on the frame buffer (index arithmetic only: nothing allocated).

export function read16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

/** A MAC address as a 48-bit number, first byte most significant (exact in a double). */
export function read48(b: Uint8Array, off: number): number {
  return ((b[off] << 8) | b[off + 1]) * 0x100000000 + read32(b, off + 2);
}

export function read32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}
