// Builds Ethernet frames for engine tests (IPv4/IPv6 with TCP, UDP or ICMP), checksums included.

export const CLIENT_MAC = [0x02, 0, 0, 0, 0, 0x10];
export const SERVER_MAC = [0x02, 0, 0, 0, 0, 0x64];

export interface FrameSpec {
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  /** TCP flags as letters: S, A, F, R, P. */
  flags?: string;
  seq?: number;
  ack?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  payload?: number[];
  vlan?: number;
  srcMac?: number[];
  dstMac?: number[];
  /** IPv4 fragment: byte offset and more-fragments flag. */
  fragOffset?: number;
  moreFragments?: boolean;
  ipId?: number;
}

function v4(text: string): number[] {
  return text.split('.').map(Number);
}

function v6(text: string): number[] {
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

function sum16(bytes: number[], initial = 0): number {
  let s = initial;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const be16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

export function frame(spec: FrameSpec): Buffer {
  const six = spec.src.includes(':');
  const payload = spec.payload ?? [];
  let protoNumber: number;
  let l4: number[];
  if (spec.proto === 'tcp') {
    protoNumber = 6;
    const flags = spec.flags ?? 'S';
    const bits = (flags.includes('F') ? 1 : 0) | (flags.includes('S') ? 2 : 0) | (flags.includes('R') ? 4 : 0) |
      (flags.includes('P') ? 8 : 0) | (flags.includes('A') ? 16 : 0);
    l4 = [...be16(spec.sport ?? 40000), ...be16(spec.dport ?? 80), ...be32(spec.seq ?? 1000), ...be32(spec.ack ?? 0),
      0x50, bits, ...be16(65535), 0, 0, 0, 0, ...payload];
  } else if (spec.proto === 'udp') {
    protoNumber = 17;
    l4 = [...be16(spec.sport ?? 40000), ...be16(spec.dport ?? 53), ...be16(8 + payload.length), 0, 0, ...payload];
  } else {
    protoNumber = six ? 58 : 1;
    l4 = [spec.icmpType ?? (six ? 128 : 8), spec.icmpCode ?? 0, 0, 0, ...be16(spec.icmpId ?? 7), 0, 1, ...payload];
  }
  const src = six ? v6(spec.src) : v4(spec.src);
  const dst = six ? v6(spec.dst) : v4(spec.dst);
  const pseudo = [...src, ...dst, 0, protoNumber, ...be16(l4.length)];
  const checksumAt = spec.proto === 'tcp' ? 16 : spec.proto === 'udp' ? 6 : 2;
  const checksum = spec.proto === 'icmp' && !six ? ~sum16(l4) & 0xffff : ~sum16(l4, sum16(pseudo)) & 0xffff;
  l4.splice(checksumAt, 2, ...be16(checksum));
  let ip: number[];
  if (six) {
    ip = [0x60, 0, 0, 0, ...be16(l4.length), protoNumber, 64, ...src, ...dst];
  } else {
    const frag = ((spec.fragOffset ?? 0) >> 3) | (spec.moreFragments ? 0x2000 : 0);
    ip = [0x45, 0, ...be16(20 + l4.length), ...be16(spec.ipId ?? 1), ...be16(frag), 64, protoNumber, 0, 0, ...src, ...dst];
    ip.splice(10, 2, ...be16(~sum16(ip) & 0xffff));
  }
  const tag = spec.vlan !== undefined ? [0x81, 0x00, ...be16(spec.vlan)] : [];
  const eth = [...(spec.dstMac ?? SERVER_MAC), ...(spec.srcMac ?? CLIENT_MAC), ...tag, ...(six ? [0x86, 0xdd] : [0x08, 0x00])];
  const bytes = [...eth, ...ip, ...l4];
  while (bytes.length < 60) bytes.push(0);
  return Buffer.from(bytes);
}

/** Ones' complement check of a range: 0xffff when the checksum inside it is right. */
export function checksumOk(bytes: Uint8Array, from: number, to: number, initial = 0): boolean {
  return sum16(Array.from(bytes.subarray(from, to)), initial) === 0xffff;
}

/** An untagged IPv4 TCP frame's IP header and TCP checksums are both right. */
export function ipv4TcpChecksumsOk(bytes: Uint8Array): boolean {
  const total = (bytes[16] << 8) | bytes[17];
  const pseudo = [...bytes.subarray(26, 34)].reduce((s, b, i) => s + (i % 2 === 0 ? b << 8 : b), 6 + total - 20);
  return checksumOk(bytes, 14, 34) && checksumOk(bytes, 34, 14 + total, pseudo);
}

/** A classic pcap file (microsecond timestamps, Ethernet) holding `records` in order. */
export function pcapFile(records: readonly { timeMs: number; frame: Buffer }[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20);
  const parts: Buffer[] = [header];
  for (const r of records) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(r.timeMs / 1000), 0);
    h.writeUInt32LE(Math.round((r.timeMs % 1000) * 1000), 4);
    h.writeUInt32LE(r.frame.length, 8);
    h.writeUInt32LE(r.frame.length, 12);
    parts.push(h, r.frame);
  }
  return Buffer.concat(parts);
}
