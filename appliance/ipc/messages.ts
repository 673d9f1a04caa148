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
