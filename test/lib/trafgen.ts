// Frame generators for the lab tests that need more frames than a host's own stack sends: trafgen
// (Debian's netsniff-ng, /usr/sbin/trafgen) configurations written as plain byte lists (IPv4 and TCP
// checksums computed by trafgen for every frame), and one run of it in a lab namespace. Must not be
// used outside the lab's namespaces and benchmarking addresses.

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../../appliance/lab/lab';

export const TRAFGEN = '/usr/sbin/trafgen';

export function trafgenUnavailable(): string | false {
  return existsSync(TRAFGEN) ? false : `needs ${TRAFGEN} (apt-get install netsniff-ng)`;
}

const bytes = (values: number[]): string => values.map((v) => `0x${v.toString(16).padStart(2, '0')}`).join(', ');
const mac = (text: string): string => bytes(text.split(':').map((h) => parseInt(h, 16)));
const ip = (text: string): string => bytes(text.split('.').map(Number));

/** One UDP datagram `src` → `dst`:`dport`, 64 bytes on the wire; the same frame every time. */
export function udpFrame(srcMac: string, dstMac: string, src: string, dst: string, dport: number): string {
  const payload = 18; // 14 + 20 + 8 + 18 = 60 bytes, the smallest Ethernet frame without its FCS
  return `{
  ${mac(dstMac)}, ${mac(srcMac)}, c16(0x0800),
  0x45, 0x00, c16(${20 + 8 + payload}), c16(0), c16(0x4000), 64, 17, csumip(14, 33), ${ip(src)}, ${ip(dst)},
  c16(40000), c16(${dport}), c16(${8 + payload}), c16(0),
  fill(0x00, ${payload})
}`;
}

/**
 * SYNs to `dst`:`dport` from random sources in 198.19.0.0/16 (inside 198.18.0.0/15, away from the
 * lab's 198.18.1.0/24) with random source ports and sequence numbers: a spoofed SYN flood.
 */
export function synFlood(srcMac: string, dstMac: string, dst: string, dport: number): string {
  return `{
  ${mac(dstMac)}, ${mac(srcMac)}, c16(0x0800),
  0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33), 198, 19, drnd(2), ${ip(dst)},
  drnd(2), c16(${dport}), drnd(4), c32(0), 0x50, 0x02, c16(64240), csumtcp(14, 34), c16(0)
}`;
}

export interface TrafgenRun {
  /** Frames trafgen says it sent. */
  sent: number;
  ms: number;
}

/**
 * Send `count` frames of `config` out of `dev` in namespace `ns`, at `pps` frames per second (or as
 * fast as it can), from one CPU; resolves when it is done.
 */
export async function trafgen(lab: Lab, ns: string, config: string, count: number, pps?: number, dev = 'eth0'): Promise<TrafgenRun> {
  const file = join(lab.dir, `trafgen-${Date.now()}.cfg`);
  writeFileSync(file, config);
  const args = [TRAFGEN, '--dev', dev, '--conf', file, '--num', String(count), '--cpus', '1', '--no-sock-mem', '--notouch-irq',
    ...(pps === undefined ? [] : ['--rate', `${pps}pps`])];
  const started = Date.now();
  const child = lab.spawn(ns, args);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const ms = Date.now() - started;
  if (code !== 0) throw new Error(`trafgen failed (${code}): ${out}`);
  // "  60000 packets outgoing" in its summary.
  const m = /(\d+) packets outgoing/.exec(out);
  return { sent: m === null ? NaN : Number(m[1]), ms };
}

/** A device counter of `dev` in namespace `ns` (/sys/class/net/DEV/statistics/NAME). */
export function deviceCounter(ns: string, dev: string, name: string): number {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${dev}/statistics/${name}`], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}
