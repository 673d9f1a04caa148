// Learn-mode propose on a big synthetic pair (test/lib/fake-inventory.ts syntheticInventory: 2000
// assets, 100k conversations): the time propose() takes on the caller's thread, and, through
// learn-worker.ts, the whole round trip and the longest the event loop was held meanwhile (the
// figure that must stay small: the loop also serves the API, the dataplane hub and the SIEM export).
//
//   npx tsc -p tsconfig.json && node dist/bench/learn-propose.js [--assets N] [--conversations N] [--spread]
//   (--spread: any client talks to any server, so few assets merge: the many-rules case)

import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { proposeInBackground } from '../appliance/mgmt/learn/learn-worker';
import { propose } from '../appliance/mgmt/learn/propose';
import { syntheticInventory } from '../test/lib/fake-inventory';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const assets = arg('assets', 2000);
  const conversations = arg('conversations', 100_000);
  const spread = process.argv.includes('--spread');
  const inv = syntheticInventory(assets, conversations, 1, spread);
  const input = { id: 'bench', pair: 'p1', conversations: inv.conversationList, assets: inv.assetList, activeText: null,
    now: Date.UTC(2026, 11, 2, 12), hours: 24 };
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${assets} assets, ${conversations} conversations`);
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const p = propose(input);
    console.log(`on the loop:  propose ${Math.round(performance.now() - t0)} ms (${p.groups.length} groups, ${p.rules.length} rules, share ${p.coverage.share.toFixed(3)})`);
  }
  for (let i = 0; i < 3; i++) {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const t0 = performance.now();
    await proposeInBackground(input);
    delay.disable();
    console.log(`off the loop: round trip ${Math.round(performance.now() - t0)} ms, longest loop delay ${Math.round(delay.max / 1e6)} ms, p99 ${Math.round(delay.percentile(99) / 1e6)} ms`);
  }
}

void main();
