// The policy-loading worker thread (started by load-worker.ts, never imported): for each text it is
// sent, loads and compiles it with loadPolicyTables() and posts the result, transferring the tables'
// buffers. One load at a time, in order; it keeps no state between loads. The compiler, the YAML
// parser and the schema validator load here, off the caller's thread.

import { parentPort } from 'node:worker_threads';
import { loadPolicyTables } from './load';
import type { WorkerInput, WorkerReply } from './load-worker';
import type { PolicyTables } from './types';

/**
 * Every buffer behind the tables' typed arrays, once each (a transfer list must not repeat one). The
 * rules' modbus blocks (a few words each) are copied with the rules rather than transferred.
 */
function buffersOf(t: PolicyTables): ArrayBuffer[] {
  const arrays = [t.ruleActions, t.l2Allow, t.bitsets, t.keySlot, t.keyed, t.protoSet, t.bound4, t.bound4Macs, t.bound6, t.bound6Macs];
  for (const field of [t.src4, t.dst4]) arrays.push(field.top, field.mid, field.runs);
  for (const field of [t.src6, t.dst6]) arrays.push(field.bounds, field.sets);
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

function run({ text, file }: WorkerInput): void {
  const loaded = loadPolicyTables(text, file);
  if (!loaded.ok) {
    parentPort!.postMessage(loaded satisfies WorkerReply);
    return;
  }
  const reply: WorkerReply = { ok: true, tables: loaded.tables, groups: loaded.model.groups, warnings: loaded.warnings };
  parentPort!.postMessage(reply, buffersOf(loaded.tables));
}

parentPort!.on('message', run);
