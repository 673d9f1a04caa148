// Offline replay: every frame of a capture through the same engine the bridge runs.
// A capture does not say which port a frame arrived on, so ports are learned from MAC addresses:
// a sender seen before keeps its side, a sender talking to a known MAC sits opposite it, and
// anything else is placed outside (the first talker is taken to be the outside client).

import { DropReason } from '../counters';
import { dropReasonNames } from '../../ipc/stats';
import { decodeErrorNames } from '../decode/errors';
import { Engine } from '../engine';
import { NO_RULE, otherSide, Side, Verdict } from '../verdict';
import { LINKTYPE_ETHERNET, readPcap } from './pcap-file';
import { actionNames, type CompiledPolicy } from '../../policy/types';

export interface ReplayFrame {
  number: number;
  side: 'inside' | 'outside';
  verdict: 'forward' | 'drop' | 'reject' | 'skip';
  /** Rule that decided, when one did. */
  rule: string | null;
  /** Why it was dropped (drop reason, or the decode error for decode drops). */
  reason: string | null;
}

export interface ReplaySummary {
  frames: number;
  forwarded: number;
  dropped: number;
  rejected: number;
  skipped: number;
  byRule: Array<{ rule: string; action: string; packets: number; bytes: number }>;
  dropReasons: Record<string, number>;
}

export async function replayPcap(path: string, policy: CompiledPolicy, onFrame?: (frame: ReplayFrame) => void): Promise<ReplaySummary> {
  const engine = new Engine(policy, 1);
  const sideOfMac = new Map<string, Side>();
  const summary: ReplaySummary = { frames: 0, forwarded: 0, dropped: 0, rejected: 0, skipped: 0, byRule: [], dropReasons: {} };
  let now = 0;
  for await (const frame of readPcap(path)) {
    summary.frames++;
    if (frame.linkType !== LINKTYPE_ETHERNET || frame.length < 14) {
      summary.skipped++;
      onFrame?.({ number: frame.number, side: 'outside', verdict: 'skip', rule: null, reason: 'not an Ethernet frame' });
      continue;
    }
    const dst = frame.data.toString('hex', 0, 6);
    const src = frame.data.toString('hex', 6, 12);
    let side = sideOfMac.get(src);
    if (side === undefined) {
      const dstSide = sideOfMac.get(dst);
      side = dstSide === undefined ? Side.Outside : otherSide(dstSide);
      sideOfMac.set(src, side);
    }
    if (!sideOfMac.has(dst) && (frame.data[0] & 1) === 0) sideOfMac.set(dst, otherSide(side));
    // Captured timestamps are not needed: a steady clock keeps idle timeouts from firing mid-replay.
    now += 1;
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
    onFrame?.({
      number: frame.number,
      side: side === Side.Inside ? 'inside' : 'outside',
      verdict: verdict === Verdict.Forward ? 'forward' : verdict === Verdict.Reject ? 'reject' : 'drop',
      rule,
      reason,
    });
  }
  const totals = engine.ruleTotals();
  summary.byRule = policy.rules.map((r) => ({
    rule: r.name,
    action: actionNames[r.action],
    packets: totals.packets(r.index),
    bytes: totals.bytes(r.index),
  }));
  return summary;
}
