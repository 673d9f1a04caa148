// Conversation deltas over an observation interval, summarized per (client, client MAC, server,
// server MAC, protocol, service port, VLAN, client's port, rule, verdict): flows begun, packets and
// bytes carried, and an application protocol's requests per function name. Fed from the flow table,
// never per packet: events/observations.ts adds each live flow's counts since its previous report when
// it drains, and a flow's last counts when it ends. Preallocated and bounded (summary-table.ts); a
// delta that finds the table full is counted as overflow and its flow's counts stay unreported until
// the next interval (a live flow) or are lost (an ended one). Recording allocates nothing, except the
// function-count record of an entry that carries an application protocol (once per entry and interval).

import type { FlowApp } from '../../ipc/messages';
import { Family } from '../../wire/protocols';
import { finish, mix } from '../../wire/flow-hash';
import { SummaryTable } from './summary-table';

/**
 * Keys per interval. One key serves every flow of a (client, server, service) pair, so a Modbus poll
 * over 1000 connections is one key; 8192 keys (about 1 MiB) hold the busiest plant cell's interval.
 */
export const CONVERSATION_KEYS = 8192;

/** One conversation as drained (off the packet path). */
export interface ConversationEntry {
  family: number;
  client: number | Uint32Array;
  clientMac: number;
  server: number | Uint32Array;
  /** -1 when the server had not answered. */
  serverMac: number;
  proto: number;
  port: number;
  vlan: number;
  clientSide: number;
  /** Index into the names the caller gave record() (its rule-name table). */
  rule: number;
  monitor: boolean;
  flows: number;
  packets: number;
  bytes: number;
  app: FlowApp | null;
  firstSeen: number;
  lastSeen: number;
}

/** The key and counts of one contribution, filled by the caller (one reused instance). */
export class ConversationKey {
  family = 0;
  readonly client = new Uint32Array(4);
  readonly server = new Uint32Array(4);
  clientMac = -1;
  serverMac = -1;
  proto = 0;
  port = 0;
  vlan = 0;
  clientSide = 0;
  rule = 0;
  monitor = false;
}

export class ConversationTable extends SummaryTable {
  private readonly family: Uint8Array;
  private readonly proto: Uint8Array;
  private readonly side: Uint8Array;
  private readonly monitor: Uint8Array;
  private readonly port: Uint16Array;
  private readonly vlan: Uint16Array;
  private readonly rule: Int32Array;
  private readonly client: Uint32Array;
  private readonly server: Uint32Array;
  private readonly clientMac: Float64Array;
  private readonly serverMac: Float64Array;
  private readonly flows: Float64Array;
  private readonly packets: Float64Array;
  private readonly app: (FlowApp | null)[];
  private staged: ConversationKey = new ConversationKey();

  constructor(capacity = CONVERSATION_KEYS) {
    super(capacity);
    this.family = new Uint8Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.side = new Uint8Array(capacity);
    this.monitor = new Uint8Array(capacity);
    this.port = new Uint16Array(capacity);
    this.vlan = new Uint16Array(capacity);
    this.rule = new Int32Array(capacity);
    this.client = new Uint32Array(capacity * 4);
    this.server = new Uint32Array(capacity * 4);
    this.clientMac = new Float64Array(capacity);
    this.serverMac = new Float64Array(capacity);
    this.flows = new Float64Array(capacity);
    this.packets = new Float64Array(capacity);
    this.app = new Array<FlowApp | null>(capacity).fill(null);
  }

  /**
   * Add a contribution under `key`: `flows` begun, `packets`/`bytes` carried, seen from `first` to
   * `last` (epoch ms). The entry's index, or -1 when the table is full (counted as overflow).
   */
  record(key: ConversationKey, flows: number, packets: number, bytes: number, first: number, last: number): number {
    this.staged = key;
    const c = key.client;
    const s = key.server;
    let h = mix(mix(this.seed, key.family | (key.proto << 8) | (key.clientSide << 16) | (key.monitor ? 1 << 17 : 0)), key.port | (key.vlan << 16));
    h = mix(mix(mix(mix(mix(h, c[0]), c[1]), c[2]), c[3]), key.rule);
    h = mix(mix(mix(mix(h, s[0]), s[1]), s[2]), s[3]);
    h = finish(mix(mix(h, key.clientMac >>> 0), key.serverMac >>> 0));
    const i = this.countPacket(h, bytes, last);
    if (i < 0) return -1;
    if (this.created) {
      this.family[i] = key.family;
      this.proto[i] = key.proto;
      this.side[i] = key.clientSide;
      this.monitor[i] = key.monitor ? 1 : 0;
      this.port[i] = key.port;
      this.vlan[i] = key.vlan;
      this.rule[i] = key.rule;
      this.client.set(c, i * 4);
      this.server.set(s, i * 4);
      this.clientMac[i] = key.clientMac;
      this.serverMac[i] = key.serverMac;
      this.flows[i] = flows;
      this.packets[i] = packets;
      this.firstSeen[i] = first;
      this.app[i] = null;
      return i;
    }
    this.flows[i] += flows;
    this.packets[i] += packets;
    if (first < this.firstSeen[i]) this.firstSeen[i] = first;
    return i;
  }

  /**
   * Add requests per function name to entry i, and the unit identifiers they named (an application
   * protocol's flows; not per packet). Units come with requests: none are added without one.
   */
  addFunctions(i: number, protocol: string, name: (code: number) => string, counts: Uint32Array, reported: Uint32Array | null,
    units: Uint8Array): void {
    let app = this.app[i];
    for (let code = 0; code < counts.length; code++) {
      const delta = counts[code] - (reported === null ? 0 : reported[code]);
      if (delta <= 0) continue;
      if (app === null) app = this.app[i] = { protocol, functions: {}, units: [] };
      const fn = name(code);
      app.functions[fn] = (app.functions[fn] ?? 0) + delta;
    }
    if (app === null) return;
    const seen = app.units ??= [];
    for (let unit = 0; unit < units.length; unit++) if (units[unit] === 1 && !seen.includes(unit)) seen.push(unit);
    seen.sort((a, b) => a - b);
  }

  /** Everything recorded since the last drain (allocates: call off the packet path), then start over. */
  drain(): ConversationEntry[] {
    const out: ConversationEntry[] = [];
    for (let i = 0; i < this.used; i++) {
      const v6 = this.family[i] === Family.V6;
      const { bytes, firstSeen, lastSeen } = this.totals(i);
      out.push({
        family: this.family[i],
        client: v6 ? this.client.slice(i * 4, i * 4 + 4) : this.client[i * 4],
        clientMac: this.clientMac[i],
        server: v6 ? this.server.slice(i * 4, i * 4 + 4) : this.server[i * 4],
        serverMac: this.serverMac[i],
        proto: this.proto[i],
        port: this.port[i],
        vlan: this.vlan[i],
        clientSide: this.side[i],
        rule: this.rule[i],
        monitor: this.monitor[i] === 1,
        flows: this.flows[i],
        packets: this.packets[i],
        bytes,
        app: this.app[i],
        firstSeen,
        lastSeen,
      });
      this.app[i] = null;
    }
    this.clear();
    return out;
  }

  protected sameKey(i: number): boolean {
    const k = this.staged;
    const c = this.client;
    const s = this.server;
    const at = i * 4;
    return this.port[i] === k.port && this.proto[i] === k.proto && this.rule[i] === k.rule && this.family[i] === k.family &&
      this.vlan[i] === k.vlan && this.side[i] === k.clientSide && (this.monitor[i] === 1) === k.monitor &&
      this.clientMac[i] === k.clientMac && this.serverMac[i] === k.serverMac &&
      c[at] === k.client[0] && c[at + 1] === k.client[1] && c[at + 2] === k.client[2] && c[at + 3] === k.client[3] &&
      s[at] === k.server[0] && s[at + 1] === k.server[1] && s[at + 2] === k.server[2] && s[at + 3] === k.server[3];
  }
}
