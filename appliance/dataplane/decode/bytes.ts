// Big-endian reads on the frame buffer (index arithmetic only: nothing allocated).

export function read16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

export function read32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}
