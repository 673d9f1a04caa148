// Frames the kernel dropped before the dataplane saw them (its receive ring full) are counted per
// port as kernel_dropped, apart from the policy's drops, so an operator can tell "the policy dropped
// it" from "the box was too slow". A real lab: trafgen sends UDP the policy denies; a quiet run at a
// rate the dataplane keeps up with shows 0; with the dataplane stopped (SIGSTOP) the ring fills and
// overflows, and once it runs again (SIGCONT) every frame that reached the port is either counted by
// the policy (it saw it) or as kernel_dropped (it never did), never both. Both port I/Os: the batched
// addon's ring, and libpcap's (the cap fallback), whose statistics the addon reads from its socket.

import t from 'tap';
import type { DataplaneStats } from '../appliance/ipc/stats';
import { PORT_IO_ENV, type PortIo } from '../appliance/dataplane/port/port';
import { labAddresses as A, labUnavailable, sleep, startLab } from './lib/lab-fixture';
import { deviceCounter, trafgen, trafgenUnavailable, udpFrame } from './lib/trafgen';

const POLICY = `
version: 1
default: deny
groups:
  client: { members: ['${A.client4}'] }
  server: { members: ['${A.server4}'] }
rules:
  - name: sink
    from: client
    to: server
    service: udp/9
    action: deny
`;

/** The batched receive ring holds 16384 frames of up to 2048 bytes (32 MiB, port.ts); this is well beyond it. */
const OVERFLOW_FRAMES = 60_000;
const BATCHED_RING_FRAMES = 16_384;
/** A rate the dataplane keeps up with on a loaded 2-core box (it forwards 64-byte frames at 267+ kpps). */
const QUIET_FRAMES = 5_000;
const QUIET_PPS = 5_000;

const skip = labUnavailable() || trafgenUnavailable();

const sinkPackets = (s: DataplaneStats): number => s.rules.find((r) => r.name === 'sink')!.packets;

for (const io of ['batched', 'cap'] as PortIo[]) {
t.test(`${io}: kernel_dropped is 0 while the dataplane keeps up, the ring overflow when it cannot, never a policy drop`, { skip }, async (t) => {
  const previous = process.env[PORT_IO_ENV];
  process.env[PORT_IO_ENV] = io; // the lab's dataplane inherits it
  const { lab, dataplane } = await startLab(t, POLICY).finally(() => {
    if (previous === undefined) delete process.env[PORT_IO_ENV];
    else process.env[PORT_IO_ENV] = previous;
  });
  t.match(lab.dataplaneLog.join('\n'), new RegExp(`"io":"${io}"`), `the ports run the ${io} I/O`);
  t.notMatch(lab.dataplaneLog.join('\n'), /kernelDrops/, 'with kernel drops counted');
  const frame = udpFrame(lab.mac(lab.client), lab.mac(lab.server), A.client4, A.server4, 9);
  const rx = () => deviceCounter(lab.appliance, lab.outsidePort, 'rx_packets');

  await t.test('quiet run', async (t) => {
    const before = await lab.freshStats();
    const sent = await trafgen(lab, lab.client, frame, QUIET_FRAMES, QUIET_PPS);
    t.equal(sent.sent, QUIET_FRAMES, `trafgen sent ${sent.sent} frames in ${sent.ms} ms`);
    await lab.freshStats();
    const after = await lab.freshStats();
    for (const side of ['inside', 'outside'] as const) t.equal(after.ports[side].kernel_dropped, 0, `${side}: nothing dropped by the kernel`);
    t.equal(sinkPackets(after) - sinkPackets(before), QUIET_FRAMES, 'the policy saw and denied every frame');
  });

  await t.test('ring overflow while the dataplane does not read', async (t) => {
    const before = await lab.freshStats();
    const rxBefore = rx();
    dataplane.kill('SIGSTOP');
    t.teardown(() => dataplane.kill('SIGCONT'));
    let sent;
    try {
      sent = await trafgen(lab, lab.client, frame, OVERFLOW_FRAMES);
    } finally {
      dataplane.kill('SIGCONT');
    }
    const arrived = rx() - rxBefore;
    t.comment(`trafgen sent ${sent.sent} frames in ${sent.ms} ms; ${arrived} reached the outside port`);
    // The stats timer runs again: the first snapshot may predate the backlog being read.
    await sleep(1500);
    await lab.freshStats();
    const after = await lab.freshStats();
    const kernel = after.ports.outside.kernel_dropped - before.ports.outside.kernel_dropped;
    const seen = sinkPackets(after) - sinkPackets(before);
    const policy = after.ports.outside.dropped.policy - before.ports.outside.dropped.policy;
    t.comment(`kernel_dropped ${kernel}, seen and denied by the policy ${seen}`);
    t.ok(kernel > 0, `the kernel dropped frames the dataplane never saw (${kernel})`);
    t.ok(seen > 0 && seen < OVERFLOW_FRAMES, `the policy saw only the frames the ring held (${seen})`);
    if (io === 'batched') t.ok(seen <= BATCHED_RING_FRAMES, `at most the ${BATCHED_RING_FRAMES} frames of the ring`);
    t.equal(policy, seen, 'the policy drop counter counts what the policy saw, not the kernel\'s drops');
    // The hosts' own frames (IPv6 neighbour discovery, ...) may arrive meanwhile: they are forwarded, not trafgen's.
    const forwarded = after.ports.outside.forwarded - before.ports.outside.forwarded;
    t.equal(after.ports.outside.rx_packets - before.ports.outside.rx_packets, seen + forwarded,
      `rx_packets counts only frames the dataplane saw (${seen} denied, ${forwarded} of the hosts' own forwarded)`);
    // A host's own frame may arrive after `arrived` was read and still make the snapshot: the device
    // counter read after the snapshot bounds the count from above (CI saw 60001 = 16384 + 1 + 43616 of 60000).
    const arrivedBySnapshot = rx() - rxBefore;
    const counted = seen + forwarded + kernel;
    t.ok(counted >= arrived && counted <= arrivedBySnapshot,
      `every frame that reached the port is counted once: seen by the policy (or a host's own, forwarded) or dropped by the kernel (${counted}; ${arrived} arrived by the restart, ${arrivedBySnapshot} by the snapshot)`);
    t.equal(after.ports.inside.kernel_dropped, 0, 'inside: nothing arrived, nothing dropped');
  });
});
}
