// The fail-open bypass of one port pair: the two ports stay members of a kernel bridge whose
// forwarding an nftables rule blocks while a dataplane lives. Capture is not affected: AF_PACKET
// taps see a frame before the bridge does (and a blocked bridge consumes it, so nothing reaches the
// host's stack). Removing the block is the whole bypass: the kernel then bridges the ports like a
// cable, with no process involved. Runs `ip` and `nft`, never on the packet path.
// Must not touch a port pair it was not given, and must leave no bridge behind in fail-closed mode.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';

/** How a pair behaves while no dataplane runs it. */
export type FailMode = 'open' | 'closed';
export const FAIL_MODES: readonly FailMode[] = ['open', 'closed'];

/**
 * Link-local groups the bypass forwards like a cable (LLDP, 802.1X, ...): every bit the kernel lets
 * a bridge forward (STP, pause frames and LACP, bits 0-2, it never does).
 */
const GROUP_FORWARD_MASK = '0xfff8';

/** Names of the kernel objects of one pair: stable across restarts, within IFNAMSIZ (15). */
export function bypassNames(inside: string, outside: string): { bridge: string; table: string } {
  const id = createHash('sha256').update(`${inside}\0${outside}`).digest('hex').slice(0, 8);
  return { bridge: `gkbyp${id}`, table: `gatekeeper_bypass_${id}` };
}

/** The nft script that blocks the bridge's forwarding (and anything the bridge itself would send). */
export function blockScript(table: string): string {
  return [
    `table bridge ${table} {`,
    '  chain forward { type filter hook forward priority -300; policy drop; }',
    '  chain output { type filter hook output priority -300; policy drop; }',
    '}',
  ].join('\n');
}

export class KernelBridge {
  readonly bridge: string;
  readonly table: string;

  constructor(
    readonly inside: string,
    readonly outside: string,
    private readonly run: (cmd: string, args: string[], input?: string) => void = runCommand,
  ) {
    const names = bypassNames(inside, outside);
    this.bridge = names.bridge;
    this.table = names.table;
  }

  /**
   * Fail-open start: the bridge exists with both ports in it and its forwarding blocked. The block
   * goes in before the ports join, so a restart never lets a frame through unchecked; a bridge left
   * by an earlier run is reused (its block is renewed: this is the hand-back from bypass).
   */
  takeOver(): void {
    this.block();
    if (!existsSync(`/sys/class/net/${this.bridge}`)) {
      this.run('ip', ['link', 'add', this.bridge, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0',
        'group_fwd_mask', GROUP_FORWARD_MASK]);
    }
    // Invisible like the ports: no IPv6 link-local address, so the bridge never speaks itself.
    this.run('ip', ['link', 'set', 'dev', this.bridge, 'addrgenmode', 'none']);
    quietIpv6(this.bridge);
    for (const port of [this.inside, this.outside]) this.run('ip', ['link', 'set', 'dev', port, 'master', this.bridge]);
    this.run('ip', ['link', 'set', 'dev', this.bridge, 'up']);
  }

  /**
   * Fail-closed start: no bridge of this pair may forward, so one left by a fail-open run goes, with
   * its block. Without a bridge nothing runs (a start must not pay for nft when there is nothing to undo).
   */
  removeLeftovers(): void {
    if (!existsSync(`/sys/class/net/${this.bridge}`)) return;
    this.run('ip', ['link', 'del', this.bridge]);
    this.unblock();
  }

  block(): void {
    // Delete-then-add in one transaction: a renewed block never has a moment without a rule.
    this.run('nft', ['-f', '-'], `table bridge ${this.table}\ndelete table bridge ${this.table}\n${blockScript(this.table)}\n`);
  }

  unblock(): void {
    this.run('nft', ['-f', '-'], `table bridge ${this.table}\ndelete table bridge ${this.table}\n`);
  }
}

function runCommand(cmd: string, args: string[], input?: string): void {
  execFileSync(cmd, args, { input, stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
}

function quietIpv6(dev: string): void {
  const path = `/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`;
  if (existsSync(path)) writeFileSync(path, '1');
}
