// The data port's I/O for real: a namespace with two veth pairs, p0-p1 and q0-q1. A Port pair on p1
// and q1 (built code from dist/, run inside the namespace) forwards whatever p1 receives out of q1;
// Python raw sockets send frames into p0 and read what comes out of q0.

import t from 'tap';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../appliance/paths';
import { batchPortAddonPath } from '../appliance/dataplane/port/batch-port';
import { portNamespace } from './lib/port-namespace';

/** Frame sizes: p0/p1 take jumbo frames, q0/q1 only 1500 bytes, so a 2000-byte frame cannot leave q1. */
const P_MTU = 9000;
/**
 * Raised once the ports are open: a 10000-byte frame is then above the MTU the ports opened with
 * (libpcap cuts it for cap; a batched slot holds a 64 KiB super-frame, so it fits there).
 */
const P_MTU_RAISED = 12000;
const FRAMES = 2000;

// Runs in the namespace: forwards p1 → q1 through two Ports (with send threads when told
// "send-thread") and reports what it saw when stdin ends.
// The first batch pauses the loop for 300 ms so that the kernel ring fills and later batches are full.
const FORWARDER = `
const [root, io, inName, outName, sender] = process.argv.slice(1);
const sendThread = sender === 'send-thread';
const { Port } = require(root + '/dist/appliance/dataplane/port/port.js');
const inPort = new Port(inName);
const outPort = new Port(outName);
inPort.prepare();
outPort.prepare();
const summary = { received: 0, forwarded: 0, forwardedBytes: 0, refused: 0, truncated: [], batches: [] };
inPort.open((count) => {
  if (count === 0) return; // busy polling keeping the path warm: no frame
  if (summary.batches.length === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  summary.batches.push(count);
  for (let i = 0; i < count; i++) {
    const captured = inPort.lengths[2 * i];
    const wire = inPort.lengths[2 * i + 1];
    summary.received++;
    if (wire > captured) summary.truncated.push([captured, wire]);
    else outPort.queue(inPort, i, captured);
  }
  outPort.flush();
}, () => {}, io, sendThread);
outPort.open(() => {}, (frames, bytes, refused) => {
  summary.forwarded += frames;
  summary.forwardedBytes += bytes;
  summary.refused += refused;
}, io, sendThread);
process.stdout.write(JSON.stringify({ io: [inPort.io, outPort.io], sendThread: outPort.sendThread,
  fallback: inPort.ioFallbackReason ?? null }) + '\\n');
process.stdin.resume();
process.stdin.on('end', () => {
  inPort.close();
  outPort.close();
  process.stdout.write(JSON.stringify(summary) + '\\n');
});
`;

// Runs in the namespace: sends numbered frames of random sizes into p0, then one of 2000 bytes (too
// big for q1) and one of 10000 bytes; prints the frames sent and those read from q0, as hex.
const TRAFFIC = `
import json, os, random, socket, sys
count = int(sys.argv[1])
random.seed(7)
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
rx.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: hold every frame until read
rx.bind(('q0', 0x88b5))
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind(('p0', 0))
header = bytes.fromhex('020000000002' '020000000001' '88b5')
def frame(n, size):
    return header + n.to_bytes(4, 'big') + os.urandom(size - 18)
sent = []
for n in range(count):
    f = frame(n, random.randint(60, 1514))
    tx.send(f)
    sent.append(f.hex())
tx.send(frame(count, 2000))
tx.send(frame(count + 1, 10000))
rx.settimeout(2.0)
received = []
try:
    while True:
        received.append(rx.recv(65536).hex())
except socket.timeout:
    pass
print(json.dumps({'sent': sent, 'received': received}))
`;

interface ForwarderSummary {
  received: number;
  forwarded: number;
  forwardedBytes: number;
  refused: number;
  truncated: Array<[number, number]>;
  batches: number[];
}

function bytesOf(hexFrames: string[]): number {
  return hexFrames.reduce((sum, hex) => sum + hex.length / 2, 0);
}

function unavailable(): string | false {
  if (process.getuid?.() !== 0) return 'port I/O tests need root';
  for (const tool of ['ip', 'ethtool', 'python3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `port I/O tests need ${tool}`;
  }
  if (!existsSync(join(projectRoot, 'dist', 'appliance', 'dataplane', 'port', 'port.js'))) return 'run npm run build first';
  return false;
}

t.test('port I/O', { skip: unavailable() }, async (t) => {
  const { scratch, inNs, startForwarder } = portNamespace(t, 'port-io');
  inNs(['ip', 'link', 'add', 'p0', 'mtu', String(P_MTU), 'type', 'veth', 'peer', 'name', 'p1', 'mtu', String(P_MTU)]);
  inNs(['ip', 'link', 'add', 'q0', 'type', 'veth', 'peer', 'name', 'q1']);
  for (const dev of ['p0', 'p1', 'q0', 'q1']) inNs(['ip', 'link', 'set', dev, 'up']);
  const trafficScript = join(scratch, 'traffic.py');
  writeFileSync(trafficScript, TRAFFIC);

  /** Starts the forwarder from `root`'s dist/, sends the traffic, returns both sides' findings. */
  async function forwardTraffic(root: string, io: string, frames: number, sender: 'inline' | 'send-thread' = 'inline',
    afterTraffic: (child: ChildProcess) => Promise<unknown> = async () => undefined) {
    for (const dev of ['p0', 'p1']) inNs(['ip', 'link', 'set', dev, 'mtu', String(P_MTU)]);
    const { child, next, exited, stderr } = startForwarder(FORWARDER, [root, io, 'p1', 'q1', sender]);
    const opened = JSON.parse(await next('opening the ports')) as { io: string[]; sendThread: boolean; fallback: string | null };
    for (const dev of ['p0', 'p1']) inNs(['ip', 'link', 'set', dev, 'mtu', String(P_MTU_RAISED)]);
    const traffic = JSON.parse(inNs(['python3', trafficScript, String(frames)])) as { sent: string[]; received: string[] };
    const linkGone = await afterTraffic(child);
    child.stdin!.end();
    const summary = JSON.parse(await next('its summary')) as ForwarderSummary;
    const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 5000))]);
    return { opened, traffic, summary, code, stderr: stderr(), linkGone };
  }

  for (const sender of ['inline', 'send-thread'] as const) {
    t.test(`batched (${sender}): frames leave byte-exact and in order, in batches; frames too large for the other port are counted`,
      { skip: existsSync(batchPortAddonPath) ? false : 'addon not built (npm run build)' }, async (t) => {
        const { opened, traffic, summary, code, stderr } = await forwardTraffic(projectRoot, 'batched', FRAMES, sender);
        t.same(opened, { io: ['batched', 'batched'], sendThread: sender === 'send-thread', fallback: null },
          'both ports use the batched addon');
        t.equal(traffic.received.length, FRAMES, 'every frame came out of q0');
        t.ok(traffic.received.every((hex, i) => hex === traffic.sent[i]), 'byte-exact, in the order sent');
        t.ok(Math.max(...summary.batches) > 100, `a batch held many frames (largest ${Math.max(...summary.batches)})`);
        t.equal(summary.received, FRAMES + 2, 'the forwarder received every frame, the two large ones too');
        t.equal(summary.refused, 2, 'the 2000- and 10000-byte frames were refused by q1 (MTU 1500) and counted');
        t.equal(summary.forwarded, FRAMES, 'every frame sent reported');
        t.equal(summary.forwardedBytes, bytesOf(traffic.sent), 'and their bytes');
        t.same(summary.truncated, [], 'the 10000-byte frame fit its slot (slots hold 64 KiB super-frames)');
        t.equal(code, 0, `the forwarder exits once its ports are closed ${stderr}`);
      });
  }

  t.test('cap on request: one frame per batch, byte-exact and in order; frames above the MTU are cut, never whole', async (t) => {
    const { opened, traffic, summary, code, stderr } = await forwardTraffic(projectRoot, 'cap', FRAMES);
    t.same(opened, { io: ['cap', 'cap'], sendThread: false, fallback: null });
    t.equal(traffic.received.length, FRAMES, 'every frame came out of q0 (the ring held the whole burst)');
    t.ok(traffic.received.every((hex, i) => hex === traffic.sent[i]), 'byte-exact, in the order sent');
    t.same([...new Set(summary.batches)], [1], 'cap hands over one frame at a time');
    t.equal(summary.forwarded, FRAMES, 'every frame sent reported');
    t.equal(summary.forwardedBytes, bytesOf(traffic.sent), 'and their bytes');
    t.equal(summary.refused, 2, 'the 2000-byte frame and what libpcap kept of the 10000-byte one were refused by q1');
    t.same(summary.truncated, [], 'libpcap cut the 10000-byte frame to the MTU the port opened with, silently (the decoder drops such IP frames)');
    t.equal(code, 0, `the forwarder exits once its ports are closed ${stderr}`);
  });

  t.test('falls back to cap when the addon is not built', async (t) => {
    // A copy of the built project without the addon, as on a box where the native build never ran.
    const bare = join(scratch, 'bare');
    cpSync(join(projectRoot, 'dist', 'appliance'), join(bare, 'dist', 'appliance'), { recursive: true });
    writeFileSync(join(bare, 'package.json'), '{}\n');
    symlinkSync(join(projectRoot, 'node_modules'), join(bare, 'node_modules'));
    const { opened, traffic, code, stderr } = await forwardTraffic(bare, 'batched', 200);
    t.same(opened.io, ['cap', 'cap'], 'cap took over');
    t.match(opened.fallback, /not built/, 'the reason is reported');
    t.equal(traffic.received.length, 200, 'every frame came out of q0');
    t.ok(traffic.received.every((hex, i) => hex === traffic.sent[i]), 'byte-exact, in the order sent');
    t.equal(code, 0, `the forwarder exits once its ports are closed ${stderr}`);
  });

  // Last: it deletes p0/p1.
  t.test('batched: a port whose link disappears neither crashes nor spins (cap aborts there)',
    { skip: existsSync(batchPortAddonPath) ? false : 'addon not built (npm run build)' }, async (t) => {
      const { opened, traffic, code, stderr, linkGone } = await forwardTraffic(projectRoot, 'batched', 10, 'send-thread', async (child) => {
        inNs(['ip', 'link', 'del', 'p0']);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const before = cpuTicks(child.pid!);
        await new Promise((resolve) => setTimeout(resolve, 2000));
        return { alive: child.exitCode === null, ticks: cpuTicks(child.pid!) - before };
      });
      t.same(opened.io, ['batched', 'batched']);
      t.equal(traffic.received.length, 10, 'forwarded while the link was there');
      const gone = linkGone as { alive: boolean; ticks: number };
      t.ok(gone.alive, 'still running after its link was deleted');
      t.ok(gone.ticks < 50, `idle after its link was deleted (${gone.ticks} CPU ticks in 2 s)`);
      t.equal(code, 0, `closes and exits ${stderr}`);
    });
});

/** User + system CPU time of a process, in clock ticks (usually 1/100 s). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
