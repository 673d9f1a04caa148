// Asset inventory benchmark: what one batched write costs (time on the loop, bytes appended to the
// WAL) against writing every observations message as its own transaction (the baseline, same run),
// the file's size per 1000 assets / 10 000 conversations, and heap per 10 000 conversations.
// Traffic: 1000 hosts, 10 000 conversations between them; every "message" (5 s of a dataplane)
// updates the active tenth of the conversations (the same polls recur in each message), and a batch
// covers 6 messages (30 s).
//
//   npm run build && node dist/bench/inventory.js [--json]

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import type { ConversationDelta, ObservationsMessage, Sighting } from '../appliance/ipc/messages';
import { INVENTORY_FILE, openInventory, type SqliteInventory } from '../appliance/mgmt/inventory/inventory';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const HOSTS = 1000;
const CONVERSATIONS = 10_000;
const MESSAGES_PER_BATCH = 6;
const SHARE_PER_MESSAGE = 0.1;
const RUNS = 5;
const quiet = { info: () => undefined, warn: () => undefined, error: (f: object, m: string) => console.error(m, f) };

const mac = (i: number) => `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const address = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;

function conversation(i: number, now: number): ConversationDelta {
  const client = i % HOSTS;
  const server = (i * 7 + 1) % HOSTS;
  return {
    proto: 'tcp', client: address(client), clientMac: mac(client), server: address(server), serverMac: mac(server), port: 1000 + Math.floor(i / HOSTS),
    vlan: 0, clientSide: 'outside', rule: 'r', verdict: 'allow', flows: 1, packets: 10, bytes: 1000,
    app: i % 10 === 0 ? { protocol: 'modbus', functions: { 'read-holding-registers': 3 } } : undefined, firstSeen: now - 1000, lastSeen: now,
  };
}

function message(indexes: number[], now: number): ObservationsMessage {
  const sightings: Sighting[] = [];
  return { type: 'observations', sightings, conversations: indexes.map((i) => conversation(i, now)), identities: [], dropped: 0 };
}

/** Bytes this process handed to write(2) so far: the WAL appends and the checkpoints into the file. */
const written = (_file: string) => Number(/^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function fill(inv: SqliteInventory, now: number): void {
  const all = Array.from({ length: CONVERSATIONS }, (_, i) => i);
  for (let from = 0; from < all.length; from += 1000) inv.observe('cell1', message(all.slice(from, from + 1000), now), now);
}

function run(): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'gk-bench-inv-'));
  const file = join(dir, INVENTORY_FILE);
  try {
    const now = Date.now();
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const inv = openInventory({ file, log: quiet, flushIntervalMs: 3_600_000 });
    fill(inv, now);
    gc();
    const heapPer10k = ((process.memoryUsage().heapUsed - heapBefore) * 10_000) / CONVERSATIONS;
    let t0 = performance.now();
    inv.flush();
    const firstFlushMs = performance.now() - t0;

    // Batched: 6 messages, one flush.
    const perMessage = Math.round(CONVERSATIONS * SHARE_PER_MESSAGE);
    const batchMs: number[] = [];
    const batchWal: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      for (let m = 0; m < MESSAGES_PER_BATCH; m++) {
        const start = (r * perMessage) % CONVERSATIONS; // message m of batch r: the same active set
        inv.observe('cell1', message(Array.from({ length: perMessage }, (_, i) => (start + i) % CONVERSATIONS), now + r), now + r);
      }
      const wal = written(file);
      t0 = performance.now();
      inv.flush();
      batchMs.push(performance.now() - t0);
      batchWal.push(Math.max(0, written(file) - wal));
    }
    // Baseline: the same messages, each written on its own (a flush per message).
    const eachMs: number[] = [];
    const eachWal: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      let ms = 0;
      let wal = 0;
      for (let m = 0; m < MESSAGES_PER_BATCH; m++) {
        const start = (r * perMessage) % CONVERSATIONS; // message m of batch r: the same active set
        inv.observe('cell1', message(Array.from({ length: perMessage }, (_, i) => (start + i) % CONVERSATIONS), now + r), now + r);
        const before = written(file);
        t0 = performance.now();
        inv.flush();
        ms += performance.now() - t0;
        wal += Math.max(0, written(file) - before);
      }
      eachMs.push(ms);
      eachWal.push(wal);
    }
    const stats = inv.stats();
    inv.close();
    const fileBytes = statSync(file).size;
    return {
      assets: stats.assets, conversations: stats.conversations, heapPer10kConversationsMB: heapPer10k / 1e6, firstFlushMs,
      batchMs: median(batchMs), perMessageMs: median(eachMs), batchWalKB: median(batchWal) / 1024, perMessageWalKB: median(eachWal) / 1024,
      fileBytesAfterClose: fileBytes, fileKBPer1000Assets10kConversations: fileBytes / 1024,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = run();
const ratioMs = result.perMessageMs / result.batchMs;
const ratioWal = result.perMessageWalKB / Math.max(result.batchWalKB, 1e-9);
if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify({ ...result, ratioMs, ratioWal, loadavg: loadavg() })}\n`);
} else {
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`${result.assets} assets, ${result.conversations} conversations: heap ${result.heapPer10kConversationsMB.toFixed(1)} MB per 10k conversations (with their assets)`);
  console.log(`first write of everything: ${result.firstFlushMs.toFixed(1)} ms`);
  console.log(`one batch of ${MESSAGES_PER_BATCH} messages (each updating the same ${SHARE_PER_MESSAGE * 100}% of the conversations): ${result.batchMs.toFixed(1)} ms, ${result.batchWalKB.toFixed(0)} KiB written`);
  console.log(`baseline, each message its own write: ${result.perMessageMs.toFixed(1)} ms, ${result.perMessageWalKB.toFixed(0)} KiB written`);
  console.log(`ratio baseline/batched: ${ratioMs.toFixed(2)}× time, ${ratioWal.toFixed(2)}× bytes written`);
  console.log(`file after close (checkpointed): ${(result.fileBytesAfterClose / 1024).toFixed(0)} KiB for ${result.assets} assets and ${result.conversations} conversations`);
}
