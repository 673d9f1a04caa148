// `gatekeeper replay` on captures: the record times drive idle timeouts, and --inside says which
// frames came in on the inside port (captures whose frames all share MACs, from a SPAN port or a
// router, defeat learning sides from MACs); the summary says how sides were decided.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseInside, replayPcap, type ReplayFrame } from '../appliance/dataplane/offline/replay';
import { cliPath } from '../appliance/paths';
import { loadPolicyText } from '../appliance/policy/load';
import { frame, pcapFile, type FrameSpec } from './lib/frames';

const pcaps = resolve(__dirname, '../../shared/conformance/pcaps');
const dir = mkdtempSync(join(tmpdir(), 'gatekeeper-replay-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const CLIENT = '10.1.0.10';
const SERVER = '10.1.0.3';
/** Every frame between the router's two MACs, whichever way it travels. */
const ROUTER = { srcMac: [0x02, 0, 0, 0, 0, 0x01], dstMac: [0x02, 0, 0, 0, 0, 0x02] };

const policyText = `version: 1
default: deny
rules:
  - name: dns
    from: ${CLIENT}
    to: ${SERVER}
    service: udp/53
    action: allow
flows:
  udp-idle: 2s
`;
const loaded = loadPolicyText(policyText, 'replay.yaml');
if (!loaded.ok) throw new Error('test policy refused');
const policy = loaded.policy;
const policyPath = join(dir, 'replay.yaml');
writeFileSync(policyPath, policyText);

const query = (s: Partial<FrameSpec> = {}) => frame({ src: CLIENT, dst: SERVER, proto: 'udp', sport: 5000, dport: 53, ...ROUTER, ...s });
const answer = (s: Partial<FrameSpec> = {}) => frame({ src: SERVER, dst: CLIENT, proto: 'udp', sport: 53, dport: 5000, ...ROUTER, ...s });

function capture(name: string, records: { timeMs: number; frame: Buffer }[]): string {
  const path = join(dir, name);
  writeFileSync(path, pcapFile(records));
  return path;
}

async function replay(path: string, inside: string[] = []) {
  const frames: ReplayFrame[] = [];
  const parsed = parseInside(inside);
  if (typeof parsed === 'string') throw new Error(parsed);
  const summary = await replayPcap(path, policy, (f) => frames.push(f), { inside: parsed });
  return { summary, frames };
}

const T0 = Date.UTC(2026, 2, 1, 10, 0, 0);
const sharedMacs = capture('shared-macs.pcap', [
  { timeMs: T0, frame: query() },
  { timeMs: T0 + 5, frame: answer() },
]);

t.test('frames sharing MACs: learned from MACs every reply is wrong_port, and the summary says why', async (t) => {
  const { summary, frames } = await replay(sharedMacs);
  t.match(frames[0], { side: 'outside', verdict: 'forward', rule: 'dns' });
  t.match(frames[1], { side: 'outside', verdict: 'drop', reason: 'wrong_port' });
  t.match(summary.sides, /learned from MAC addresses.*--inside/);
});

t.test('--inside with an address, a CIDR or a MAC places the frames from it on the inside port', async (t) => {
  for (const inside of [[SERVER], ['10.1.0.0/29'], ['2001:db8::/32', `${SERVER}/32`]]) {
    const { summary, frames } = await replay(sharedMacs, inside);
    t.match(frames[0], { side: 'outside', verdict: 'forward', rule: 'dns' }, `query, --inside ${inside.join(' ')}`);
    t.match(frames[1], { side: 'inside', verdict: 'forward', rule: 'dns' }, 'the reply follows the flow');
    t.equal(summary.sides, `frames from ${inside.join(', ')} came in on the inside port, all others on the outside`);
  }
  const byMac = capture('by-mac.pcap', [
    { timeMs: T0, frame: query() },
    { timeMs: T0 + 5, frame: answer({ srcMac: [0x02, 0, 0, 0, 0, 0x03] }) },
  ]);
  const { frames } = await replay(byMac, ['02:00:00:00:00:03']);
  t.match(frames[1], { side: 'inside', verdict: 'forward' }, 'a source MAC given as inside');
});

t.test('--inside refuses what it cannot read', async (t) => {
  for (const bad of ['10.1.0.0/33', 'plc', '10.1.0.0/', '10.1.0.0/8/1', '02:00:00:00:00']) {
    t.match(parseInside([bad]), /not an IPv4\/IPv6 address, CIDR or MAC address/, bad);
  }
  t.equal(parseInside([]), null, 'none given: sides are learned');
});

t.test('record times drive idle timeouts: a reply after the flow idled out finds no flow', async (t) => {
  const path = capture('idle.pcap', [
    { timeMs: T0, frame: query() },
    { timeMs: T0 + 1_500, frame: answer() },
    { timeMs: T0 + 1_600, frame: query({ sport: 5001 }) },
    // udp-idle is 2 s: this reply comes 3 s after the query.
    { timeMs: T0 + 4_600, frame: answer({ dport: 5001 }) },
  ]);
  const { frames } = await replay(path, [SERVER]);
  t.match(frames[1], { verdict: 'forward', rule: 'dns' }, 'within the idle timeout');
  t.match(frames[3], { side: 'inside', verdict: 'drop', rule: 'default', reason: 'policy' },
    'after it: judged as a new flow from the server, which the policy denies');
});

t.test('the shared Modbus capture: --inside the PLCs decides like MAC learning does', { skip: !existsSync(pcaps) && 'no ../shared' }, async (t) => {
  const plc = loadPolicyText(`version: 1
default: deny
rules:
  - name: master-polls-plc
    from: 10.0.0.57
    to: 10.0.0.3
    service: modbus
    action: allow
`, 'modbus.yaml');
  if (!plc.ok) throw new Error('modbus policy refused');
  const run = async (inside: string[]) => {
    const frames: ReplayFrame[] = [];
    const parsed = parseInside(inside);
    if (typeof parsed === 'string') throw new Error(parsed);
    await replayPcap(join(pcaps, 'modbus.pcap'), plc.policy, (f) => frames.push(f), { inside: parsed });
    return frames;
  };
  const learned = await run([]);
  const told = await run(['10.0.0.3', '10.0.0.8', '10.0.0.9']);
  t.same(told, learned, 'same side and verdict for every frame');
  t.match(told[5], { side: 'inside', verdict: 'forward', rule: 'master-polls-plc' }, 'the PLC reply follows the flow');
});

t.test('gatekeeper replay --inside: per-frame sides and the summary line', async (t) => {
  const run = (...args: string[]) => spawnSync(process.execPath, [cliPath, 'replay', ...args], { encoding: 'utf8', timeout: 60_000 });
  const perFrame = run(sharedMacs, '--policy', policyPath, '--inside', `${SERVER}/32`);
  t.equal(perFrame.status, 0, perFrame.stderr);
  t.match(perFrame.stdout, /^2\tinside\tforward\trule=dns/m);
  const summary = run(sharedMacs, '--policy', policyPath, '--summary', '--inside', SERVER, '--inside', '10.9.0.0/16');
  t.match(summary.stdout, new RegExp(`sides: frames from ${SERVER}, 10\\.9\\.0\\.0/16 came in on the inside port`));
  const bad = run(sharedMacs, '--policy', policyPath, '--inside', 'plc');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--inside plc: not an IPv4\/IPv6 address, CIDR or MAC address/);
});

t.test('gatekeeper replay --policy with a modbus block: Modbus violations per frame, by reason and rule', async (t) => {
  const otCapture = resolve(__dirname, '../../shared/conformance/ot/modbus_test_data_part1.pcap');
  const readOnly = (mode: string) => {
    const path = join(dir, `read-only-${mode}.yaml`);
    writeFileSync(path, `version: 1
mode: ${mode}
default: deny
rules:
  - name: reads
    from: 10.0.0.0/8
    to: 10.0.0.0/8
    service: modbus
    action: allow
    modbus:
      functions: [read]
flows:
  pickup-established: true
`);
    return path;
  };
  const run = (...args: string[]) => spawnSync(process.execPath, [cliPath, 'replay', ...args], { encoding: 'utf8', timeout: 60_000 });
  const enforced = run(otCapture, '--policy', readOnly('enforce'));
  t.equal(enforced.status, 0, enforced.stderr);
  // Frame 8 is a diagnostics request (function 8, see the capture's .ot.tsv): the first request of its flow.
  t.match(enforced.stdout, /^8\toutside\treject\trule=reads reason=inspect app=function_not_allowed$/m, 'refused as not a read');
  t.match(enforced.stdout, /^9\tinside\treject\trule=reads reason=inspect app=after_violation$/m, 'nothing more on that flow');
  t.match(enforced.stdout, /^ {2}reads \(allow\): \d+ packets, \d+ bytes, \d+ violations$/m, 'violations per rule');
  t.match(enforced.stdout, /^ {2}application layer function_not_allowed: \d+$/m, 'and by reason');
  const monitored = run(otCapture, '--policy', readOnly('monitor'));
  t.match(monitored.stdout, /^8\toutside\tforward\trule=reads app=function_not_allowed$/m, 'monitor mode forwards the would-be violation');
  t.notMatch(monitored.stdout, /after_violation/, 'and goes on judging every request');
});
