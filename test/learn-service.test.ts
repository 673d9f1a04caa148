// Learn sessions (appliance/mgmt/learn/learn-service.ts) with a fake clock and a fake mode control:
// the period ends by itself, a restart resumes or ends it, monitor mode is set and restored,
// asset.new is switched on after learning, events are raised, proposals are kept for review; and
// the real mode control rewrites the policy's mode line.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { LearnEvent } from '../appliance/ipc/events';
import { LearnService, PolicyModeControl, type Clock, type LearnDeps, type ModeControl, type PolicyAccess } from '../appliance/mgmt/learn/learn-service';
import type { PolicyService } from '../appliance/mgmt/services/policy';
import { withMode } from '../appliance/mgmt/learn/merge';
import { loadPolicyText } from '../appliance/policy/load';
import { FakeInventory, makeAsset, makeConversation } from './lib/fake-inventory';

const START = Date.UTC(2026, 11, 2, 8);
const HOUR = 3_600_000;

class FakeClock implements Clock {
  t = START;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now(): number { return this.t; }
  setTimer(fn: () => void, ms: number): unknown { const id = ++this.ids; this.timers.push({ at: this.t + ms, fn, id }); return id; }
  clearTimer(h: unknown): void { this.timers = this.timers.filter((x) => x.id !== h); }
  pending(): number { return this.timers.length; }
  /** Moves time on, firing what falls due (in order). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

class FakeModes implements ModeControl {
  mode: 'enforce' | 'monitor' | null = 'enforce';
  calls: string[] = [];
  fail = false;
  current() { return this.mode; }
  async set(pair: string, mode: 'enforce' | 'monitor', author: string) {
    if (this.fail) throw new Error('dataplane p1 refused');
    this.calls.push(`${pair} ${mode} ${author}`);
    this.mode = mode;
  }
}

// The real policy service is what PolicyModeControl is given when wired (a type error here otherwise).
export type PolicyServiceFits = PolicyService extends PolicyAccess ? true : never;
const fits: PolicyServiceFits = true;
void fits;

const settle = () => new Promise((r) => setImmediate(r));

function harness(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'learn-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock();
  const modes = new FakeModes();
  const hmi = makeAsset({ mac: '02:00:5e:20:00:03', addresses: ['198.18.20.3'], lastSeen: START + HOUR });
  const plc = makeAsset({ mac: '02:00:5e:10:00:0a', addresses: ['198.18.10.10'], lastSeen: START + HOUR });
  const old = makeAsset({ mac: '02:00:5e:10:00:0b', addresses: ['198.18.10.11'], lastSeen: START - 48 * HOUR });
  const inventory = new FakeInventory([hmi, plc, old], [makeConversation(hmi, plc, { firstSeen: START, lastSeen: START + HOUR })]);
  const events: LearnEvent[] = [];
  const logged: string[] = [];
  const deps: LearnDeps = {
    inventory, modes, clock, stateFile: join(dir, 'learn.json'), pairs: () => ['p1', 'p2'], onEvent: (e) => events.push(e),
    activeText: () => 'version: 1\nrules:\n  - name: x\n    from: 198.18.99.1\n    to: any\n    service: ssh\n    action: allow\n',
    log: { warn: (_o, m) => logged.push(m), error: (_o, m) => logged.push(m) },
  };
  const make = () => new LearnService(deps);
  return { dir, clock, modes, inventory, events, logged, deps, make };
}

t.test('monitor learning: monitor mode for the period, the previous mode after, asset.new on', async (t) => {
  const h = harness(t);
  const learn = h.make();
  await learn.resume();
  t.same(learn.status().map((s) => [s.pair, s.state]), [['p1', 'idle'], ['p2', 'idle']]);
  const st = await learn.start('p1', 24 * HOUR, 'monitor', 'alice');
  t.same(h.modes.calls, ['p1 monitor alice']);
  t.same({ state: st.state, mode: st.mode, startedAt: st.startedAt, endsAt: st.endsAt, author: st.author },
    { state: 'learning', mode: 'monitor', startedAt: START, endsAt: START + 24 * HOUR, author: 'alice' });
  t.equal(st.assets, 2, 'assets seen since the start');
  t.equal(st.conversations, 1);
  t.same(h.inventory.announce, [{ pair: 'p1', on: false }]);
  t.same(h.events.map((e) => [e.type, e.pair, e.author, e.durationMs]), [['learn.start', 'p1', 'alice', 24 * HOUR]]);
  await t.rejects(learn.start('p1', HOUR, 'enforce', 'bob'), { statusCode: 409, message: /learning already/ });
  h.clock.advance(24 * HOUR - 1);
  t.equal(learn.status()[0].state, 'learning');
  h.clock.advance(1);
  await settle();
  t.equal(learn.status()[0].state, 'done');
  t.same(h.modes.calls, ['p1 monitor alice', 'p1 enforce system']);
  t.same(h.inventory.announce, [{ pair: 'p1', on: false }, { pair: 'p1', on: true }]);
  t.same(h.events.map((e) => [e.type, e.detail]).slice(1), [['learn.stop', 'period over; enforce mode restored']]);
  t.equal(h.clock.pending(), 0);
});

t.test('stop by hand restores the mode; enforce learning never touches it; unknown pairs are 404', async (t) => {
  const h = harness(t);
  const learn = h.make();
  await learn.resume();
  await learn.start('p1', HOUR, 'monitor', 'alice');
  h.clock.advance(10 * 60_000);
  const st = await learn.stop('p1', 'bob');
  t.equal(st.state, 'done');
  t.equal(st.endsAt, START + 10 * 60_000, 'endsAt is when it stopped');
  t.same(h.modes.calls, ['p1 monitor alice', 'p1 enforce bob']);
  t.equal(h.events.at(-1)!.detail, 'stopped by bob; enforce mode restored');
  await t.rejects(learn.stop('p1', 'bob'), { statusCode: 409, message: "pair 'p1' is not learning" });
  await learn.start('p2', HOUR, 'enforce', 'carol');
  h.clock.advance(HOUR);
  await settle();
  t.same(h.modes.calls.length, 2, 'enforce learning changes no mode');
  await t.rejects(learn.start('p9', HOUR, 'enforce', 'x'), { statusCode: 404, message: "pair 'p9': no such pair (known: p1, p2)" });
});

t.test('already in monitor mode: nothing to restore; two pairs share monitor mode until the last ends', async (t) => {
  const h = harness(t);
  const learn = h.make();
  await learn.resume();
  await learn.start('p1', HOUR, 'monitor', 'alice');
  await learn.start('p2', 3 * HOUR, 'monitor', 'alice');
  t.same(h.modes.calls, ['p1 monitor alice'], 'p2 finds monitor mode set');
  h.clock.advance(HOUR);
  await settle();
  t.equal(h.modes.mode, 'monitor', 'p2 still learns: monitor mode stays');
  h.clock.advance(2 * HOUR);
  await settle();
  t.equal(h.modes.mode, 'enforce', 'restored when the last one ends');
});

t.test('a restart resumes a running period and ends one that ended meanwhile', async (t) => {
  const h = harness(t);
  const first = h.make();
  await first.resume();
  await first.start('p1', 2 * HOUR, 'monitor', 'alice');
  await first.start('p2', 10 * HOUR, 'enforce', 'alice');
  first.close();
  const saved = JSON.parse(readFileSync(h.deps.stateFile, 'utf8'));
  t.equal(saved.sessions.length, 2);
  // Management is down for three hours.
  h.clock.t += 3 * HOUR;
  h.events.length = 0;
  const second = h.make();
  await second.resume();
  const byPair = new Map(second.status().map((s) => [s.pair, s]));
  t.equal(byPair.get('p1')!.state, 'done');
  t.equal(byPair.get('p1')!.endsAt, START + 2 * HOUR);
  t.equal(h.modes.mode, 'enforce', 'p1 ended while management was down: enforce mode restored (p2 learns enforcing)');
  t.same(h.events.map((e) => [e.type, e.pair, e.detail]), [['learn.stop', 'p1', 'period over (it ended while management was down); enforce mode restored']]);
  t.equal(byPair.get('p2')!.state, 'learning');
  h.clock.advance(7 * HOUR);
  await settle();
  t.equal(second.status().find((s) => s.pair === 'p2')!.state, 'done', 'the resumed timer ends p2');
  // Done sessions switch asset.new on again after a restart.
  const third = h.make();
  h.inventory.announce.length = 0;
  await third.resume();
  t.same(h.inventory.announce.sort((a, b) => a.pair.localeCompare(b.pair)), [{ pair: 'p1', on: true }, { pair: 'p2', on: true }]);
});

t.test('a damaged state file is logged and forgotten; a failing mode change fails the start', async (t) => {
  const h = harness(t);
  writeFileSync(h.deps.stateFile, '{not json');
  const learn = h.make();
  await learn.resume();
  t.match(h.logged, ['the learn state file could not be read; learning sessions are forgotten']);
  h.modes.fail = true;
  await t.rejects(learn.start('p1', HOUR, 'monitor', 'alice'), { message: 'dataplane p1 refused' });
  t.equal(learn.status()[0].state, 'idle', 'nothing started');
  t.same(h.events, []);
});

t.test('a start that cannot be recorded (state disk) starts nothing and puts the mode back', async (t) => {
  const h = harness(t);
  const learn = new LearnService({ ...h.deps, stateFile: join(h.dir, 'missing-dir', 'learn.json') });
  await learn.resume();
  await t.rejects(learn.start('p1', HOUR, 'monitor', 'alice'), { message: /could not write learn.json in the state directory/ });
  t.same(h.modes.calls, ['p1 monitor alice', 'p1 enforce alice']);
  t.equal(learn.status()[0].state, 'idle');
  t.same(h.events, []);
  t.equal(h.clock.pending(), 0);
});

t.test('a restore that fails is logged and said in learn.stop', async (t) => {
  const h = harness(t);
  const learn = h.make();
  await learn.resume();
  await learn.start('p1', HOUR, 'monitor', 'alice');
  h.modes.fail = true;
  h.clock.advance(HOUR);
  await settle();
  t.equal(h.events.at(-1)!.detail, 'period over; enforce mode could not be restored: dataplane p1 refused');
  t.match(h.logged, ['learning ended but the previous mode could not be restored']);
});

t.test('propose keeps the latest proposal per pair; review refers to it by id', async (t) => {
  const h = harness(t);
  const learn = h.make();
  await learn.resume();
  await learn.start('p1', HOUR, 'enforce', 'alice');
  const p = await learn.propose('p1', 24);
  t.equal(p.pair, 'p1');
  t.equal(p.rules.length, 1);
  t.same(p.errors, []);
  await t.rejects(learn.review('p1', 'nope', []), { statusCode: 404, message: /proposal nope is not the latest for pair 'p1'/ });
  await t.rejects(learn.review('p2', p.id, []), { statusCode: 404, message: /pair 'p2' has no proposal/ });
  await t.rejects(learn.review('p1', p.id, [{ kind: 'group', id: 'g99', accept: true }]), { statusCode: 400, message: /no such group/ });
  const decisions = [...p.groups.map((g) => ({ kind: 'group' as const, id: g.id, accept: true })), { kind: 'rule' as const, id: p.rules[0].id, accept: true }];
  const r = await learn.review('p1', p.id, decisions);
  t.ok(loadPolicyText(r.text, 'x').ok, 'the reviewed text compiles');
  t.match(r.diff, /\+  - name: /);
});

t.test('the policy mode control rewrites the mode line (or adds one) and applies it', async (t) => {
  t.equal(withMode('version: 1\nmode: enforce # cell\nrules: []\n', 'monitor'), 'version: 1\nmode: monitor # cell\nrules: []\n');
  t.equal(withMode('version: 1\nrules: []\n', 'monitor'), 'version: 1\nmode: monitor\nrules: []\n');
  t.ok(loadPolicyText(withMode('version: 1\nrules: []\n', 'monitor'), 'x').ok);
  const applied: string[] = [];
  let active = { text: 'version: 1\nrules: []\n', mode: 'enforce' as 'enforce' | 'monitor' };
  const control = new PolicyModeControl({
    active: () => active,
    apply: async (text, comment, by) => { applied.push(`${comment} by ${by.user}`); active = { text, mode: /mode: monitor/.test(text) ? 'monitor' : 'enforce' }; },
  });
  await control.set('p1', 'monitor', 'alice', 'learning on pair p1');
  t.same(applied, ['monitor mode: learning on pair p1 by alice']);
  t.equal(control.current(), 'monitor');
  await control.set('p1', 'monitor', 'alice', 'again');
  t.equal(applied.length, 1, 'no apply when the mode is already right');
});
