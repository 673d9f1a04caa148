// Offline replay: every frame of a capture through the same engine the bridge runs, at the capture's
// own times (each record's timestamp is the engine's `now` and the flow tables' clock, so idle
// timeouts fire as they would have live). A capture does not say which port a frame arrived on:
// with `inside` (addresses, CIDRs or MACs behind the inside port) a frame whose source is inside
// came from the inside port and every other one from the outside; without it, ports are learned
// from MAC addresses (a sender seen before keeps its side, a sender talking to a known MAC sits
// opposite it, anything else is placed outside: the first talker is taken to be the outside client).
// The summary says which way the sides were decided. Offline tooling: allocation is fine here.

import { DropReason } from '../counters';
import { dropReasonNames } from '../../ipc/stats';
import { decodeFrame } from '../decode/decoder';
import { decodeErrorNames } from '../decode/errors';
import { Packet } from '../decode/packet';
import { Engine } from '../engine';
import { LINKTYPE_ETHERNET, readPcap } from './pcap-file';
import { NO_RULE, otherSide, Side, Verdict } from '../verdict';
import { actionNames, type CompiledPolicy } from '../../policy/types';
import { EtherType, Family } from '../../wire/protocols';
import { parseIPv4, parseIPv6, wordsToV6 } from '../../wire/address-text';

export interface ReplayFrame {
  number: number;
  side: 'inside' | 'outside';
  verdict: 'forward' | 'drop' | 'reject' | 'skip';
  /** Rule that decided, when one did. */
  rule: string | null;
  /** Why it was dropped (drop reason, or the decode error for decode drops). */
  reason: string | null;
  /** Why an application-layer block (`modbus:`) refused or held it, also when monitor mode forwarded it. */
  inspector: string | null;
}

export interface ReplaySummary {
  frames: number;
  forwarded: number;
  dropped: number;
  rejected: number;
  skipped: number;
  /** How each frame's port was decided: from --inside, or learned from MAC addresses. */
  sides: string;
  byRule: Array<{ rule: string; action: string; packets: number; bytes: number; violations: number }>;
  dropReasons: Record<string, number>;
  /** Application-layer refusals and holds by the inspector's reason (monitor mode's would-be ones too). */
  inspectorReasons: Record<string, number>;
}

export interface ReplayOptions {
  /** What sits behind the inside port (parseInside); without it, ports are learned from MAC addresses. */
  inside?: Inside | null;
}

/** What sits behind the inside port: IPv4/IPv6 addresses or CIDRs, and MAC addresses. */
export interface Inside {
  /** As the user wrote it. */
  text: string;
  macs: Set<string>;
  v4: Array<{ network: number; mask: number }>;
  v6: Array<{ network: bigint; mask: bigint }>;
}

const MAC = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;
const ALL_V6 = (1n << 128n) - 1n;

/** Parse --inside values: null for none, the message when one cannot be read. */
export function parseInside(values: readonly string[]): Inside | null | string {
  if (values.length === 0) return null;
  const inside: Inside = { text: values.join(', '), macs: new Set(), v4: [], v6: [] };
  for (const value of values) {
    if (MAC.test(value)) {
      inside.macs.add(value.toLowerCase().replace(/[:-]/g, ''));
      continue;
    }
    const [address, length, extra] = value.split('/');
    const v4 = parseIPv4(address);
    const v6 = v4 === null ? parseIPv6(address) : null;
    const max = v4 !== null ? 32 : 128;
    const bits = length === undefined ? max : /^\d+$/.test(length) ? Number(length) : NaN;
    if ((v4 === null && v6 === null) || extra !== undefined || !(bits <= max)) {
      return `--inside ${value}: not an IPv4/IPv6 address, CIDR or MAC address`;
    }
    const prefix = bits;
    if (v4 !== null) {
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
      inside.v4.push({ network: (v4 & mask) >>> 0, mask });
    } else {
      const mask = prefix === 0 ? 0n : (ALL_V6 << BigInt(128 - prefix)) & ALL_V6;
      inside.v6.push({ network: (v6 as bigint) & mask, mask });
    }
  }
  return inside;
}

function isInside(inside: Inside, srcMac: string, pkt: Packet): boolean {
  if (inside.macs.has(srcMac)) return true;
  if (pkt.family === Family.V4) return inside.v4.some((n) => ((pkt.src4 & n.mask) >>> 0) === n.network);
  if (pkt.family === Family.V6) {
    const src = wordsToV6(pkt.src6);
    return inside.v6.some((n) => (src & n.mask) === n.network);
  }
  if (pkt.etherType === EtherType.ARP && pkt.arpOp !== 0) {
    return inside.v4.some((n) => ((pkt.arpSenderIp & n.mask) >>> 0) === n.network);
  }
  return false;
}

export async function replayPcap(path: string, policy: CompiledPolicy, onFrame?: (frame: ReplayFrame) => void,
  options: ReplayOptions = {}): Promise<ReplaySummary> {
  const inside = options.inside ?? null;
  // The capture's clock: record times drive idle timeouts and the reject limit, as live traffic would.
  let now = 0;
  const engine = new Engine(policy, 1, { clock: { now: () => now } });
  const sideOfMac = new Map<string, Side>();
  const source = new Packet();
  const summary: ReplaySummary = {
    frames: 0, forwarded: 0, dropped: 0, rejected: 0, skipped: 0,
    sides: inside === null
      ? 'learned from MAC addresses (the first talker is outside); use --inside when frames share MACs'
      : `frames from ${inside.text} came in on the inside port, all others on the outside`,
    byRule: [], dropReasons: {}, inspectorReasons: {},
  };
  for await (const frame of readPcap(path)) {
    summary.frames++;
    if (frame.linkType !== LINKTYPE_ETHERNET || frame.length < 14) {
      summary.skipped++;
      onFrame?.({ number: frame.number, side: 'outside', verdict: 'skip', rule: null, reason: 'not an Ethernet frame', inspector: null });
      continue;
    }
    const dst = frame.data.toString('hex', 0, 6);
    const src = frame.data.toString('hex', 6, 12);
    let side: Side;
    if (inside !== null) {
      decodeFrame(frame.data, frame.length, source);
      side = isInside(inside, src, source) ? Side.Inside : Side.Outside;
    } else {
      const known = sideOfMac.get(src);
      if (known === undefined) {
        const dstSide = sideOfMac.get(dst);
        side = dstSide === undefined ? Side.Outside : otherSide(dstSide);
        sideOfMac.set(src, side);
      } else {
        side = known;
      }
      if (!sideOfMac.has(dst) && (frame.data[0] & 1) === 0) sideOfMac.set(dst, otherSide(side));
    }
    now = frame.timeMs;
    const result = engine.process(frame.data, frame.length, side, now);
    const verdict = result.verdict;
    const rule = result.rule !== NO_RULE ? policy.rules[result.rule].name : null;
    let reason: string | null = null;
    if (verdict === Verdict.Forward) summary.forwarded++;
    else if (verdict === Verdict.Reject) summary.rejected++;
    else summary.dropped++;
    if (verdict !== Verdict.Forward) {
      const dropName = dropReasonNames[result.reason];
      reason = result.reason === DropReason.Decode ? `decode:${decodeErrorNames[engine.pkt.error]}` : dropName;
      summary.dropReasons[dropName] = (summary.dropReasons[dropName] ?? 0) + 1;
    }
    const inspector = result.inspectorReason;
    if (inspector !== null) summary.inspectorReasons[inspector] = (summary.inspectorReasons[inspector] ?? 0) + 1;
    onFrame?.({
      number: frame.number,
      side: side === Side.Inside ? 'inside' : 'outside',
      verdict: verdict === Verdict.Forward ? 'forward' : verdict === Verdict.Reject ? 'reject' : 'drop',
      rule,
      reason,
      inspector,
    });
  }
  const totals = engine.ruleTotals();
  summary.byRule = policy.rules.map((r) => ({
    rule: r.name,
    action: actionNames[r.action],
    packets: totals.packets(r.index),
    bytes: totals.bytes(r.index),
    violations: totals.violations(r.index),
  }));
  return summary;
}
