// Modbus inspection between real hosts: Debian's mbpoll in the client namespace talks to a real
// pymodbus server (test/lib/modbus-server.py) through the gatekeeper, once with the hosts' default
// offloads and once with them off. The server's own log and memory are the oracle for what reached
// it; a plain allow rule (no modbus block) shows the same writes do reach it, so the oracle can fail.
// One lab per host setup; the policy is reloaded between cases, never rebuilt.

import t, { type Test } from 'tap';
import { hostOffloadSetups, labAddresses as A, sleep, startLab, type HostOffloads, type RunningLab } from './lib/lab-fixture';
import { ModbusServer, modbusLabPolicy as policy, modbusLabUnavailable } from './lib/modbus-server';
import { ModbusCounter } from './lib/modbus-counts';

type OnViolation = 'reset' | 'exception' | 'drop';

/** Reads of unit 1, holding registers 0-99 and coils 0-15 only. */
const readOnly = (onViolation: OnViolation) => `
    modbus:
      functions: [read]
      units: [1]
      addresses:
        holding-registers: [0-99]
        coils: [0-15]
      on-violation: ${onViolation}`;


/** The writes mbpoll can send: options, values, and the function code it uses. */
const writes = [
  { name: 'write single register', args: ['-t', '4', '-r', '5'], values: ['4242'], fn: 6 },
  { name: 'write multiple registers', args: ['-t', '4', '-r', '5'], values: ['4242', '4243'], fn: 16 },
  { name: 'write single coil', args: ['-t', '0', '-r', '2'], values: ['1'], fn: 5 },
  { name: 'write multiple coils', args: ['-t', '0', '-r', '1'], values: ['0', '1', '0'], fn: 15 },
];

/** mbpoll once against the server: options, then host, then the values to write (none: a read). */
function mbpoll(lab: RunningLab, args: string[], values: string[] = [], host: string = A.server4) {
  const r = lab.client(['mbpoll', '-m', 'tcp', '-1', '-o', '1', ...args, host, ...values], 10_000);
  return { ...r, values: [...r.stdout.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)].map((m) => Number(m[2])) };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

for (const offloads of hostOffloadSetups) {
  t.test(`Modbus through the gatekeeper, host offloads ${offloads}`, { skip: modbusLabUnavailable(['mbpoll']) }, (t) => modbusTests(t, offloads));
}

async function modbusTests(t: Test, offloads: HostOffloads): Promise<void> {
  const lab = await startLab(t, policy(readOnly('reset')), offloads);
  const server = new ModbusServer(lab);
  await server.start();
  const counts = await ModbusCounter.start(lab.lab, 'client-modbus');

  /** Per connection the server saw end since the mark: was it reset? */
  const resets = (mark: number) => server.disconnects(mark).map((error) => /reset/i.test(error ?? ''));

  /** Run `body`, then wait for stragglers and check no write reached the server and its memory is unchanged. */
  async function noWriteReaches(t: Test, body: () => void): Promise<number> {
    const mark = server.mark();
    const before = server.memory();
    body();
    await sleep(300);
    t.same(server.writesReceived(mark), [], 'no write function reached the server');
    t.same(server.memory(), before, 'the server memory is unchanged');
    return mark;
  }

  t.test('reads within the rule pass with the server\'s values', async (t) => {
    const mark = server.mark();
    const regs = mbpoll(lab, ['-a', '1', '-r', '1', '-c', '10', '-t', '4']);
    t.equal(regs.status, 0, regs.stderr);
    t.same(regs.values, range(1000, 10), 'holding registers 0-9');
    const coils = mbpoll(lab, ['-a', '1', '-r', '1', '-c', '8', '-t', '0']);
    t.equal(coils.status, 0, coils.stderr);
    t.same(coils.values, [1, 0, 1, 0, 1, 0, 1, 0], 'coils 0-7');
    t.same(server.executed(mark).map((e) => e.function), [3, 1], 'the server executed both reads');
    t.same(await counts.since(), { violations: {}, held: {}, rule: 0 }, 'no violation counted');
  });

  t.test('on-violation reset: every write is refused with a reset, none reaches the server', async (t) => {
    for (const w of writes) {
      const mark = await noWriteReaches(t, () => {
        const r = mbpoll(lab, ['-a', '1', ...w.args], w.values);
        t.not(r.status, 0, `${w.name}: mbpoll fails`);
        t.match(r.stderr, /reset by peer/i, `${w.name}: the connection was reset (${r.stderr.trim()})`);
      });
      t.same(resets(mark), [true], `${w.name}: the server side was reset too`);
    }
    t.same(await counts.since(), { violations: { function_not_allowed: 4 }, held: {}, rule: 4 }, 'four violations counted, on the rule');
  });

  t.test('on-violation reset: a unit and addresses outside the rule are refused', async (t) => {
    const mark = await noWriteReaches(t, () => {
      for (const args of [['-a', '2', '-r', '1'], ['-a', '1', '-r', '151'], ['-a', '1', '-r', '95', '-c', '10'], ['-a', '1', '-t', '0', '-r', '17']]) {
        const r = mbpoll(lab, args);
        t.not(r.status, 0, `${args.join(' ')}: refused`);
        t.match(r.stderr, /reset by peer/i, `${args.join(' ')}: with a reset`);
      }
    });
    t.same(server.received(mark).adus, [], 'none of the refused reads reached the server');
    t.same(await counts.since(), { violations: { unit_not_allowed: 1, address_not_allowed: 3 }, held: {}, rule: 4 }, 'counted by reason');
  });

  t.test('a read on a new connection after refusals works', async (t) => {
    const r = mbpoll(lab, ['-a', '1', '-r', '91', '-c', '10']);
    t.equal(r.status, 0, r.stderr);
    t.same(r.values, range(1090, 10), 'holding registers 90-99');
    t.same(await counts.since(), { violations: {}, held: {}, rule: 0 }, 'no violation counted');
  });

  t.test('IPv6: reads pass, writes are refused', async (t) => {
    const read = mbpoll(lab, ['-a', '1', '-r', '1', '-c', '3'], [], A.server6);
    t.equal(read.status, 0, read.stderr);
    t.same(read.values, range(1000, 3));
    const mark = server.mark();
    await noWriteReaches(t, () => {
      const r = mbpoll(lab, ['-a', '1', ...writes[1].args], writes[1].values, A.server6);
      t.not(r.status, 0, 'write multiple registers over IPv6 fails');
    });
    t.same(server.entries(mark).filter((e) => e.event === 'connect').map((e) => e.peer), [A.client6], 'the server saw the IPv6 client');
    t.same(await counts.since(), { violations: { function_not_allowed: 1 }, held: {}, rule: 1 }, 'one violation counted');
  });

  t.test('on-violation exception: mbpoll gets the Modbus exception, the server gets nothing', async (t) => {
    await lab.reload(policy(readOnly('exception')));
    const cases = [
      { what: 'write single register', args: ['-a', '1', ...writes[0].args], values: writes[0].values, error: /Illegal function/ },
      { what: 'write single coil', args: ['-a', '1', ...writes[2].args], values: writes[2].values, error: /Illegal function/ },
      { what: 'address outside', args: ['-a', '1', '-r', '151'], values: [], error: /Illegal data address/ },
      // 0B, gateway target device failed to respond; libmodbus calls it "Target device failed to respond".
      { what: 'unit outside', args: ['-a', '2', '-r', '1'], values: [], error: /Target device failed to respond/ },
    ];
    for (const c of cases) {
      const mark = await noWriteReaches(t, () => {
        const r = mbpoll(lab, c.args, c.values);
        t.not(r.status, 0, `${c.what}: mbpoll fails`);
        t.match(r.stderr, c.error, `${c.what}: ${r.stderr.trim()}`);
        t.ok(r.ms < 900, `${c.what}: answered at once (${r.ms} ms), not a timeout`);
      });
      t.same(server.received(mark).adus, [], `${c.what}: no request reached the server`);
      t.same(resets(mark), [true], `${c.what}: the server side was reset`);
    }
    const read = mbpoll(lab, ['-a', '1', '-r', '1', '-c', '2']);
    t.same(read.values, [1000, 1001], 'a read still works');
    t.same(await counts.since(), { violations: { function_not_allowed: 2, address_not_allowed: 1, unit_not_allowed: 1 }, held: {}, rule: 4 },
      'counted by reason');
  });

  t.test('on-violation drop: a refused write times out', async (t) => {
    await lab.reload(policy(readOnly('drop')));
    await noWriteReaches(t, () => {
      const r = mbpoll(lab, ['-a', '1', ...writes[0].args], writes[0].values);
      t.not(r.status, 0, 'mbpoll fails');
      t.match(r.stderr, /timed out/i, r.stderr.trim());
      t.ok(r.ms >= 900, `after mbpoll's 1 s timeout (${r.ms} ms): nothing answered`);
    });
    const read = mbpoll(lab, ['-a', '1', '-r', '1', '-c', '2']);
    t.same(read.values, [1000, 1001], 'a read still works');
    // The client's TCP resends the dropped write (refused as after_violation), and would go on after
    // mbpoll closed the socket: end it, so later cases count only their own.
    lab.client(['ss', '-K', 'dst', A.server4, 'dport', '=', '502']);
    const c = await counts.since();
    const resent = c.violations.after_violation ?? 0;
    t.same(c, { violations: { function_not_allowed: 1, ...(resent > 0 ? { after_violation: resent } : {}) }, held: {}, rule: 1 },
      `the write counted once on the rule, its ${resent} retransmissions by reason only`);
  });

  t.test('monitor mode: writes pass and reach the server', async (t) => {
    await lab.reload(policy(readOnly('reset'), 'monitor'));
    const mark = server.mark();
    const r = mbpoll(lab, ['-a', '1', '-t', '4', '-r', '11'], ['7']);
    t.equal(r.status, 0, r.stderr);
    t.same(server.writesReceived(mark), [6, 6], 'delivered and executed');
    t.equal(server.memory().holding[10], 7, 'holding register 10 written');
    t.same(await counts.since(), { violations: { function_not_allowed: 1 }, held: {}, rule: 1 }, 'the would-be violation counted');
  });

  // The control: without a modbus block the same requests reach the server, so the oracle can fail.
  t.test('a plain allow rule: the writes and the refused reads reach the server', async (t) => {
    await lab.reload(policy(''));
    for (const w of writes) {
      const mark = server.mark();
      const r = mbpoll(lab, ['-a', '1', ...w.args], w.values);
      t.equal(r.status, 0, `${w.name}: ${r.stderr}`);
      t.same(server.executed(mark).map((e) => e.function), [w.fn], `${w.name}: executed as function ${w.fn}`);
    }
    const memory = server.memory();
    t.same(memory.holding.slice(4, 6), [4242, 4243], 'the registers were written');
    t.same(memory.coils.slice(0, 3), [0, 1, 0], 'the coils were written');
    const unit2 = mbpoll(lab, ['-a', '2', '-r', '1', '-c', '2']);
    t.same(unit2.values, [2000, 2001], 'unit 2 answers');
    const beyond = mbpoll(lab, ['-a', '1', '-r', '151']);
    t.same(beyond.values, [1150], 'holding register 150 answers');
    t.same(await counts.since(), { violations: {}, held: {}, rule: 0 }, 'nothing inspected, nothing counted');
  });
}
