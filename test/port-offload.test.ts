// The batched port I/O with offload metadata, for real: a namespace with two veth pairs, p0-p1 and
// q0-q1, and two Ports (built code from dist/) forwarding whatever p1 receives out of q1. Python
// sends into p0 what a host with TX checksum offload and TSO/GSO hands its NIC: frames with a
// partial checksum and super-frames (a virtio_net_hdr in front, on a PACKET_VNET_HDR socket),
// IPv4, IPv6 and VLAN-tagged, and reads what comes out of q0. With q1's offloads on a super-frame
// must leave as it came (same bytes, same GSO type and size); with them off the kernel cuts it on
// the way out, and every segment must carry complete, correct checksums and the right payload.
// Not for cap: it never sees the metadata (test/port-io.test.ts covers its refusal of large frames).

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../appliance/paths';
import { batchPortAddonPath } from '../appliance/dataplane/port/batch-port';
import { portNamespace } from './lib/port-namespace';

// Runs in the namespace: forwards p1 → q1 and reports, when stdin ends, every frame it received:
// [captured length, wire length, segments].
const FORWARDER = `
const [root] = process.argv.slice(1);
const { Port } = require(root + '/dist/appliance/dataplane/port/port.js');
const inPort = new Port('p1');
const outPort = new Port('q1');
inPort.prepare();
outPort.prepare();
const summary = { frames: [], forwarded: 0, forwardedBytes: 0, refused: 0 };
inPort.open((count) => {
  if (count === 0) return; // busy polling keeping the path warm: no frame
  for (let i = 0; i < count; i++) {
    summary.frames.push([inPort.lengths[2 * i], inPort.lengths[2 * i + 1], inPort.segments[i]]);
    outPort.queue(inPort, i, inPort.lengths[2 * i]);
  }
  outPort.flush();
}, () => {}, 'batched', false);
outPort.open(() => {}, (frames, bytes, refused) => {
  summary.forwarded += frames;
  summary.forwardedBytes += bytes;
  summary.refused += refused;
}, 'batched', false);
process.stdout.write(JSON.stringify({ io: [inPort.io, outPort.io] }) + '\\n');
process.stdin.resume();
process.stdin.on('end', () => {
  inPort.close();
  outPort.close();
  process.stdout.write(JSON.stringify(summary) + '\\n');
});
`;

/** Payload bytes per segment of every super-frame, and how many segments. */
const MSS = 1000;
const SEGMENTS = 8;

// Runs in the namespace: sends the test frames into p0 with vnet headers, reads q0 (with vnet
// headers too) and prints, for every frame read, what it found.
const TRAFFIC = `
import json, socket, struct, sys
MSS, SEGS = ${MSS}, ${SEGMENTS}
SRC_MAC, DST_MAC = bytes.fromhex('020000000001'), bytes.fromhex('020000000002')
V4 = (bytes([198, 18, 7, 1]), bytes([198, 18, 7, 2]))
V6 = (bytes.fromhex('20010002000000070000000000000001'), bytes.fromhex('20010002000000070000000000000002'))
PACKET_VNET_HDR, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 15, 8, 0x10
NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6 = 1, 0, 1, 4

def fold(s):
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return s

def sum16(b):
    if len(b) % 2:
        b += b'\\0'
    return sum(struct.unpack('!%dH' % (len(b) // 2), b))

def payload(dport, n):
    return bytes(((i * 7 + dport) & 0xff) for i in range(n))

def build(case):
    """A TCP frame as a host with offloads hands it over: pseudo-header sum in the checksum field."""
    dport, v6, vlan, segs = case['dport'], case['v6'], case['vlan'], case['segs']
    data = payload(dport, MSS * segs)
    tcp = struct.pack('!HHIIBBHHH', 40000, dport, 1000, 0, 5 << 4, 0x18, 65535, 0, 0)
    l4len = len(tcp) + len(data)
    if v6:
        src, dst = V6
        ip = struct.pack('!IHBB', 6 << 28, l4len, 6, 64) + src + dst
        pseudo = src + dst + struct.pack('!IxxxB', l4len, 6)
        etype = 0x86dd
    else:
        src, dst = V4
        ip = struct.pack('!BBHHHBBH', 0x45, 0, 20 + l4len, 1, 0x4000, 64, 6, 0) + src + dst
        ip = ip[:10] + struct.pack('!H', 0xffff - fold(sum16(ip))) + ip[12:]
        pseudo = src + dst + struct.pack('!xBH', 6, l4len)
        etype = 0x0800
    tcp = tcp[:16] + struct.pack('!H', fold(sum16(pseudo))) + tcp[18:]
    tag = struct.pack('!HH', 0x8100, vlan) if vlan else b''
    eth = DST_MAC + SRC_MAC + tag + struct.pack('!H', etype)
    l4 = len(eth) + len(ip)
    gso = GSO_NONE if segs == 1 else (GSO_TCPV6 if v6 else GSO_TCPV4)
    vnet = struct.pack('<BBHHHH', NEEDS_CSUM, gso, l4 + 20, MSS if segs > 1 else 0, l4, 16)
    return vnet + eth + ip + tcp + data

def check(frame):
    """What a frame read from q0 is: its flow (dport), and whether its checksums and payload are right."""
    vnet, frame = frame[:10], frame[10:]
    flags, gso_type, _, gso_size, _, _ = struct.unpack('<BBHHHH', vnet)
    off, vlan = 12, 0
    etype = struct.unpack('!H', frame[12:14])[0]
    if etype == 0x8100:
        vlan = struct.unpack('!H', frame[14:16])[0] & 0xfff
        etype, off = struct.unpack('!H', frame[16:18])[0], 16
    off += 2
    if etype == 0x86dd:
        l4len = struct.unpack('!H', frame[off + 4:off + 6])[0]
        pseudo = frame[off + 8:off + 40] + struct.pack('!IxxxB', l4len, 6)
        ip_ok, l4 = True, off + 40
    else:
        ihl = (frame[off] & 15) * 4
        l4len = struct.unpack('!H', frame[off + 2:off + 4])[0] - ihl
        pseudo = frame[off + 12:off + 20] + struct.pack('!xBH', 6, l4len)
        ip_ok, l4 = fold(sum16(frame[off:off + ihl])) == 0xffff, off + ihl
    tcp = frame[l4:l4 + l4len]
    dport, seq = struct.unpack('!HI', tcp[2:8])
    data = tcp[(tcp[12] >> 4) * 4:]
    return {'dport': dport, 'vlan': vlan, 'length': len(frame), 'partial': bool(flags & NEEDS_CSUM),
            'gsoType': gso_type, 'gsoSize': gso_size,
            'csumOk': ip_ok and fold(sum16(pseudo + tcp)) == 0xffff,
            'payloadOk': data == payload(dport, MSS * SEGS)[seq - 1000:seq - 1000 + len(data)],
            'seq': seq, 'payloadBytes': len(data)}

cases = json.loads(sys.argv[1])
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
rx.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)
rx.setsockopt(263, PACKET_VNET_HDR, 1)
rx.setsockopt(263, PACKET_AUXDATA, 1)
rx.bind(('q0', 3))
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.setsockopt(263, PACKET_VNET_HDR, 1)
tx.bind(('p0', 0))
for case in cases:
    tx.send(build(case))
rx.settimeout(1.5)
received = []
try:
    while True:
        f, ancillary, _, _ = rx.recvmsg(70000, 64)
        # The kernel holds a received VLAN tag beside the frame: put it back, as tcpdump does.
        for level, kind, data in ancillary:
            status, _, _, _, _, tci, tpid = struct.unpack('IIIHHHH', data[:24])
            if level == 263 and kind == PACKET_AUXDATA and status & TP_STATUS_VLAN_VALID:
                f = f[:22] + struct.pack('!HH', tpid or 0x8100, tci) + f[22:]
        if f[16:22] == SRC_MAC:
            received.append(check(f))
except socket.timeout:
    pass
print(json.dumps(received))
`;

interface Case {
  name: string;
  dport: number;
  v6: boolean;
  vlan: number;
  segs: number;
}

interface Seen {
  dport: number;
  vlan: number;
  length: number;
  partial: boolean;
  gsoType: number;
  gsoSize: number;
  csumOk: boolean;
  payloadOk: boolean;
  seq: number;
  payloadBytes: number;
}

const CASES: Case[] = [
  { name: 'IPv4 frame with a partial checksum', dport: 7001, v6: false, vlan: 0, segs: 1 },
  { name: 'IPv4 TCP super-frame', dport: 7002, v6: false, vlan: 0, segs: SEGMENTS },
  { name: 'IPv6 TCP super-frame', dport: 7003, v6: true, vlan: 0, segs: SEGMENTS },
  { name: '802.1Q-tagged IPv4 TCP super-frame', dport: 7004, v6: false, vlan: 100, segs: SEGMENTS },
];

/** Frame length of a case: Ethernet (+ tag), IP, TCP, payload. */
function frameBytes(c: Case): number {
  return 14 + (c.vlan ? 4 : 0) + (c.v6 ? 40 : 20) + 20 + MSS * c.segs;
}

function unavailable(): string | false {
  if (process.getuid?.() !== 0) return 'port offload tests need root';
  for (const tool of ['ip', 'ethtool', 'python3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `port offload tests need ${tool}`;
  }
  if (!existsSync(batchPortAddonPath)) return 'addon not built (npm run build)';
  return false;
}

t.test('port offload metadata', { skip: unavailable() }, async (t) => {
  const { scratch, inNs, startForwarder } = portNamespace(t, 'port-offload');
  inNs(['ip', 'link', 'add', 'name', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
  inNs(['ip', 'link', 'add', 'name', 'q0', 'type', 'veth', 'peer', 'name', 'q1']);
  for (const dev of ['p0', 'p1', 'q0', 'q1']) inNs(['ip', 'link', 'set', dev, 'up']);
  const trafficScript = join(scratch, 'traffic.py');
  writeFileSync(trafficScript, TRAFFIC);

  async function forward(): Promise<{ seen: Seen[]; summary: { frames: number[][]; forwarded: number; refused: number } }> {
    const { child, next, exited } = startForwarder(FORWARDER, [projectRoot]);
    const opened = JSON.parse(await next('opening the ports')) as { io: string[] };
    if (opened.io.some((io) => io !== 'batched')) throw new Error(`ports not batched: ${opened.io.join(', ')}`);
    const seen = JSON.parse(inNs(['python3', trafficScript, JSON.stringify(CASES)])) as Seen[];
    child.stdin!.end();
    const summary = JSON.parse(await next('its summary')) as { frames: number[][]; forwarded: number; refused: number };
    await exited;
    return { seen, summary };
  }

  t.test('what the gatekeeper receives: whole super-frames, their segments counted', async (t) => {
    const { summary } = await forward();
    t.same(summary.frames, CASES.map((c) => [frameBytes(c), frameBytes(c), c.segs]),
      'one frame per case, whole (captured = wire length), standing for its segments (1 for a plain frame)');
    t.equal(summary.forwarded, CASES.length, 'each sent on as one frame');
    t.equal(summary.refused, 0, 'none refused (a super-frame is larger than q1\'s MTU: its metadata says what it is)');
  });

  t.test('out of a port with offloads on: each frame leaves as it came', async (t) => {
    const { seen } = await forward();
    t.equal(seen.length, CASES.length, 'one frame per case at q0');
    for (const c of CASES) {
      const f = seen.find((s) => s.dport === c.dport);
      t.ok(f !== undefined, `${c.name} arrived`);
      if (f === undefined) continue;
      t.same({ length: f.length, vlan: f.vlan, partial: f.partial, gsoSize: f.gsoSize, payloadOk: f.payloadOk },
        { length: frameBytes(c), vlan: c.vlan, partial: true, gsoSize: c.segs > 1 ? MSS : 0, payloadOk: true },
        `${c.name}: same bytes, still a partial checksum, same segment size`);
    }
  });

  t.test('out of a port with offloads off: cut into the segments the sender meant, checksums completed', async (t) => {
    inNs(['ethtool', '-K', 'q1', 'tx', 'off', 'tso', 'off', 'gso', 'off']);
    t.teardown(() => inNs(['ethtool', '-K', 'q1', 'tx', 'on', 'tso', 'on', 'gso', 'on']));
    const { seen } = await forward();
    for (const c of CASES) {
      const segments = seen.filter((s) => s.dport === c.dport).sort((a, b) => a.seq - b.seq);
      t.equal(segments.length, c.segs, `${c.name}: ${c.segs} frame(s) at q0`);
      t.ok(segments.every((s) => s.csumOk && !s.partial), `${c.name}: every one with complete, correct checksums`);
      t.ok(segments.every((s) => s.payloadOk && s.payloadBytes === MSS && s.vlan === c.vlan),
        `${c.name}: each with its ${MSS} bytes of payload${c.vlan ? ' and the tag' : ''}`);
      t.same(segments.map((s) => s.seq), Array.from({ length: c.segs }, (_, i) => 1000 + i * MSS), `${c.name}: in sequence`);
    }
  });
});
