// What management knows about one port pair: its hello, its latest counter snapshot, rates computed
// by differencing successive snapshots, and one history point per snapshot for the last 15 minutes.

import type { DataplaneStats, PortStats } from '../../ipc/stats';
import type { HelloMessage } from '../../ipc/messages';
import type { HistoryPoint, PairStatus, PortStatus } from './types';

export const HISTORY_SECONDS = 15 * 60;

interface PortRates {
  rxPps: number;
  rxBps: number;
}

const noRates = (): PairStatus['rates'] => ({ allowedPps: 0, deniedPps: 0, rxPps: 0, rxBps: 0 });

export class PairTracker {
  connected = true;
  hello: HelloMessage;
  /** Latest snapshot; null until the first `stats` message. */
  stats: DataplaneStats | null = null;
  generation: number;
  policyHash: string;
  lastSeen: number;
  /** Events the dataplane reported it discarded, summed since management started. */
  eventsDropped = 0;
  private rates = noRates();
  private portRates: { inside: PortRates; outside: PortRates } = { inside: { rxPps: 0, rxBps: 0 }, outside: { rxPps: 0, rxBps: 0 } };
  private readonly points: HistoryPoint[] = [];

  constructor(hello: HelloMessage, now: number) {
    this.hello = hello;
    this.generation = hello.generation;
    this.policyHash = hello.policyHash;
    this.lastSeen = now;
  }

  get pair(): string {
    return this.hello.pair;
  }

  /** A (re)connection of this pair's dataplane. */
  reconnected(hello: HelloMessage, now: number): void {
    if (hello.pid !== this.hello.pid) this.stats = null; // a new process: its counters start over
    this.hello = hello;
    this.connected = true;
    this.generation = hello.generation;
    this.policyHash = hello.policyHash;
    this.lastSeen = now;
    this.rates = noRates();
  }

  /** A fail-open pair whose dataplane is gone: the kernel bridges its ports without enforcement. */
  get bypass(): boolean {
    return !this.connected && this.hello.failMode === 'open';
  }

  disconnected(): void {
    this.connected = false;
    this.rates = noRates();
    this.portRates = { inside: { rxPps: 0, rxBps: 0 }, outside: { rxPps: 0, rxBps: 0 } };
  }

  committed(generation: number, policyHash: string): void {
    this.generation = generation;
    this.policyHash = policyHash;
  }

  /** Rates are measured over the dataplane's own clock (uptime), so IPC delays do not skew them. */
  update(stats: DataplaneStats, now: number): void {
    const previous = this.stats;
    this.stats = stats;
    this.generation = stats.generation;
    this.policyHash = stats.policyHash;
    this.lastSeen = now;
    const seconds = previous === null || previous.pid !== stats.pid ? 0 : (stats.uptimeMs - previous.uptimeMs) / 1000;
    if (previous === null || seconds <= 0) return;
    const inside = portRates(previous.ports.inside, stats.ports.inside, seconds);
    const outside = portRates(previous.ports.outside, stats.ports.outside, seconds);
    this.portRates = { inside, outside };
    const ruleRate = (allowed: boolean) => ruleDelta(previous, stats, allowed) / seconds;
    this.rates = {
      allowedPps: ruleRate(true),
      deniedPps: ruleRate(false),
      rxPps: inside.rxPps + outside.rxPps,
      rxBps: inside.rxBps + outside.rxBps,
    };
    this.points.push({ t: now, ...this.rates });
    const oldest = now - HISTORY_SECONDS * 1000;
    while (this.points.length > 0 && this.points[0].t < oldest) this.points.shift();
    // Bounded also when a dataplane sends faster than once a second.
    if (this.points.length > HISTORY_SECONDS * 2) this.points.splice(0, this.points.length - HISTORY_SECONDS * 2);
  }

  history(seconds: number, now: number): HistoryPoint[] {
    const since = now - Math.min(seconds, HISTORY_SECONDS) * 1000;
    return this.points.filter((p) => p.t >= since);
  }

  status(now: number): PairStatus {
    const s = this.stats;
    const hello = this.hello;
    return {
      pair: hello.pair,
      connected: this.connected,
      bypass: this.bypass,
      pid: hello.pid,
      generation: this.generation,
      policyHash: this.policyHash,
      mode: s?.mode ?? 'enforce',
      uptimeMs: this.connected ? now - hello.startedAt : (s?.uptimeMs ?? 0),
      lastSeen: this.lastSeen,
      ports: {
        inside: portStatus(hello.inside, s?.ports.inside, this.portRates.inside),
        outside: portStatus(hello.outside, s?.ports.outside, this.portRates.outside),
      },
      flows: {
        active: s?.flows.active ?? 0,
        capacity: s?.flows.capacity ?? 0,
        created: s?.flows.created ?? 0,
        evicted: s?.flows.evicted ?? 0,
      },
      rates: { ...this.rates },
      rules: (s?.rules ?? []).map((r) => ({ name: r.name, action: r.action, packets: r.packets, flows: r.flows, violations: r.violations })),
      inspect: s?.inspect ?? {},
    };
  }
}

function portRates(before: PortStats, after: PortStats, seconds: number): PortRates {
  return {
    rxPps: Math.max(0, after.rx_packets - before.rx_packets) / seconds,
    rxBps: (Math.max(0, after.rx_bytes - before.rx_bytes) * 8) / seconds,
  };
}

/**
 * Packets counted by allow rules (or by deny/reject rules) between two snapshots. Rules are matched by
 * name, as the dataplane carries counters over a reload by name; a rule new in `after` counts from 0.
 */
function ruleDelta(before: DataplaneStats, after: DataplaneStats, allowed: boolean): number {
  const previous = new Map(before.rules.map((r) => [r.name, r.packets]));
  let sum = 0;
  for (const rule of after.rules) {
    if ((rule.action === 'allow') !== allowed) continue;
    sum += Math.max(0, rule.packets - (previous.get(rule.name) ?? 0));
  }
  return sum;
}

function portStatus(name: string, port: PortStats | undefined, rates: PortRates): PortStatus {
  const droppedByReason = { ...(port?.dropped ?? {}) };
  return {
    name: port?.name ?? name,
    link: port?.link ?? 'unknown',
    rxPackets: port?.rx_packets ?? 0,
    rxBytes: port?.rx_bytes ?? 0,
    txPackets: port?.tx_packets ?? 0,
    txBytes: port?.tx_bytes ?? 0,
    dropped: Object.values(droppedByReason).reduce((a, b) => a + b, 0),
    droppedByReason,
    kernelDropped: port?.kernel_dropped ?? 0,
    rxPps: rates.rxPps,
    rxBps: rates.rxBps,
  };
}
