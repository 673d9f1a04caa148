// Policy changes load on a worker thread: forwarding goes on while a big policy compiles, the tables
// that come back decide exactly like a policy compiled in place, and overlapping requests (a newer
// prepare, an abort, a commit during a SIGHUP reload) each end the way the running policy expects.

import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../appliance/dataplane/engine';
import { Side } from '../appliance/dataplane/verdict';
import { RunningPolicy } from '../appliance/dataplane/running-policy';
import { generatePolicyText, prng } from '../appliance/policy/generate';
import { loadPolicyText } from '../appliance/policy/load';
import { frame } from './lib/frames';

const small = (port: number) => `version: 1
default: deny
groups:
  client: [198.18.1.10]
  server: [198.18.1.100]
rules:
  - name: web
    from: client
    to: server
    service: tcp/${port}
    action: allow
`;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function harness(t: Test, text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'gk-running-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, text);
  const first = loadPolicyText(text, path);
  if (!first.ok) throw new Error('test policy refused');
  const engine = new Engine(first.policy, 1);
  const running = new RunningPolicy(engine, path, { policy: first.policy, groups: first.model.groups, generation: 1 });
  return { engine, running, path };
}

t.test('a 10k-rule prepare compiles aside while packets keep flowing, and decides like an in-place compile', async (t) => {
  const h = harness(t, small(80));
  const big = generatePolicyText(10_000, 7);
  const syn = frame({ src: '198.18.1.10', dst: '198.18.1.100', proto: 'tcp', dport: 80, flags: 'S' });

  // Frames handled on this thread while the compile runs: a compile on this thread would allow none.
  let loading = true;
  let framesDuringLoad = 0;
  const pump = (): void => {
    if (!loading) return;
    h.engine.process(syn, syn.length, Side.Outside, Date.now());
    framesDuringLoad++;
    setImmediate(pump);
  };
  setImmediate(pump);
  const prepared = await h.running.prepare(big, 'generated-10k.yaml');
  loading = false;
  t.ok(prepared.ok, 'the generated policy compiles');
  t.ok(framesDuringLoad > 100, `the packet loop ran during the compile (${framesDuringLoad} frames)`);
  t.equal(h.engine.generation, 1, 'preparing changes nothing yet');

  const committed = h.running.commit();
  t.ok(committed.ok);
  t.equal(h.engine.generation, 2);
  t.equal(h.engine.policy.sourceHash, sha256(big));
  t.equal(h.running.current.groups.size, h.engine.policy.stats.groups, 'the groups came across for the event log');

  // The tables crossed a thread boundary: they must answer exactly as tables compiled here.
  const here = loadPolicyText(big, 'generated-10k.yaml');
  if (!here.ok) throw new Error('unreachable: compiled in the worker');
  const rnd = prng(11);
  const int = (n: number) => Math.floor(rnd() * n);
  const inside = (intervals: number[]): number => {
    const i = int(intervals.length >> 1) << 1;
    return intervals[i] + int(Math.min(intervals[i + 1] - intervals[i] + 1, 0x10000));
  };
  // Probes inside the rules' own ranges (random addresses would almost all fall to the default).
  const rules = here.model.rules.filter((r) => r.enabled && r.src.v4.length > 0 && r.dst.v4.length > 0 && !r.services.any);
  let differences = 0;
  let nonDefault = 0;
  for (let i = 0; i < 20_000; i++) {
    const rule = rules[int(rules.length)];
    const [proto, keys] = [...rule.services.protos.entries()][int(rule.services.protos.size)];
    const src = inside(rule.src.v4);
    const dst = inside(rule.dst.v4);
    const key = keys.length > 0 ? inside(keys) : 0;
    const expected = here.policy.match4(src, dst, proto, key);
    if (h.engine.policy.match4(src, dst, proto, key) !== expected) differences++;
    if (expected !== here.policy.rules.length - 1) nonDefault++;
    const src6 = new Uint32Array([0x20010db8, int(16), int(64), int(256)]);
    const dst6 = new Uint32Array([0x20010db8, int(16), int(64), int(256)]);
    if (h.engine.policy.match6(src6, dst6, proto, key) !== here.policy.match6(src6, dst6, proto, key)) differences++;
  }
  t.ok(nonDefault > 1000, `the probes reach real rules (${nonDefault} of 20000 not on the default)`);
  t.equal(differences, 0, 'worker-compiled tables decide like tables compiled in place');
});

t.test('a bad policy is refused with file:line:col from the worker; the running one stays', async (t) => {
  const h = harness(t, small(80));
  const result = await h.running.prepare('version: 1\nrules:\n  - name: x\n    from: nowhere\n    to: any\n    service: any\n    action: allow\n', 'bad.yaml');
  t.notOk(result.ok);
  if (result.ok) return;
  t.match(result.errors[0], { file: 'bad.yaml', line: 4, severity: 'error', message: /unknown group 'nowhere'/ });
  t.equal(h.running.commit().ok, false, 'nothing to commit');
  t.equal(h.engine.generation, 1);
});

t.test('a newer prepare or an abort voids a prepare still compiling', async (t) => {
  const h = harness(t, small(80));
  const first = h.running.prepare(small(81), 'first');
  const second = h.running.prepare(small(82), 'second');
  const [a, b] = await Promise.all([first, second]);
  t.notOk(a.ok, 'the older prepare is void');
  if (!a.ok) t.match(a.errors[0].message, /replaced by a newer prepare or aborted/);
  t.ok(b.ok);
  const committed = h.running.commit();
  t.ok(committed.ok);
  t.equal(h.engine.policy.sourceHash, sha256(small(82)), 'the newer text runs');

  const third = h.running.prepare(small(83), 'third');
  h.running.abort();
  t.notOk((await third).ok, 'aborted while compiling');
  t.equal(h.running.commit().ok, false, 'nothing left to commit after the abort');
  t.equal(h.engine.policy.sourceHash, sha256(small(82)));
});

t.test('a commit during a SIGHUP reload: the reload reads the file again and runs what it holds', async (t) => {
  // A file that takes a while to compile, so the commit surely lands while the reload compiles it
  // (a small one can compile on the warm worker before the next turn of the loop).
  const h = harness(t, generatePolicyText(3000, 7));
  t.ok((await h.running.prepare(small(90), 'management')).ok);
  const reload = h.running.reload();
  await new Promise((resolve) => setImmediate(resolve));
  // The reload has read the file and is compiling it; the commit rewrites the file.
  const committed = h.running.commit();
  t.ok(committed.ok);
  t.equal(h.engine.generation, 2);
  const reloaded = await reload;
  t.ok(reloaded.ok);
  if (!reloaded.ok) return;
  t.equal(reloaded.version.generation, 3);
  t.equal(h.engine.policy.sourceHash, sha256(small(90)), 'the committed policy still runs, not the file as it was');
});

t.test('a file that cannot be read is a load error, not a crash', async (t) => {
  const h = harness(t, small(80));
  rmSync(h.path);
  const result = await h.running.reload();
  t.notOk(result.ok);
  if (!result.ok) t.match(result.errors[0], { file: h.path, message: /cannot read policy/ });
  t.equal(h.engine.generation, 1, 'the running policy stays');
});
