// Tracked flows as management sees them: endpoints oriented initiator → responder, addresses as text.
// Used for flows.get and for the flow.start / flow.end events; never on the packet path.

import { formatIpv4, formatIpv6, parseIPv4, parseIPv6, v6ToWords } from '../../wire/address-text';
import type { FlowApp, FlowFilter, FlowRecord, FlowsMessage } from '../../ipc/messages';
import { Family, Proto, protocolName } from '../../wire/protocols';
import type { Flow } from '../flow/flow';
import type { FlowTable } from '../flow/flow-table';

export function addressText(family: number, v4: number, v6: Uint32Array | null): string {
  return family === Family.V4 || v6 === null ? formatIpv4(v4) : formatIpv6(v6);
}

/** A drained summary's address (IPv4 as a number, IPv6 as four words) as text. */
export function summaryAddressText(family: number, address: number | Uint32Array): string {
  return typeof address === 'number' ? addressText(family, address, null) : addressText(family, 0, address);
}

/** A flow's endpoints, initiator first, copied out of the (pooled, reused) flow record. */
export interface FlowEnds {
  family: number;
  src4: number;
  dst4: number;
  src6: Uint32Array | null;
  dst6: Uint32Array | null;
  proto: number;
  /** The initiator's port; 0 for ICMP. */
  srcPort: number;
  /** The responder's port; for ICMP echo the request type (8, or 128 for ICMPv6). */
  dstPort: number;
  /** Outer VLAN id, 0 when untagged. */
  vlan: number;
}

export function flowEnds(flow: Flow): FlowEnds {
  const i = flow.initiatorIsA;
  const v6 = flow.family === Family.V6;
  let srcPort = i ? flow.portA : flow.portB;
  let dstPort = i ? flow.portB : flow.portA;
  if (flow.proto === Proto.ICMP || flow.proto === Proto.ICMPV6) {
    srcPort = 0;
    dstPort = flow.proto === Proto.ICMP ? 8 : 128;
  }
  return {
    family: flow.family,
    src4: i ? flow.a4 : flow.b4,
    dst4: i ? flow.b4 : flow.a4,
    src6: v6 ? (i ? flow.a6 : flow.b6).slice() : null,
    dst6: v6 ? (i ? flow.b6 : flow.a6).slice() : null,
    proto: flow.proto,
    srcPort,
    dstPort,
    vlan: flow.vlan >>> 12,
  };
}

/** Requests per function code as {name: count}, the codes never seen left out (events and flow listings). */
export function countsByFunctionName(counts: Uint32Array, functionName: (code: number) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (let code = 0; code < counts.length; code++) if (counts[code] !== 0) out[functionName(code)] = counts[code];
  return out;
}

const stateNames: FlowRecord['state'][] = ['none', 'opening', 'established', 'closing'];

export function flowRecord(flow: Flow, rule: string, app: FlowApp | null = null): FlowRecord {
  const ends = flowEnds(flow);
  const record: FlowRecord = {
    proto: protocolName(ends.proto),
    src: addressText(ends.family, ends.src4, ends.src6),
    srcPort: ends.srcPort,
    dst: addressText(ends.family, ends.dst4, ends.dst6),
    dstPort: ends.dstPort,
    vlan: ends.vlan,
    rule,
    verdict: flow.wouldDrop ? 'monitor' : 'allow',
    state: flow.proto === Proto.TCP ? stateNames[flow.tcpState] ?? 'none' : 'none',
    initiatorSide: flow.initiatorSide === 0 ? 'inside' : 'outside',
    packetsOut: flow.packetsOut,
    packetsIn: flow.packetsIn,
    bytesOut: flow.bytesOut,
    bytesIn: flow.bytesIn,
    firstSeen: flow.firstSeen,
    lastSeen: flow.lastSeen,
  };
  if (app !== null) record.app = app;
  return record;
}

/** ICMP flows carry the echo identifier where ports would be: a port filter never matches them. */
function hasPorts(proto: number): boolean {
  return proto === Proto.TCP || proto === Proto.UDP || proto === Proto.SCTP;
}

/** A filter's address, parsed once so the walk over the table compares numbers. */
type AddressMatch = (flow: Flow) => boolean;

function addressMatch(text: string): AddressMatch | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return (f) => f.family === Family.V4 && (f.a4 === v4 || f.b4 === v4);
  const v6 = parseIPv6(text);
  if (v6 === null) return null;
  const w = v6ToWords(v6);
  const same = (x: Uint32Array) => x[0] === w[0] && x[1] === w[1] && x[2] === w[2] && x[3] === w[3];
  return (f) => f.family === Family.V6 && (same(f.a6) || same(f.b6));
}

/**
 * The flows matching `filter`, most recent first, at most `limit`. `ruleName` names the rule a flow
 * was decided by in its generation; `appOf` says what an inspector saw on it. A filter address that
 * is not an address is an error.
 */
export function listFlows(
  table: FlowTable,
  ruleName: (generation: number, index: number) => string,
  filter: FlowFilter,
  limit: number,
  appOf: (flow: Flow) => FlowApp | null = () => null,
): Omit<FlowsMessage, 'type' | 'requestId'> | { error: string } {
  let address: AddressMatch | null = null;
  if (filter.address !== undefined) {
    address = addressMatch(filter.address.trim());
    if (address === null) return { error: `flow filter: '${filter.address}' is not an IPv4 or IPv6 address` };
  }
  const matched: Flow[] = [];
  let total = 0;
  for (const flow of table.flows()) {
    total++;
    if (address !== null && !address(flow)) continue;
    if (filter.port !== undefined && !(hasPorts(flow.proto) && (flow.portA === filter.port || flow.portB === filter.port))) continue;
    if (filter.verdict !== undefined && (flow.wouldDrop ? 'monitor' : 'allow') !== filter.verdict) continue;
    if (filter.rule !== undefined && ruleName(flow.generation, flow.ruleIndex) !== filter.rule) continue;
    matched.push(flow);
  }
  matched.sort((x, y) => y.lastSeen - x.lastSeen);
  const flows = matched.slice(0, limit).map((f) => flowRecord(f, ruleName(f.generation, f.ruleIndex), appOf(f)));
  return { flows, matched: matched.length, total };
}
