// Minimal IPv4 TCP/UDP frame writer for the benchmarks. Frames are 60 bytes (the 64-byte minimum
// without FCS). The IPv4 header checksum is filled in; L4 checksums are left 0 because the decoder
// does not verify them and the engine bench never puts these frames on a wire.

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const FRAME_BYTES = 60;

export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;
export const TCP_PSH = 0x08;

export interface FlowSpec {
  src: number;
  dst: number;
  proto: number;
  sport: number;
  dport: number;
}

const CLIENT_MAC = [0x02, 0, 0, 0, 0, 0x10];
const SERVER_MAC = [0x02, 0, 0, 0, 0, 0x64];

/** Writes one frame of `flow` at `off`; `reply` swaps the endpoints, `tcpFlags` defaults to SYN. */
export function writeFrame(buf: Buffer, off: number, flow: FlowSpec, reply = false, tcpFlags = TCP_SYN): void {
  buf.fill(0, off, off + FRAME_BYTES);
  const [srcMac, dstMac] = reply ? [SERVER_MAC, CLIENT_MAC] : [CLIENT_MAC, SERVER_MAC];
  for (let i = 0; i < 6; i++) {
    buf[off + i] = dstMac[i];
    buf[off + 6 + i] = srcMac[i];
  }
  buf.writeUInt16BE(0x0800, off + 12);
  const ip = off + 14;
  const l4Length = flow.proto === PROTO_TCP ? 20 : 8;
  buf[ip] = 0x45;
  buf.writeUInt16BE(20 + l4Length, ip + 2);
  buf[ip + 8] = 64;
  buf[ip + 9] = flow.proto;
  buf.writeUInt32BE(reply ? flow.dst : flow.src, ip + 12);
  buf.writeUInt32BE(reply ? flow.src : flow.dst, ip + 16);
  buf.writeUInt16BE(ipChecksum(buf, ip), ip + 10);
  const l4 = ip + 20;
  buf.writeUInt16BE(reply ? flow.dport : flow.sport, l4);
  buf.writeUInt16BE(reply ? flow.sport : flow.dport, l4 + 2);
  if (flow.proto === PROTO_TCP) {
    buf[l4 + 12] = 0x50;
    buf[l4 + 13] = tcpFlags;
    buf.writeUInt16BE(65535, l4 + 14);
  } else {
    buf.writeUInt16BE(8, l4 + 4);
  }
}

/**
 * A TCP data frame of `flow` (PSH+ACK, `seq`, `ack`, `payload`) into a fresh buffer: `reply` swaps the
 * endpoints. For the inspection benchmark; padded to the 60-byte minimum.
 */
export function tcpDataFrame(flow: FlowSpec, reply: boolean, seq: number, ack: number, payload: readonly number[]): Buffer {
  const length = Math.max(FRAME_BYTES, 14 + 20 + 20 + payload.length);
  const buf = Buffer.alloc(length);
  writeFrame(buf, 0, flow, reply, TCP_PSH | TCP_ACK);
  buf.writeUInt16BE(20 + 20 + payload.length, 14 + 2);
  buf.writeUInt16BE(0, 14 + 10);
  buf.writeUInt16BE(ipChecksum(buf, 14), 14 + 10);
  buf.writeUInt32BE(seq >>> 0, 14 + 20 + 4);
  buf.writeUInt32BE(ack >>> 0, 14 + 20 + 8);
  buf.set(payload, 14 + 40);
  return buf;
}

/** Sets the acknowledgment number of a TCP frame written by writeFrame. */
export function setTcpAck(frame: Buffer, ack: number): void {
  frame.writeUInt32BE(ack >>> 0, 14 + 20 + 8);
}

function ipChecksum(buf: Buffer, ip: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += buf.readUInt16BE(ip + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Frames of `flows` packed in one buffer, plus a view per frame (built once, outside any timing). */
export function frameSet(flows: readonly FlowSpec[], reply = false, tcpFlags = TCP_SYN): Buffer[] {
  const buf = Buffer.alloc(flows.length * FRAME_BYTES);
  return flows.map((flow, i) => {
    writeFrame(buf, i * FRAME_BYTES, flow, reply, tcpFlags);
    return buf.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES);
  });
}
