// The in-order TCP stream guard: in order, split and pipelined delivery, identical and different
// retransmissions, partial overlap, out of order and gaps, the ring bound released by ACKs, and
// sequence numbers wrapping at 2^32.

import t from 'tap';
import { Admission, Admit, RING_BYTES, TcpStreamGuard, type TcpSegment } from '../appliance/dataplane/inspect/tcp-stream';
import { TcpFlag } from '../appliance/wire/protocols';

const HEADER = 54; // payload sits behind Ethernet/IP/TCP headers in a real frame

function seg(seq: number, bytes: number[], opts: { ack?: number; flags?: number; fromInitiator?: boolean } = {}): TcpSegment {
  const frame = new Uint8Array(HEADER + bytes.length);
  frame.set(bytes, HEADER);
  return {
    frame,
    offset: HEADER,
    length: bytes.length,
    seq: seq >>> 0,
    ack: (opts.ack ?? 0) >>> 0,
    flags: opts.flags ?? (opts.ack === undefined ? 0 : TcpFlag.ACK),
    fromInitiator: opts.fromInitiator ?? true,
  };
}

const out = new Admission();
const bytes = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => (from + i) & 0xff);

function delivered(s: TcpSegment, a: Admission): number[] {
  return Array.from(s.frame.subarray(a.deliverOffset, a.deliverOffset + a.deliverLength));
}

/** A guard after the handshake: each side's ACK has told where the other's stream starts. */
function guard(isn = 1000): TcpStreamGuard {
  const g = new TcpStreamGuard();
  g.admit(seg(5000, [], { ack: isn + 1, flags: TcpFlag.SYN | TcpFlag.ACK, fromInitiator: false }), out);
  g.admit(seg(isn + 1, [], { ack: 5001 }), out);
  return g;
}

t.test('in order, split and pipelined: every byte once, in order', async (t) => {
  const g = guard();
  const data = bytes(30);
  const got: number[] = [];
  for (const [from, to] of [[0, 5], [5, 6], [6, 30]]) {
    const s = seg(1001 + from, data.slice(from, to));
    t.equal(g.admit(s, out).verdict, Admit.Deliver);
    got.push(...delivered(s, out));
  }
  t.same(got, data);
  t.equal(g.unacked(true), 30, 'held until acknowledged');
  t.equal(g.nextSeq(true), 1031);
});

t.test("the peer's ACK sets the start: data before it is held, SYNs and early data move nothing", async (t) => {
  const g = new TcpStreamGuard();
  t.equal(g.admit(seg(99, [], { flags: TcpFlag.SYN }), out).verdict, Admit.Forward);
  t.equal(g.admit(seg(100, [1, 2]), out).verdict, Admit.DropAhead, 'not acknowledged by the server yet');
  t.equal(g.admit(seg(1100, [6, 6]), out).verdict, Admit.DropAhead, 'data far ahead sets nothing');
  g.admit(seg(5000, [], { ack: 100, flags: TcpFlag.SYN | TcpFlag.ACK, fromInitiator: false }), out);
  t.equal(g.nextSeq(true), 100, "the SYN-ACK's ACK is the start");
  t.equal(g.admit(seg(100, [1, 2]), out).verdict, Admit.Deliver);
  t.equal(g.admit(seg(50, [9], { flags: TcpFlag.SYN }), out).verdict, Admit.Forward, 'a later SYN: bytes acknowledged long ago');
  t.equal(g.nextSeq(true), 102, 'moves nothing');
  t.equal(g.admit(seg(5000, [], { ack: 5000, fromInitiator: false }), out).verdict, Admit.Forward);
  t.equal(g.nextSeq(true), 102, 'once data was checked, an ACK only releases');

  // Picked up mid-stream: the first data is held until the peer's ACK says where the stream is.
  const mid = new TcpStreamGuard();
  t.equal(mid.admit(seg(7777, [1, 2, 3]), out).verdict, Admit.DropAhead);
  mid.admit(seg(1, [], { ack: 7777, fromInitiator: false }), out);
  t.equal(mid.admit(seg(7777, [1, 2, 3]), out).verdict, Admit.Deliver);
  t.equal(mid.nextSeq(true), 7780);
});

t.test('retransmission: identical forwards, different is a violation', async (t) => {
  const g = guard();
  g.admit(seg(1001, [1, 2, 3, 4]), out);
  t.equal(g.admit(seg(1001, [1, 2, 3, 4]), out).verdict, Admit.Forward, 'identical');
  t.equal(g.admit(seg(1002, [2, 3]), out).verdict, Admit.Forward, 'identical inner part');
  const bad = g.admit(seg(1001, [1, 2, 9, 4]), out);
  t.equal(bad.verdict, Admit.Violation);
  t.equal(bad.reason, 'retransmission_differs');
  t.equal(g.retransmissions, 2);
});

t.test('partial overlap: the overlap compared, only the new tail delivered', async (t) => {
  const g = guard();
  g.admit(seg(1001, [1, 2, 3, 4]), out);
  const s = seg(1003, [3, 4, 5, 6]);
  t.equal(g.admit(s, out).verdict, Admit.Deliver);
  t.same(delivered(s, out), [5, 6]);
  t.equal(g.nextSeq(true), 1007);
  t.equal(g.admit(seg(1005, [9, 6, 7]), out).verdict, Admit.Violation, 'overlap that differs');
});

t.test('ahead of expected (gap, out of order): dropped and counted, then accepted in order', async (t) => {
  const g = guard();
  t.equal(g.admit(seg(1005, [5, 6]), out).verdict, Admit.DropAhead);
  t.equal(g.aheadDrops, 1);
  t.equal(g.nextSeq(true), 1001, 'nothing advanced');
  t.equal(g.admit(seg(1001, [1, 2, 3, 4]), out).verdict, Admit.Deliver);
  t.equal(g.admit(seg(1005, [5, 6]), out).verdict, Admit.Deliver, 'the retransmission, now in order');
});

t.test('ring bound: unacknowledged bytes beyond the ring drop the segment until ACKs release them', async (t) => {
  const g = guard();
  const chunk = bytes(1000);
  let seq = 1001;
  for (let i = 0; i < 4; i++) {
    t.equal(g.admit(seg(seq, chunk), out).verdict, Admit.Deliver);
    seq += 1000;
  }
  t.equal(g.admit(seg(seq, bytes(RING_BYTES - 4000 + 1)), out).verdict, Admit.DropFull, 'one byte over');
  t.equal(g.fullDrops, 1);
  t.equal(g.admit(seg(seq, bytes(RING_BYTES - 4000)), out).verdict, Admit.Deliver, 'exactly full');
  seq += RING_BYTES - 4000;
  t.equal(g.admit(seg(seq, [1]), out).verdict, Admit.DropFull);
  // The server acknowledges 2000 bytes.
  g.admit(seg(5001, [], { ack: 3001, fromInitiator: false }), out);
  t.equal(g.unacked(true), RING_BYTES - 2000);
  t.equal(g.admit(seg(seq, bytes(2000)), out).verdict, Admit.Deliver, 'room again');
  // Acknowledged bytes are not compared (the peer's TCP discards them): a keepalive's junk byte passes.
  t.equal(g.admit(seg(3000, [0xee]), out).verdict, Admit.Forward, 'keepalive below the ACK');
  t.equal(g.admit(seg(3000, [0xee, 0x11]), out).verdict, Admit.Violation, 'but unacknowledged bytes are compared');
  // An ACK of bytes never seen moves nothing.
  const before = g.unacked(true);
  g.admit(seg(5001, [], { ack: 999999, fromInitiator: false }), out);
  t.equal(g.unacked(true), before);
});

t.test('the ring wraps: stored copies stay exact over many rounds', async (t) => {
  const g = guard();
  let seq = 1001;
  for (let i = 0; i < 50; i++) {
    const data = bytes(700, i * 7);
    t.equal(g.admit(seg(seq, data), out).verdict, Admit.Deliver);
    t.equal(g.admit(seg(seq, data), out).verdict, Admit.Forward, `round ${i} retransmission identical`);
    seq += 700;
    g.admit(seg(5001, [], { ack: seq - 300, fromInitiator: false }), out);
  }
});

t.test('sequence numbers wrap at 2^32', async (t) => {
  const g = guard(0xfffffff0);
  const data = bytes(40);
  const s = seg(0xfffffff1, data);
  t.equal(g.admit(s, out).verdict, Admit.Deliver);
  t.equal(g.nextSeq(true), (0xfffffff1 + 40) >>> 0);
  t.equal(g.admit(seg(0xfffffff1 + 20, data.slice(20)), out).verdict, Admit.Forward, 'retransmission across the wrap');
  t.equal(g.admit(seg(0xfffffff1 + 20, [...data.slice(20, 39), 0]), out).verdict, Admit.Violation, 'differs after the wrap');
  const tail = seg(0xfffffff1 + 30, [...data.slice(30), 1, 2]);
  t.equal(g.admit(tail, out).verdict, Admit.Deliver);
  t.same(delivered(tail, out), [1, 2]);
  t.equal(g.admit(seg(0xfffffff1 + 100, [1]), out).verdict, Admit.DropAhead, 'ahead across the wrap');
  g.admit(seg(5001, [], { ack: (0xfffffff1 + 42) >>> 0, fromInitiator: false }), out);
  t.equal(g.unacked(true), 0, 'ACK across the wrap');
  // 2^31 away is ambiguous in sequence space: never delivered.
  t.not(g.admit(seg((g.nextSeq(true) + 0x80000000) >>> 0, [1]), out).verdict, Admit.Deliver);
});

t.test('directions are independent', async (t) => {
  const g = guard();
  t.equal(g.admit(seg(5001, [1, 2], { fromInitiator: false }), out).verdict, Admit.Deliver);
  t.equal(g.admit(seg(1001, [3]), out).verdict, Admit.Deliver);
  t.equal(g.nextSeq(false), 5003);
  t.equal(g.nextSeq(true), 1002);
  g.clear(false);
  t.equal(g.nextSeq(true), 0, 'clear forgets');
});
