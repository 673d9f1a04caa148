import { monitorEventLoopDelay } from 'node:perf_hooks';
import { proposeInBackground } from '../appliance/mgmt/learn/learn-worker';
import { propose } from '../appliance/mgmt/learn/propose';
import { syntheticInventory } from './lib/fake-inventory';
async function main() {
  const inv = syntheticInventory(2000, 100_000);
  const input = { id: 'x', pair: 'p1', conversations: inv.conversationList, assets: inv.assetList, activeText: null, now: Date.UTC(2026, 11, 2, 12), hours: 24 };
  for (let i = 0; i < 3; i++) {
    const h = monitorEventLoopDelay({ resolution: 5 }); h.enable();
    const t0 = performance.now();
    const p = await proposeInBackground(input);
    h.disable();
    console.log('off loop: total ms', Math.round(performance.now() - t0), 'max loop delay ms', Math.round(h.max / 1e6), 'p99', Math.round(h.percentile(99) / 1e6), 'rules', p.rules.length);
  }
  const t1 = performance.now(); propose(input); console.log('on loop ms', Math.round(performance.now() - t1));
}
void main();
