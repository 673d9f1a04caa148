// Fuzz: about a million mutated frames through the engine, seeded from the shared captures (bytes
// flipped, cut short, grown, header lengths and VLAN tags rewritten), in enforce and monitor mode with
// rules that allow, deny and reject, idle timeouts firing along the way. Zero exceptions, and every
// frame gets a verdict; the decoder's counters say what it refused.

import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Engine } from '../appliance/dataplane/engine';
import { Verdict } from '../appliance/dataplane/verdict';
import { loadPolicyText } from '../appliance/policy/load';
import type { CompiledPolicy } from '../appliance/policy/types';
import { prng } from '../appliance/policy/generate';

const SEED = Number(process.env.GATEKEEPER_FUZZ_SEED ?? 20261201);
const FRAMES = Number(process.env.GATEKEEPER_FUZZ_FRAMES ?? 1_000_000);
/** Bounded time: stop early on a slow machine rather than overrun CI. */
const BUDGET_MS = 90_000;

const pcapDir = resolve(__dirname, '../../shared/conformance/pcaps');

/** The frames of a classic pcap file (little or big endian, any link type treated as Ethernet). */
function pcapFrames(path: string): Uint8Array[] {
  const data = readFileSync(path);
  const magic = data.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (at: number) => (little ? data.readUInt32LE(at) : data.readUInt32BE(at));
  const frames: Uint8Array[] = [];
  for (let at = 24; at + 16 <= data.length;) {
    const length = u32(at + 8);
    at += 16;
    if (at + length > data.length) break;
    frames.push(new Uint8Array(data.subarray(at, at + length)));
    at += length;
  }
  return frames;
}

function policy(mode: 'enforce' | 'monitor'): CompiledPolicy {
  const text = `
version: 1
mode: ${mode}
rules:
  - { name: reject-telnet, from: any, to: any, service: tcp/23, action: reject }
  - { name: modbus, from: any, to: any, service: [tcp/502, udp/502], action: allow, log: true }
  - { name: dnp3, from: any, to: any, service: [tcp/20000, udp/20000], action: allow }
  - { name: ping, from: any, to: any, service: [icmp/echo-request, icmpv6/echo-request], action: allow }
  - { name: reject-udp, from: any, to: any, service: udp/1-1024, action: reject }
  - { name: gre, from: any, to: any, service: gre, action: allow }
default: deny
flows:
  max-flows: 4096
  pickup-established: true
l2:
  allow: [lldp]
`;
  const r = loadPolicyText(text, 'fuzz.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const seeds = readdirSync(pcapDir).filter((f) => f.endsWith('.pcap')).sort().flatMap((f) => pcapFrames(join(pcapDir, f)));

t.test(`mutated frames through the engine (seed ${SEED})`, async (t) => {
  t.ok(seeds.length > 100, `seed frames from the shared captures: ${seeds.length}`);
  const rnd = prng(SEED);
  const engines = [new Engine(policy('enforce'), 1), new Engine(policy('monitor'), 1)];
  const buffer = new Uint8Array(9216);
  const verdicts = [0, 0, 0];
  const problems: string[] = [];
  const started = Date.now();
  let now = 1_000_000;
  let i = 0;
  for (; i < FRAMES; i++) {
    if ((i & 0xfff) === 0 && Date.now() - started > BUDGET_MS) break;
    const seed = seeds[Math.floor(rnd() * seeds.length)];
    let length = Math.min(seed.length, buffer.length);
    buffer.set(seed.subarray(0, length));
    const kind = Math.floor(rnd() * 8);
    if (kind <= 2) {
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) buffer[Math.floor(rnd() * length)] = Math.floor(rnd() * 256);
    } else if (kind === 3) {
      length = Math.floor(rnd() * length);
    } else if (kind === 4) {
      const grow = Math.floor(rnd() * 64);
      for (let k = 0; k < grow && length < buffer.length; k++) buffer[length++] = Math.floor(rnd() * 256);
    } else if (kind === 5 && length > 18) {
      // A length field of the first headers: IPv4 total length / IHL, IPv6 payload length, TCP offset.
      const at = [14, 16, 17, 18, 19, 46, 18 + 14][Math.floor(rnd() * 7)];
      if (at < length) buffer[at] = Math.floor(rnd() * 256);
    } else if (kind === 6 && length + 4 <= buffer.length && length > 14) {
      // One more VLAN tag, or a tag claiming another EtherType.
      buffer.copyWithin(16, 12, length);
      buffer[12] = 0x81;
      buffer[13] = 0x00;
      buffer[14] = Math.floor(rnd() * 256);
      buffer[15] = Math.floor(rnd() * 256);
      length += 4;
    }
    now += Math.floor(rnd() * 50);
    // Now and then time jumps past the idle timeouts, so flows and fragments expire mid-run.
    if (rnd() < 0.0002) now += 120_000;
    const engine = engines[i & 1];
    const side = rnd() < 0.5 ? 0 : 1;
    try {
      const verdict = engine.process(buffer, length, side, now).verdict;
      if (verdict !== Verdict.Forward && verdict !== Verdict.Drop && verdict !== Verdict.Reject) problems.push(`frame ${i}: verdict ${verdict}`);
      else verdicts[verdict]++;
      if ((i & 0xffff) === 0) {
        engine.flows.purgeIdle();
        engine.fragments.purgeIdle();
        engine.ruleTotals();
      }
    } catch (err) {
      problems.push(`frame ${i} (seed kind ${kind}, ${length} bytes): ${(err as Error).stack?.split('\n').slice(0, 4).join(' | ')}`);
      if (problems.length > 5) break;
    }
  }
  const elapsed = Date.now() - started;
  t.same(problems, [], 'no exception, a verdict for every frame');
  t.ok(i >= Math.min(FRAMES, 200_000), `${i} frames in ${elapsed} ms`);
  t.ok(verdicts[Verdict.Forward] > 0 && verdicts[Verdict.Drop] > 0 && verdicts[Verdict.Reject] > 0,
    `every verdict reached: forward ${verdicts[0]}, drop ${verdicts[1]}, reject ${verdicts[2]}`);
  const decodeErrors = engines.reduce((n, e) => n + e.counters[0].decodeErrors.reduce((a, b) => a + b, 0) + e.counters[1].decodeErrors.reduce((a, b) => a + b, 0), 0);
  t.ok(decodeErrors > 0, `the decoder refused mutated frames and said so: ${decodeErrors} decode errors counted`);
});
