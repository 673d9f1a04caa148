// One appliance data port: a libpcap handle (through `cap`) used both to capture and to send.
// Linux never hands a packet socket the frames it sent itself, so what we forward out of a port is
// not captured again there; frames from the port's own MAC are dropped as a second guard.

import { Cap } from 'cap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** Capture/send buffer: larger than any frame once offloads are off (snaplen in cap is 65535). */
const FRAME_BUFFER = 65536;
/** Kernel ring per port: absorbs bursts while the event loop is busy. */
const RING_BYTES = 32 * 1024 * 1024;
/** Offloads that would hand us frames larger than the MTU or merge frames together. */
const OFFLOADS = ['gro', 'gso', 'tso', 'lro'] as const;

export interface PortPreparation {
  /** Offloads that could not be turned off (usually fixed off on this driver: harmless). */
  offloadsNotChanged: string[];
  mtu: number;
}

export class Port {
  readonly buffer: Buffer = Buffer.alloc(FRAME_BUFFER);
  readonly mac = new Uint8Array(6);
  private readonly cap = new Cap();
  private opened = false;

  constructor(readonly name: string) {}

  /** Refuse a port that cannot be a transparent data port, then silence the kernel on it. */
  prepare(): PortPreparation {
    const sys = `/sys/class/net/${this.name}`;
    if (!existsSync(sys)) throw new Error(`interface ${this.name} does not exist`);
    if (existsSync(`${sys}/master`)) {
      throw new Error(`interface ${this.name} is enslaved to a bridge or bond; the gatekeeper must own it alone`);
    }
    // No addresses, no ARP, no IPv6 autoconfiguration: the appliance must never speak on a data port.
    run('ip', ['addr', 'flush', 'dev', this.name]);
    const ipv6 = `/proc/sys/net/ipv6/conf/${this.name}/disable_ipv6`;
    if (existsSync(ipv6)) writeFileSync(ipv6, '1');
    run('ip', ['link', 'set', 'dev', this.name, 'arp', 'off', 'promisc', 'on', 'up']);
    const offloadsNotChanged: string[] = [];
    for (const feature of OFFLOADS) {
      try {
        run('ethtool', ['-K', this.name, feature, 'off']);
      } catch {
        offloadsNotChanged.push(feature);
      }
    }
    const mac = readFileSync(`${sys}/address`, 'utf8').trim().split(':');
    for (let i = 0; i < 6; i++) this.mac[i] = parseInt(mac[i], 16);
    return { offloadsNotChanged, mtu: Number(readFileSync(`${sys}/mtu`, 'utf8')) };
  }

  /** Start capturing; `onFrame(length, truncated)` sees the frame in `this.buffer`. */
  open(onFrame: (length: number, truncated: boolean) => void): void {
    this.cap.open(this.name, '', RING_BYTES, this.buffer);
    this.cap.on('packet', onFrame);
    this.opened = true;
  }

  /** Send `length` bytes of `frame`; false when the kernel refused it (counted by the caller). */
  send(frame: Buffer, length: number): boolean {
    try {
      this.cap.send(frame, length);
      return true;
    } catch {
      return false;
    }
  }

  /** True when the frame in `frame` was sent from this port's own MAC address. */
  isOwnFrame(frame: Uint8Array): boolean {
    const mac = this.mac;
    return frame[6] === mac[0] && frame[7] === mac[1] && frame[8] === mac[2] &&
      frame[9] === mac[3] && frame[10] === mac[4] && frame[11] === mac[5];
  }

  /** Link state as the kernel reports it ("up", "down", ...). */
  operState(): string {
    try {
      return readFileSync(`/sys/class/net/${this.name}/operstate`, 'utf8').trim();
    } catch {
      return 'missing';
    }
  }

  close(): void {
    if (this.opened) this.cap.close();
    this.opened = false;
  }
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
