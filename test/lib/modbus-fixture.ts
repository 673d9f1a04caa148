// Modbus data as a dataplane reports it, for the management and UI tests: a stats snapshot with rule
// violations and inspect counters, ot.violation and flow.end events, an inspected flow record, and a
// small dataplane client that says hello on a management socket, sends them and answers flows.get.
// Test data only: it decides nothing about what a violation is.

import { connect, type Socket } from 'node:net';
import type { FlowEndEvent, OtViolationEvent } from '../../appliance/ipc/events';
import { encodeMessage, LineReader } from '../../appliance/ipc/framing';
import { IPC_VERSION, type FlowRecord, type ManagementMessage } from '../../appliance/ipc/messages';
import type { DataplaneStats, PortStats } from '../../appliance/ipc/stats';

export const PLC = '198.18.1.100';
export const HMI = '198.18.1.10';

function port(name: string): PortStats {
  return {
    name, link: 'up', rx_packets: 500, rx_bytes: 50_000, tx_packets: 480, tx_bytes: 48_000, forwarded: 480, rejects_sent: 0,
    rejects_suppressed: 0, send_errors: 0, monitor_would_drop: 0, kernel_dropped: 0, rx_segments: 500, fast_path_frames: 0, dropped: { policy: 3, inspect: 7, inspect_held: 2 }, decode_errors: {},
  };
}

/** A pair running one Modbus rule that refused 7 writes, and held 2 segments. */
export function modbusStats(pair: string, pid: number, uptimeMs: number): DataplaneStats {
  return {
    pair, pid, uptimeMs, generation: 1, policyHash: 'modbus-hash', mode: 'enforce',
    ports: { inside: port(`${pair}-in`), outside: port(`${pair}-out`) },
    flows: { active: 2, capacity: 1000, created: 4, evicted: 0, expired: 2, closed: 0, cut: 0, chained: 0, earlyDropped: 0, embryonic: 0 },
    fragments: { tracked: 0 },
    rules: [
      { name: 'hmi-reads-plc', action: 'allow', packets: 420, bytes: 42_000, flows: 3, violations: 7 },
      { name: 'default', action: 'deny', packets: 3, bytes: 180, flows: 0, violations: 0 },
    ],
    inspect: { modbus: { flows: 3, active: 1, violations: { function_not_allowed: 5, address_not_allowed: 2 }, held: { segment_ahead: 2 } } },
  };
}

export function violationEvent(overrides: Partial<OtViolationEvent> = {}): OtViolationEvent {
  const time = new Date().toISOString();
  return {
    type: 'ot.violation', time, severity: 'warning',
    src: HMI, srcPort: 40_100, srcGroups: ['hmi'], dst: PLC, dstPort: 502, dstGroups: ['plc'], proto: 'tcp', vlan: 0,
    protocol: 'modbus', rule: 'hmi-reads-plc', reason: 'function_not_allowed', function: 'write-single-register', unit: 1,
    addressFirst: 40, addressLast: 40, action: 'reset', monitor: false, count: 5, firstSeen: time, lastSeen: time,
    ...overrides,
  };
}

export function flowEndEvent(): FlowEndEvent {
  return {
    type: 'flow.end', time: new Date().toISOString(), severity: 'info',
    src: HMI, srcPort: 40_099, srcGroups: ['hmi'], dst: PLC, dstPort: 502, dstGroups: ['plc'], proto: 'tcp', vlan: 0,
    rule: 'hmi-reads-plc', reason: 'closed', durationMs: 61_000, packetsOut: 130, packetsIn: 128, bytesOut: 9000, bytesIn: 11_000,
    functions: { 'read-holding-registers': 120, 'write-single-register': 1 },
  };
}

export function modbusFlow(): FlowRecord {
  const now = Date.now();
  return {
    proto: 'tcp', src: HMI, srcPort: 40_100, dst: PLC, dstPort: 502, vlan: 0, rule: 'hmi-reads-plc', verdict: 'allow',
    state: 'established', initiatorSide: 'outside', packetsOut: 240, packetsIn: 238, bytesOut: 17_000, bytesIn: 21_000,
    firstSeen: now - 60_000, lastSeen: now,
    app: { protocol: 'modbus', functions: { 'read-holding-registers': 120, 'write-single-register': 1 } },
  };
}

/** A dataplane on a management socket: hello, then whatever the test sends; flows.get answered with `flows`. */
export class ModbusDataplane {
  flows: FlowRecord[] = [modbusFlow()];
  private readonly socket: Socket;

  private constructor(socketPath: string, private readonly welcomed: () => void) {
    this.socket = connect(socketPath);
    const reader = new LineReader<ManagementMessage>((m) => this.receive(m), () => this.socket.destroy());
    this.socket.on('data', (chunk) => reader.push(chunk));
    this.socket.on('error', () => undefined);
  }

  static async connect(socketPath: string, pair: string, pid: number): Promise<ModbusDataplane> {
    let dp: ModbusDataplane | undefined;
    await new Promise<void>((resolve) => {
      dp = new ModbusDataplane(socketPath, resolve);
      dp.send({ type: 'hello', version: IPC_VERSION, pair, pid, inside: `${pair}-in`, outside: `${pair}-out`, generation: 1,
        policyHash: 'modbus-hash', startedAt: Date.now() - 60_000 });
    });
    return dp!;
  }

  send(message: object): void {
    this.socket.write(encodeMessage(message));
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(m: ManagementMessage): void {
    if (m.type === 'welcome') this.welcomed();
    else if (m.type === 'flows.get') {
      this.send({ type: 'flows', requestId: m.requestId, flows: this.flows.slice(0, m.limit), matched: this.flows.length, total: this.flows.length });
    } else if (m.type === 'policy.prepare') {
      this.send({ type: 'policy.prepared', requestId: m.requestId, ok: false, errors: ['test dataplane: takes no policy'] });
    }
  }
}
