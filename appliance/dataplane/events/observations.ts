// What the dataplane sees of the plant, gathered for management's asset inventory and learn mode
// (ipc/messages.ts ObservationsMessage): hosts (sightings.ts), conversation deltas (conversations.ts)
// and identity frames (LLDP, DHCP, Modbus device identification). The packet path only records, into
// preallocated bounded tables, at the few places the engine calls (ObservationSink); conversations come
// from the engine's sweep over the flow table, a slice at a time, plus a flow's last counts when it
// ends; everything
// costly (text, the message) happens in drain(), which the management link calls every
// OBSERVATIONS_INTERVAL_MS while it is connected. While it is not, the tables keep what they hold up
// to their bounds, a live flow's counts simply wait in its record, and what no longer fits is counted
// (the next message's `dropped`). Only exists when a management socket is configured. Must not import
// the engine: it is given the flows and what their application layer counted.

import type { ConversationDelta, IdentityObservation, ObservationsMessage, Sighting } from '../../ipc/messages';
import { formatMac } from '../../wire/address-text';
import { Family, Proto, protocolName } from '../../wire/protocols';
import type { Flow } from '../flow/flow';
import { Side } from '../verdict';
import { ConversationKey, ConversationTable } from './conversations';
import { summaryAddressText } from './flow-records';
import { SightingTable } from './sightings';

/**
 * How often observations are sent. The inventory and learn mode work on minutes to days, so seconds
 * of delay cost nothing. The live flows are reported by the engine's sweep in slices (dataplane.ts
 * SWEEP_FLOWS), not by the drain: a walk of the whole table at once held the loop 49 ms per 100k
 * flows (`npm run bench`). Each message holds at
 * most the tables' bounds (4096 sightings, 8192 conversations, 64 identities: 2.3 MB of JSON at the worst).
 */
export const OBSERVATIONS_INTERVAL_MS = 5000;
/** Identity observations kept per interval (one per source, MAC and address; a repeat adds its fields to the earlier one). */
export const IDENTITY_KEYS = 64;
/**
 * Identity frames decoded per interval. LLDP comes every 30 s per neighbour and DHCP a few times per
 * lease, so 256 is plenty; beyond it a flood of them costs one counter each, not a decode.
 */
export const IDENTITY_DECODES = 256;

/** Where an identity came from, as the observation names it. */
export type IdentitySource = IdentityObservation['source'];

/** What the application layer counted on a flow, and how its codes are named. */
export interface AppCounts {
  protocol: string;
  functionName(code: number): string;
  counts: Uint32Array;
  /** 1 at each unit identifier a request named (Modbus). */
  units: Uint8Array;
}

/** What the engine tells the observations on the packet path. Nothing here may allocate, except identity(). */
export interface ObservationSink {
  /** A frame from `mac` carrying source `src4`/`src6` (Family.None: no address) on `side`. */
  sighting(family: number, src4: number, src6: Uint32Array, mac: number, vlan: number, side: number, now: number): void;
  /** A flow left the table: its counts since its last report go in now; `app` what its inspector counted. */
  flowEnded(flow: Flow, app: AppCounts | null): void;
  /** A live flow the engine's sweep visits: its counts since its last report go in now. Allocation-free unless `app` counted something new. */
  flowLive(flow: Flow, app: AppCounts | null): void;
  /** May one more identity frame be decoded in this interval? Counts it either way. */
  identityAllowed(): boolean;
  /** An identity frame that decoded; `reason` names a decode failure instead (counted, not reported). */
  identity(source: IdentitySource, fields: Record<string, string>, mac: number, family: number, src4: number, src6: Uint32Array,
    vlan: number, side: number, now: number): void;
  identityFailed(reason: string): void;
}

export interface ObservationCounters {
  /** Sightings, conversation deltas and identity frames left out because a table or budget was full, since start. */
  dropped: number;
  /** Identity frames that could not be decoded, by the decoder's reason. */
  decodeErrors: Record<string, number>;
}

export interface ObservationsOptions {
  /** The rule a flow was decided by in its generation, by name (running-policy.ts's ruleName). */
  ruleName: (generation: number, index: number) => string;
  sightingKeys?: number;
  conversationKeys?: number;
}

const ECHO_REQUEST_V4 = 8;
const ECHO_REQUEST_V6 = 128;

export class Observations implements ObservationSink {
  readonly counters: ObservationCounters = { dropped: 0, decodeErrors: {} };
  readonly sightings: SightingTable;
  readonly conversations: ConversationTable;
  private readonly key = new ConversationKey();
  /** Rule names of the conversation entries: the table keeps an index into this. */
  private ruleNames: string[] = [];
  private readonly ruleIds = new Map<string, number>();
  /** Rule ids by rule index for the generation most flows are in: a flow's end looks its rule up here (-1: not yet). */
  private idsGeneration = -1;
  private idsByIndex = new Int32Array(0);
  /** What each application-layer flow's counts were at its last report. */
  private readonly reportedFunctions = new Map<Flow, Uint32Array>();
  private identities = new Map<string, IdentityObservation>();
  private decodes = 0;
  /** Decode failures by reason since takeDecodeErrors() was last called. */
  private recentDecodeErrors: Record<string, number> = {};
  /** Dropped since the last message. */
  private droppedSinceDrain = 0;

  constructor(private readonly options: ObservationsOptions) {
    this.sightings = new SightingTable(options.sightingKeys);
    this.conversations = new ConversationTable(options.conversationKeys);
  }

  // --- packet path (ObservationSink)

  sighting(family: number, src4: number, src6: Uint32Array, mac: number, vlan: number, side: number, now: number): void {
    this.sightings.record(family, src4, src6, mac, vlan, side, now);
  }

  flowEnded(flow: Flow, app: AppCounts | null): void {
    this.report(flow, app);
    if (app !== null) this.reportedFunctions.delete(flow);
  }

  flowLive(flow: Flow, app: AppCounts | null): void {
    this.report(flow, app);
  }

  identityAllowed(): boolean {
    if (this.decodes < IDENTITY_DECODES) {
      this.decodes++;
      return true;
    }
    this.drop(1);
    return false;
  }

  identity(source: IdentitySource, fields: Record<string, string>, mac: number, family: number, src4: number, src6: Uint32Array,
    vlan: number, side: number, now: number): void {
    this.sightings.record(family, src4, src6, mac, vlan, side, now);
    if (Object.keys(fields).length === 0) return;
    const address = family === Family.None ? '' : summaryAddressText(family, family === Family.V6 ? src6 : src4);
    const text = formatMac(mac);
    const key = `${source} ${text} ${address} ${vlan} ${side}`;
    const earlier = this.identities.get(key);
    if (earlier !== undefined) {
      // A repeat (lldpd's shutdown LLDPDU carries only the ids): what it says is added, nothing is lost.
      Object.assign(earlier.fields, fields);
      earlier.time = now;
      return;
    }
    if (this.identities.size >= IDENTITY_KEYS) return this.drop(1);
    this.identities.set(key, { mac: text, address, vlan, side: side === Side.Inside ? 'inside' : 'outside', source, fields, time: now });
  }

  identityFailed(reason: string): void {
    this.counters.decodeErrors[reason] = (this.counters.decodeErrors[reason] ?? 0) + 1;
    this.recentDecodeErrors[reason] = (this.recentDecodeErrors[reason] ?? 0) + 1;
  }

  /** Identity frames that could not be decoded since the last call, by reason; null when none (for the log). */
  takeDecodeErrors(): Record<string, number> | null {
    const errors = this.recentDecodeErrors;
    if (Object.keys(errors).length === 0) return null;
    this.recentDecodeErrors = {};
    return errors;
  }

  // --- off the packet path

  /**
   * Everything observed since the previous drain, or null when there is nothing to say. The live
   * flows' counts come in through flowLive from the engine's sweep, a slice at a time; `flows` are
   * reported first on top of that (tests and benchmarks pass the whole table, `appOf` says what a
   * flow's inspector or observer counted). Allocates.
   */
  drain(flows: Iterable<Flow> = [], appOf: (flow: Flow) => AppCounts | null = () => null): ObservationsMessage | null {
    for (const flow of flows) this.report(flow, flow.inspected || flow.observed ? appOf(flow) : null);
    const dropped = this.droppedSinceDrain + this.sightings.overflow + this.conversations.overflow;
    this.counters.dropped += this.sightings.overflow + this.conversations.overflow;
    this.sightings.overflow = 0;
    this.conversations.overflow = 0;
    this.droppedSinceDrain = 0;
    const sightings: Sighting[] = this.sightings.drain().map((e) => ({
      mac: formatMac(e.mac),
      address: e.family === Family.None ? '' : summaryAddressText(e.family, e.address),
      vlan: e.vlan,
      side: sideName(e.side),
      frames: e.frames,
      firstSeen: e.firstSeen,
      lastSeen: e.lastSeen,
    }));
    const conversations: ConversationDelta[] = this.conversations.drain().map((e) => {
      const delta: ConversationDelta = {
        proto: protocolName(e.proto),
        client: summaryAddressText(e.family, e.client),
        clientMac: e.clientMac < 0 ? '' : formatMac(e.clientMac),
        server: summaryAddressText(e.family, e.server),
        serverMac: e.serverMac < 0 ? '' : formatMac(e.serverMac),
        port: e.port,
        vlan: e.vlan,
        clientSide: sideName(e.clientSide),
        rule: this.ruleNames[e.rule],
        verdict: e.monitor ? 'monitor' : 'allow',
        flows: e.flows,
        packets: e.packets,
        bytes: e.bytes,
        firstSeen: e.firstSeen,
        lastSeen: e.lastSeen,
      };
      if (e.app !== null) delta.app = e.app;
      return delta;
    });
    const identities = [...this.identities.values()];
    this.identities = new Map();
    this.decodes = 0;
    // Rule ids are per interval: the names of a policy long gone are not kept.
    this.ruleNames = [];
    this.ruleIds.clear();
    this.idsGeneration = -1;
    if (sightings.length === 0 && conversations.length === 0 && identities.length === 0 && dropped === 0) return null;
    return { type: 'observations', sightings, conversations, identities, dropped };
  }

  /** Add the flow's counts since its last report to its conversation. Allocation-free unless `app` counted something new. */
  private report(flow: Flow, app: AppCounts | null): void {
    const packets = flow.packetsOut + flow.packetsIn;
    const bytes = flow.bytesOut + flow.bytesIn;
    const begun = !flow.reportedStart;
    const reported = app === null ? undefined : this.reportedFunctions.get(flow);
    if (!begun && packets === flow.reportedPackets && (app === null || !changed(app.counts, reported))) return;
    const k = this.key;
    const i = flow.initiatorIsA;
    k.family = flow.family;
    if (flow.family === Family.V6) {
      k.client.set(i ? flow.a6 : flow.b6);
      k.server.set(i ? flow.b6 : flow.a6);
    } else {
      k.client[0] = i ? flow.a4 : flow.b4;
      k.server[0] = i ? flow.b4 : flow.a4;
      k.client[1] = k.client[2] = k.client[3] = 0;
      k.server[1] = k.server[2] = k.server[3] = 0;
    }
    k.clientMac = flow.clientMac;
    k.serverMac = flow.serverMac;
    k.proto = flow.proto;
    k.port = flow.proto === Proto.ICMP ? ECHO_REQUEST_V4 : flow.proto === Proto.ICMPV6 ? ECHO_REQUEST_V6
      : flow.proto === Proto.TCP || flow.proto === Proto.UDP || flow.proto === Proto.SCTP ? (i ? flow.portB : flow.portA) : 0;
    k.vlan = flow.vlan >>> 12;
    k.clientSide = flow.initiatorSide;
    k.rule = this.ruleIdOf(flow.generation, flow.ruleIndex);
    k.monitor = flow.wouldDrop;
    const entry = this.conversations.record(k, begun ? 1 : 0, packets - flow.reportedPackets, bytes - flow.reportedBytes,
      begun ? flow.firstSeen : flow.lastSeen, flow.lastSeen);
    // Full: a live flow's counts wait in its record for the next interval (the overflow is counted).
    if (entry < 0) return;
    flow.reportedStart = true;
    flow.reportedPackets = packets;
    flow.reportedBytes = bytes;
    if (app === null) return;
    this.conversations.addFunctions(entry, app.protocol, (code) => app.functionName(code), app.counts, reported ?? null, app.units);
    if (reported === undefined) this.reportedFunctions.set(flow, app.counts.slice());
    else reported.set(app.counts);
  }

  /** The interval's id of a flow's rule; an array lookup for the generation of the last flow asked about. */
  private ruleIdOf(generation: number, index: number): number {
    if (generation !== this.idsGeneration) {
      this.idsGeneration = generation;
      this.idsByIndex.fill(-1);
    }
    if (index >= this.idsByIndex.length) {
      const grown = new Int32Array(Math.max(64, index * 2)).fill(-1);
      grown.set(this.idsByIndex);
      this.idsByIndex = grown;
    }
    let id = this.idsByIndex[index];
    if (id < 0) id = this.idsByIndex[index] = this.ruleId(this.options.ruleName(generation, index));
    return id;
  }

  private ruleId(name: string): number {
    let id = this.ruleIds.get(name);
    if (id === undefined) {
      id = this.ruleNames.length;
      this.ruleNames.push(name);
      this.ruleIds.set(name, id);
    }
    return id;
  }

  private drop(n: number): void {
    this.droppedSinceDrain += n;
    this.counters.dropped += n;
  }
}

function sideName(side: number): 'inside' | 'outside' {
  return side === Side.Inside ? 'inside' : 'outside';
}

/** Did any count grow since `reported` (a flow never reported counts as changed when it counted anything)? */
function changed(counts: Uint32Array, reported: Uint32Array | undefined): boolean {
  for (let code = 0; code < counts.length; code++) if (counts[code] !== (reported === undefined ? 0 : reported[code])) return true;
  return false;
}
