// Prometheus metrics of the dataplanes, in a registry of the hub's own (nothing global). Values are
// read from each pair's latest snapshot when scraped. The dataplane's counters are exposed as
// Prometheus counters: they only grow, and start over when a dataplane restarts, which rate()
// treats as a counter reset.

import { Counter, Gauge, Registry } from 'prom-client';
import type { BusyPollStats, InspectStats, PortStats } from '../../ipc/stats';
import type { PairTracker } from './live-status';
import type { ProtocolErrorKind } from './ipc-server';

const SIDES = ['inside', 'outside'] as const;

export class HubMetrics {
  readonly registry = new Registry();
  private readonly protocolErrors: Counter<'reason'>;

  constructor(pairs: () => Iterable<PairTracker>) {
    const registers = [this.registry];
    /** A counter whose values are the dataplanes' own, set at scrape time. */
    const dataplaneCounter = <L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string>, value: number) => void) => void) =>
      new Counter<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill((labels, value) => this.inc(labels, Math.max(0, value)));
        },
      });
    const dataplaneGauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string>, value: number) => void) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill((labels, value) => this.set(labels, value));
        },
      });
    const eachPort = (set: (labels: Record<'pair' | 'port', string>, value: number) => void, read: (p: PortStats) => number) => {
      for (const t of pairs()) {
        if (t.stats === null) continue;
        for (const side of SIDES) set({ pair: t.pair, port: side }, read(t.stats.ports[side]));
      }
    };
    const portCounter = (name: string, help: string, read: (p: PortStats) => number) =>
      dataplaneCounter(name, help, ['pair', 'port'], (set) => eachPort(set, read));

    portCounter('gatekeeper_port_rx_packets_total', 'Frames received on the port', (p) => p.rx_packets);
    portCounter('gatekeeper_port_rx_bytes_total', 'Bytes received on the port', (p) => p.rx_bytes);
    portCounter('gatekeeper_port_rx_segments_total',
      'Wire segments the received frames stand for (a GSO super-frame counts as its segments, any other frame as one)', (p) => p.rx_segments);
    portCounter('gatekeeper_port_fast_path_frames_total',
      'Frames of offloaded flows the kernel forwarded from the port without the dataplane (also in rx_packets and forwarded)',
      (p) => p.fast_path_frames);
    portCounter('gatekeeper_port_tx_packets_total', 'Frames sent out of the port', (p) => p.tx_packets);
    portCounter('gatekeeper_port_tx_bytes_total', 'Bytes sent out of the port', (p) => p.tx_bytes);
    portCounter('gatekeeper_port_kernel_dropped_total',
      'Frames the kernel dropped before the dataplane saw them (receive ring full: the box too slow); never a policy decision',
      (p) => p.kernel_dropped);
    dataplaneCounter('gatekeeper_port_dropped_total', 'Frames dropped, by the port they arrived on and reason', ['pair', 'port', 'reason'], (set) => {
      for (const t of pairs()) {
        if (t.stats === null) continue;
        for (const side of SIDES) {
          for (const [reason, value] of Object.entries(t.stats.ports[side].dropped)) set({ pair: t.pair, port: side, reason }, value);
        }
      }
    });
    const ruleCounter = (name: string, help: string, read: (r: { packets: number; bytes: number; flows: number }) => number) =>
      dataplaneCounter(name, help, ['pair', 'rule', 'action'], (set) => {
        for (const t of pairs()) {
          for (const rule of t.stats?.rules ?? []) set({ pair: t.pair, rule: rule.name, action: rule.action }, read(rule));
        }
      });
    ruleCounter('gatekeeper_rule_packets_total', 'Packets decided by the rule', (r) => r.packets);
    ruleCounter('gatekeeper_rule_bytes_total', 'Bytes decided by the rule', (r) => r.bytes);
    ruleCounter('gatekeeper_rule_flows_total', 'Flows the rule started (or would have refused in monitor mode)', (r) => r.flows);
    dataplaneCounter('gatekeeper_rule_violations_total', 'Messages the rule\'s application-layer block refused (or would have in monitor mode)',
      ['pair', 'rule'], (set) => {
        for (const t of pairs()) {
          for (const rule of t.stats?.rules ?? []) set({ pair: t.pair, rule: rule.name }, rule.violations);
        }
      });
    const inspectCounter = (name: string, help: string, read: (i: InspectStats) => Record<string, number>) =>
      dataplaneCounter(name, help, ['pair', 'protocol', 'reason'], (set) => {
        for (const t of pairs()) {
          for (const [protocol, inspect] of Object.entries(t.stats?.inspect ?? {})) {
            for (const [reason, value] of Object.entries(read(inspect))) set({ pair: t.pair, protocol, reason }, value);
          }
        }
      });
    inspectCounter('gatekeeper_inspect_violations_total', 'Application-layer messages refused (or would-be refused in monitor mode), by reason', (i) => i.violations);
    inspectCounter('gatekeeper_inspect_held_total', 'Segments held by an inspector for TCP to resend in order, by reason (not violations)', (i) => i.held);
    dataplaneGauge('gatekeeper_inspect_flows', 'Flows an application-layer inspector follows now', ['pair', 'protocol'], (set) => {
      for (const t of pairs()) {
        for (const [protocol, inspect] of Object.entries(t.stats?.inspect ?? {})) set({ pair: t.pair, protocol }, inspect.active);
      }
    });
    dataplaneCounter('gatekeeper_events_dropped_total', 'Events a dataplane discarded because its queue was full', ['pair'], (set) => {
      for (const t of pairs()) set({ pair: t.pair }, t.eventsDropped);
    });
    const busyPollCounter = (name: string, help: string, read: (b: BusyPollStats) => number) =>
      dataplaneCounter(name, help, ['pair'], (set) => {
        for (const t of pairs()) if (t.stats?.busyPoll !== undefined) set({ pair: t.pair }, read(t.stats.busyPoll));
      });
    busyPollCounter('gatekeeper_busy_poll_backoffs_total',
      'Times busy polling stopped for 100 ms because another task was given the dataplane\'s CPU', (b) => b.backoffs);
    busyPollCounter('gatekeeper_busy_poll_stalls_total',
      'Pauses of over 1 ms in busy polling with no other task given the CPU: the host took the vCPU or interrupts ran', (b) => b.stalls);
    dataplaneGauge('gatekeeper_fast_path_flows', 'Flows the kernel fast path forwards now (1 per flow; absent when it is off)', ['pair'],
      (set) => {
        for (const t of pairs()) if (t.stats?.fastPath?.state === 'on') set({ pair: t.pair }, t.stats.fastPath.flows);
      });
    dataplaneCounter('gatekeeper_fast_path_table_full_total', 'Flow directions not offloaded because the kernel fast path was full', ['pair'],
      (set) => {
        for (const t of pairs()) if (t.stats?.fastPath !== undefined) set({ pair: t.pair }, t.stats.fastPath.tableFull);
      });
    dataplaneGauge('gatekeeper_flows_active', 'Flows in the flow table', ['pair'], (set) => {
      for (const t of pairs()) if (t.stats !== null) set({ pair: t.pair }, t.stats.flows.active);
    });
    dataplaneGauge('gatekeeper_flows_embryonic', 'Flows in the flow table not answered yet (held to a budget)', ['pair'], (set) => {
      for (const t of pairs()) if (t.stats !== null) set({ pair: t.pair }, t.stats.flows.embryonic);
    });
    dataplaneCounter('gatekeeper_flows_early_dropped_total', 'Unanswered flows ended early to make room for new ones (a flood of new flows)', ['pair'], (set) => {
      for (const t of pairs()) if (t.stats !== null) set({ pair: t.pair }, t.stats.flows.earlyDropped);
    });
    dataplaneGauge('gatekeeper_dataplane_connected', '1 while the pair\'s dataplane is connected to management', ['pair'], (set) => {
      for (const t of pairs()) set({ pair: t.pair }, t.connected ? 1 : 0);
    });
    dataplaneGauge('gatekeeper_bypass', '1 while a fail-open pair is bridged by the kernel without enforcement (its dataplane is gone)',
      ['pair'], (set) => {
        for (const t of pairs()) set({ pair: t.pair }, t.bypass ? 1 : 0);
      });
    dataplaneGauge('gatekeeper_policy_generation', 'Policy generation the dataplane runs', ['pair'], (set) => {
      for (const t of pairs()) set({ pair: t.pair }, t.generation);
    });
    this.protocolErrors = new Counter({
      name: 'gatekeeper_ipc_protocol_errors_total',
      help: 'Protocol errors from dataplanes by reason; all but bad_event closed the connection',
      labelNames: ['reason'],
      registers,
    });
  }

  protocolError(kind: ProtocolErrorKind): void {
    this.protocolErrors.inc({ reason: kind });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
