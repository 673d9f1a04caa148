// Link-fault pass-through (--link-fault-pass-through): when one port loses carrier, the other port is
// taken down, so the switch and the asset both see the cut (as they would through a cable) and their
// own redundancy reacts; when the carrier returns, the other port comes back up. Polls the ports'
// kernel operstate from a timer, never on the packet path. Only ports it took down itself are brought
// up again: an operator's `ip link set down` is left alone.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** How often carrier is read: a cut is mirrored within this (plus the kernel's own carrier delay). */
export const LINK_POLL_MS = 100;

export interface LinkPort {
  name: string;
  /** Administratively up (IFF_UP) but without carrier: the cable or the peer is gone. */
  carrierLost(): boolean;
}

const IFF_UP = 0x1;

/** A kernel interface as the mirror sees it (sysfs). */
export function kernelLink(name: string): LinkPort {
  const read = (file: string): string => {
    try {
      return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  return {
    name,
    carrierLost: () => (Number(read('flags')) & IFF_UP) !== 0 && /^(down|lowerlayerdown)$/.test(read('operstate')),
  };
}

export interface LinkFaultEvents {
  /** `mirrored` was taken down because `lost` lost its carrier (or came back up with it). */
  mirrored(lost: string, mirrored: string, down: boolean): void;
}

export class LinkFaultMirror {
  /** Index of the port we took down because the other lost carrier, or -1. */
  private forcedDown = -1;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ports: readonly [LinkPort, LinkPort],
    private readonly events: LinkFaultEvents,
    private readonly setLink: (name: string, up: boolean) => void = setLinkWithIp,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.check(), LINK_POLL_MS);
    this.timer.unref();
  }

  /** Stops polling and brings up a port this mirror took down (the dataplane is ending). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.forcedDown >= 0) this.release();
  }

  /** One look at both ports (exposed for tests). */
  check(): void {
    if (this.forcedDown >= 0) {
      // The port that lost carrier is the other one: once it is back, so is its mirror.
      const lost = 1 - this.forcedDown;
      if (!this.ports[lost].carrierLost()) this.release();
      return;
    }
    for (let i = 0; i < 2; i++) {
      if (!this.ports[i].carrierLost()) continue;
      const other = 1 - i;
      if (this.ports[other].carrierLost()) return; // both gone: nothing to mirror
      this.forcedDown = other;
      this.setLink(this.ports[other].name, false);
      this.events.mirrored(this.ports[i].name, this.ports[other].name, true);
      return;
    }
  }

  private release(): void {
    const port = this.forcedDown;
    this.forcedDown = -1;
    this.setLink(this.ports[port].name, true);
    this.events.mirrored(this.ports[1 - port].name, this.ports[port].name, false);
  }
}

function setLinkWithIp(name: string, up: boolean): void {
  execFileSync('ip', ['link', 'set', 'dev', name, up ? 'up' : 'down'], { stdio: 'ignore', timeout: 5000 });
}
