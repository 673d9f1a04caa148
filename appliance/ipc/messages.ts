// Messages between a dataplane (client, one per port pair) and the management service (server) over
// a local Unix socket. Framing: one JSON object per line (appliance/ipc/framing.ts).
// Versioned: both sides send their IPC_VERSION first and refuse a peer that speaks another one.
// Each side checks what it receives with ipc/validate.ts, against the JSON Schemas of ipc/schemas.ts,
// which a test keeps in agreement with the types here.
//
// Policy apply is a two-phase transaction driven by management:
//   mgmt → every dataplane: policy.prepare (text)      dataplane compiles aside, keeps running the old one
//   dataplane → mgmt:       policy.prepared (ok/errors)
//   mgmt → every dataplane: policy.commit | policy.abort   (commit only when every dataplane prepared)
//   dataplane → mgmt:       policy.committed (generation it now runs)
// The dataplane persists a committed policy to its own policy file, so a restart while management is
// down runs the last committed policy.

import type { GatekeeperEvent } from './events';
import type { DataplaneStats } from './stats';

export const IPC_VERSION = 1;
/** Default path of management's socket. */
export const DEFAULT_SOCKET_PATH = '/run/gatekeeper/mgmt.sock';
/** Longest line either side accepts; a longer one closes the connection (counted, never buffered). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// dataplane → management

export interface HelloMessage {
  type: 'hello';
  version: number;
  pair: string;
  pid: number;
  inside: string;
  outside: string;
  /** Policy generation running (1 at start, +1 per accepted reload or commit). */
  generation: number;
  policyHash: string;
  /** Epoch ms the process started. */
  startedAt: number;
  /** What the pair does while no dataplane runs it (fail-open: management reports bypass.on); absent: closed. */
  failMode?: 'open' | 'closed';
}

/** Sent every second. */
export interface StatsMessage {
  type: 'stats';
  stats: DataplaneStats;
}

/** Batched events; `dropped` counts events discarded since the previous batch (queue full). */
export interface EventsMessage {
  type: 'events';
  events: GatekeeperEvent[];
  dropped: number;
}

export interface PolicyPreparedMessage {
  type: 'policy.prepared';
  requestId: number;
  ok: boolean;
  /** "file:line:col: message" lines when refused. */
  errors: string[];
}

export interface PolicyCommittedMessage {
  type: 'policy.committed';
  requestId: number;
  generation: number;
  policyHash: string;
}

/** One tracked flow, as listed for the flows view. Endpoint "src" is the initiator. */
export interface FlowRecord {
  proto: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  vlan: number;
  rule: string;
  /** "allow", or "monitor" for a flow that passes only because of monitor mode. */
  verdict: 'allow' | 'monitor';
  state: 'opening' | 'established' | 'closing' | 'none';
  /** Port the initiator's packets arrive on. */
  initiatorSide: 'inside' | 'outside';
  packetsOut: number;
  packetsIn: number;
  bytesOut: number;
  bytesIn: number;
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
  /** An inspected flow (its rule has e.g. a `modbus:` block): what the inspector saw. */
  app?: FlowApp;
}

/** What an application-layer inspector saw on one flow. */
export interface FlowApp {
  protocol: string;
  /** Requests per function name so far. */
  functions: Record<string, number>;
  /** Unit identifiers the requests named, ascending (Modbus; in observations only). */
  units?: number[];
}

export interface FlowsMessage {
  type: 'flows';
  requestId: number;
  /** Flows matching the filter (at most `limit`), most recent first. */
  flows: FlowRecord[];
  /** Flows matching the filter in all. */
  matched: number;
  /** Flows tracked in all. */
  total: number;
}

/**
 * What the dataplane saw of the plant since its previous observations message (sent every few
 * seconds when there is something to say): hosts, conversations and identity frames. Management's
 * asset inventory (mgmt/inventory/) keeps them. Gathered off the per-packet fast path: sightings at
 * flow start, on ARP and on denied packets; conversations from the flow table; identity frames
 * (LLDP, DHCP, Modbus device identification) on the slow path.
 */
export interface ObservationsMessage {
  type: 'observations';
  sightings: Sighting[];
  conversations: ConversationDelta[];
  identities: IdentityObservation[];
  /** Observations left out since the previous message because a table was full. */
  dropped: number;
}

/** A host seen on one port: a source MAC, with the source address the frame carried. */
export interface Sighting {
  /** "00:11:22:33:44:55". */
  mac: string;
  /** IPv4 or IPv6 text; "" when the frame carried none (LLDP, an ARP probe from 0.0.0.0). */
  address: string;
  /** Outer VLAN id, 0 when untagged. */
  vlan: number;
  /** The appliance port the frames arrived on: the host is behind it. */
  side: 'inside' | 'outside';
  /** Frames counted under this key since the previous message (only those the sighting stage sees). */
  frames: number;
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
}

/**
 * What one conversation did since the previous message: flows begun and packets/bytes carried, per
 * (client, server, protocol, service port, VLAN, rule, verdict). Denied traffic is not here: it is
 * in deny.summary events.
 */
export interface ConversationDelta {
  proto: string;
  /** The initiator (the rule's "from" side) and the MAC its frames came from. */
  client: string;
  clientMac: string;
  server: string;
  /** The MAC the server's frames came from; "" before it answered. */
  serverMac: string;
  /** TCP/UDP/SCTP: the server's port; ICMP/ICMPv6: the request type. */
  port: number;
  vlan: number;
  /** The port the client's frames arrive on. */
  clientSide: 'inside' | 'outside';
  rule: string;
  /** "allow", or "monitor": passed only because the policy is in monitor mode. */
  verdict: 'allow' | 'monitor';
  /** Flows begun in the interval. */
  flows: number;
  /** Both directions. */
  packets: number;
  bytes: number;
  /** Application protocol seen on the flows ("modbus") and its requests per function name in the interval. */
  app?: FlowApp;
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
}

/** Identity a host revealed about itself, from a frame the dataplane parsed on the slow path. */
export interface IdentityObservation {
  mac: string;
  /** The frame's source address; "" when it carried none (LLDP, DHCP before an address). */
  address: string;
  vlan: number;
  side: 'inside' | 'outside';
  /**
   * lldp: systemName, systemDescription, chassisId, portId, portDescription, managementAddress;
   * dhcp: hostName, vendorClass, requestedAddress;
   * modbus (43/14 answer, from the server): vendorName, productCode, revision, vendorUrl, productName, modelName, unit.
   * Only the fields the frame carried; values are printable text, at most 255 characters.
   */
  source: 'lldp' | 'dhcp' | 'modbus';
  fields: Record<string, string>;
  /** Epoch ms. */
  time: number;
}

export interface ErrorMessage {
  type: 'error';
  requestId?: number;
  message: string;
}

export type DataplaneMessage =
  | HelloMessage
  | StatsMessage
  | EventsMessage
  | PolicyPreparedMessage
  | PolicyCommittedMessage
  | FlowsMessage
  | ObservationsMessage
  | ErrorMessage;

// ---------------------------------------------------------------------------------------------------
// management → dataplane

export interface WelcomeMessage {
  type: 'welcome';
  version: number;
}

export interface PolicyPrepareMessage {
  type: 'policy.prepare';
  requestId: number;
  /** Policy YAML. */
  text: string;
  /** Name used in diagnostics, e.g. "policy v12". */
  source: string;
}

export interface PolicyCommitMessage {
  type: 'policy.commit';
  requestId: number;
}

export interface PolicyAbortMessage {
  type: 'policy.abort';
  requestId: number;
}

export interface FlowFilter {
  /** Matches either endpoint. */
  address?: string;
  /** Matches either port. */
  port?: number;
  rule?: string;
  verdict?: 'allow' | 'monitor';
}

export interface GetFlowsMessage {
  type: 'flows.get';
  requestId: number;
  filter: FlowFilter;
  limit: number;
}

export type ManagementMessage =
  | WelcomeMessage
  | PolicyPrepareMessage
  | PolicyCommitMessage
  | PolicyAbortMessage
  | GetFlowsMessage
  | ErrorMessage;
