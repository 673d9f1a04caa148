// Crafted Modbus/TCP streams through the gatekeeper between real hosts: segment boundaries inside a
// request, a read and a write in one segment, an overlapping retransmission carrying other bytes, and
// segments out of order, and (last, it writes the server's registers) eight pipelined writes in one
// TSO super-frame, one of them refused (test/lib/modbus-crafted.py sends them from the client namespace). A real
// pymodbus server is the oracle: its log of the bytes its TCP delivered and the requests it executed
// must never show a write. The same streams under a plain allow rule show that the writes do reach it
// where TCP lets them, so the oracle can fail. One lab per host setup; the policy is reloaded between
// the two parts.

import t, { type Test } from 'tap';
import { join } from 'node:path';
import { hostOffloadSetups, labAddresses as A, sleep, startLab, type HostOffloads, type RunningLab } from './lib/lab-fixture';
import { ModbusServer, modbusLabPolicy as policy, modbusLabUnavailable, python } from './lib/modbus-server';
import { ModbusCounter, type ModbusCounts } from './lib/modbus-counts';

const crafted = join(__dirname, 'lib', 'modbus-crafted.py');


const readsOnly = `
    modbus:
      functions: [read]
      units: [1]
      on-violation: reset`;

/** The crafted read (holding registers 0-1 of unit 1) and write (holding register 4 := 0x1111) requests. */
const READ_HEX = '000100000006010300000002';
const WRITE_HEX = '000200000006010600041111';
const READ_FUNCTION = 3;
const WRITE_FUNCTION = 6;

interface CraftedResult {
  responses: string[];
  reset: boolean;
  steps?: Record<string, number>;
  error?: string;
}

function send(lab: RunningLab, name: string, v6 = false): CraftedResult {
  const r = lab.client([python, crafted, name, v6 ? A.server6 : A.server4, v6 ? A.client6 : A.client4], 10_000);
  if (r.status !== 0) throw new Error(`modbus-crafted.py ${name} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as CraftedResult;
}

/** The answer to the crafted read: its transaction id, function 3, two registers 1000 and 1001. */
const readAnswer = '00010000000701030403e803e9';

for (const offloads of hostOffloadSetups) {
  t.test(`crafted Modbus streams, host offloads ${offloads}`, { skip: modbusLabUnavailable(['nft']) }, (t) => streamTests(t, offloads));
}

async function streamTests(t: Test, offloads: HostOffloads): Promise<void> {
  const lab = await startLab(t, policy(''), offloads);
  const server = new ModbusServer(lab);
  await server.start();
  const counts = await ModbusCounter.start(lab.lab, 'client-modbus');
  const only = (violations: Record<string, number>, held: Record<string, number> = {}): ModbusCounts =>
    // A follow-up refusal (after_violation) counts by reason but not again on the rule.
    ({ violations, held, rule: Object.entries(violations).reduce((a, [reason, n]) => a + (reason === 'after_violation' ? 0 : n), 0) });

  /**
   * Run the crafted case and return what the server got since. `settle` waits for stragglers, for a
   * case that expects something not to arrive; an answer the client saw was logged before it was sent.
   */
  async function run(name: string, v6 = false, settle = false) {
    const mark = server.mark();
    const before = server.memory();
    const result = send(lab, name, v6);
    if (settle) await sleep(300);
    return { result, mark, before, writes: server.writesReceived(mark), received: server.received(mark), executed: server.executed(mark) };
  }

  // The control first: without inspection the crafted writes reach the server where its TCP takes them.
  t.test('plain allow rule: the crafted writes reach the server', async (t) => {
    for (const name of ['split-mbap-write', 'split-pdu-write', 'pipelined', 'overlap-badsum', 'ahead-write']) {
      const r = await run(name);
      t.same(r.writes, [WRITE_FUNCTION, WRITE_FUNCTION], `${name}: the write was delivered and executed (${JSON.stringify(r.result)})`);
    }
    for (const name of ['split-pdu-write', 'overlap-badsum', 'ahead-write']) {
      const r = await run(name, true);
      t.same(r.writes, [WRITE_FUNCTION, WRITE_FUNCTION], `${name} over IPv6: the write was delivered and executed`);
    }
    const overlap = await run('overlap', false, true);
    t.same(overlap.writes, [], 'overlap: the server\'s TCP keeps the first copy of the bytes, the read');
    t.same(overlap.result.responses, [readAnswer], 'overlap: the read is answered');
    const ahead = await run('ahead-read');
    t.same(ahead.result.steps, { after_second_half: 0, after_first_half: 1, after_retransmission: 1 },
      'ahead-read: the half sent ahead was forwarded, the server\'s TCP answered once the first half came');
    t.same(await counts.since(), only({}), 'nothing inspected, nothing counted');
  });

  t.test('inspected', async (t) => {
    await lab.reload(policy(readsOnly));

    async function noWrite(t: Test, name: string, v6 = false) {
      const r = await run(name, v6, true);
      t.same(r.writes, [], `${name}: no write reached the server`);
      t.same(server.memory(), r.before, `${name}: the server memory is unchanged`);
      t.comment(`${name}: client saw ${JSON.stringify(r.result)}; server executed ${JSON.stringify(r.executed.map((e) => e.function))}, ` +
        `left over ${JSON.stringify([...r.received.partial.values()])}`);
      return r;
    }

    t.test('a read split between the MBAP header and the PDU is answered, a write is refused', async (t) => {
      const read = await run('split-mbap-read');
      t.same(read.result.responses, [readAnswer], 'read answered');
      t.same(read.received.adus.map((a) => a.hex), [READ_HEX], 'the server got the read whole');
      const write = await noWrite(t, 'split-mbap-write');
      t.ok(write.result.reset, 'the write\'s connection was reset');
      t.same(await counts.since(), only({ function_not_allowed: 1 }), 'the write counted');
    });

    t.test('a read split inside the PDU is answered, a write is refused', async (t) => {
      const read = await run('split-pdu-read');
      t.same(read.result.responses, [readAnswer], 'read answered');
      const write = await noWrite(t, 'split-pdu-write');
      t.ok(write.result.reset, 'the write\'s connection was reset');
      t.same(await counts.since(), only({ function_not_allowed: 1 }), 'the write counted');
    });

    t.test('IPv6: split, overlapping and out-of-order writes are refused, a split read is answered', async (t) => {
      const read = await run('split-pdu-read', true);
      t.same(read.result.responses, [readAnswer], 'read answered');
      for (const name of ['split-pdu-write', 'overlap-badsum', 'ahead-write']) {
        const write = await noWrite(t, name, true);
        t.ok(write.result.reset, `${name}: the connection was reset`);
      }
      t.same(await counts.since(), only({ function_not_allowed: 2, retransmission_differs: 1 }, { segment_ahead: 1 }), 'counted by reason');
    });

    t.test('a read and a write in one segment: the write does not reach the server', async (t) => {
      const r = await noWrite(t, 'pipelined');
      t.ok(r.result.reset, 'the connection was reset');
      // Whether the read in front of the write is answered is the gatekeeper's choice; nothing else may be.
      t.ok(r.result.responses.every((hex) => hex === readAnswer), `only the read may be answered (${r.result.responses.length} answers)`);
      t.ok(r.received.adus.every((adu) => adu.hex === READ_HEX), 'only the read may reach the server');
      t.same(await counts.since(), only({ function_not_allowed: 1 }), 'the write counted');
    });

    t.test('an overlapping retransmission with other bytes: the write does not reach the server', async (t) => {
      const r = await noWrite(t, 'overlap');
      // The two segments leave back to back; the server's ACK of the read can still pass the gatekeeper
      // before the second one. Bytes the server acknowledged are not compared: its TCP discards them.
      if (r.result.reset) {
        // The read can reach the server before the copy is refused: its answer then comes after the
        // refusal and is refused too, as a follow-up (CI saw the server execute the read).
        const c = await counts.since();
        const followUps = c.violations.after_violation ?? 0;
        t.same(c, only({ retransmission_differs: 1, ...(followUps > 0 ? { after_violation: followUps } : {}) }),
          'compared with the bytes checked: refused, counted');
        if (followUps > 0) t.same(r.executed.map((e) => e.function), [READ_FUNCTION], 'a refused follow-up is the server\'s answer to the read it executed');
      } else {
        t.same(r.result.responses, [readAnswer], 'the read was acknowledged first, the copy behind it passed uncompared and was answered as the read');
        t.same(await counts.since(), only({}), 'nothing counted');
      }
    });

    t.test('a read with a bad checksum, then a write at the same sequence number: the write does not reach the server', async (t) => {
      const r = await noWrite(t, 'overlap-badsum');
      t.ok(r.result.reset, 'the differing retransmission reset the connection');
      t.same(await counts.since(), only({ retransmission_differs: 1 }), 'counted as a differing retransmission');
    });

    t.test('segments out of order: a read is held until it comes in order, a write never reaches the server', async (t) => {
      const read = await run('ahead-read');
      t.same(read.result.steps, { after_second_half: 0, after_first_half: 0, after_retransmission: 1 },
        'the half sent ahead was held, the read answered once its second half came again in order');
      t.same(read.result.responses, [readAnswer], 'read answered');
      const write = await noWrite(t, 'ahead-write');
      t.ok(write.result.reset, 'the write\'s connection was reset');
      const left = [...write.received.partial.values()].join('');
      t.ok(WRITE_HEX.startsWith(left) && left.length < WRITE_HEX.length,
        `the server got at most a strict prefix of the write (${left || 'nothing'}), the bytes in order before it`);
      t.same(await counts.since(), only({ function_not_allowed: 1 }, { segment_ahead: 2 }), 'each segment ahead held, not a violation; the write counted');
    });
    t.test('a super-frame of pipelined requests is inspected request by request', async (t) => {
      // Last: these writes change the server's registers. Writes to holding registers 0-99 allowed: eight 213-byte writes in one send make one super-frame with offloads.
      await lab.reload(policy(`
    modbus:
      functions: [read, write-multiple-registers]
      units: [1]
      addresses:
        holding-registers: [0-99]`));
      const before = await lab.lab.freshStats();
      const good = await run('superframe-writes');
      t.equal(good.result.responses.length, 8, 'all eight writes answered');
      t.same(good.executed.map((e) => e.function), Array(8).fill(16), 'and executed');
      const bad = await run('superframe-bad', false, true);
      t.ok(bad.result.reset, 'the last write (address 500) refused: reset');
      if (offloads === 'on') {
        t.same(bad.executed.map((e) => e.function), [], 'none of the eight writes of that super-frame reached the server');
      } else {
        // MTU-sized segments (the ports' GRO is off while the kernel fast path runs): each is judged
        // as it comes, so the writes wholly in the segments before the refused one were executed.
        const executed = bad.executed.map((e) => e.function);
        t.ok(executed.length < 8 && executed.every((f) => f === 16), `the refused write and those after it did not reach the server (${executed.length} before it did)`);
      }
      const after = await lab.lab.freshStats();
      const frames = after.ports.outside.rx_packets - before.ports.outside.rx_packets;
      const segments = after.ports.outside.rx_segments - before.ports.outside.rx_segments;
      if (offloads === 'on') t.ok(segments > frames, `the requests came as super-frames (${frames} frames for ${segments} segments)`);
      t.same(await counts.since(), only({ address_not_allowed: 1 }), 'the one refused request counted');
      await lab.reload(policy(readsOnly));
    });
  });
}
