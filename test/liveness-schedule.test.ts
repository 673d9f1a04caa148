// The liveness prober's schedule with a scripted EchoTransport (the sockets are tested for real in
// liveness-lab.test.ts): the K-misses rule exactly (misses interrupted by an answer never make an
// asset down), which address of an asset is probed, group changes in the settings and in the active
// policy taking effect without a restart, and failures of the inventory, the event path and the
// sockets counted and logged, never thrown.

import t from 'tap';
import type { AssetEvent } from '../appliance/ipc/events';
import { LivenessProber, probeable, type EchoResult, type EchoTransport } from '../appliance/mgmt/inventory/liveness';
import type { Asset, AssetFilter, Inventory } from '../appliance/mgmt/inventory/types';
import { DEFAULT_LIVENESS, type LivenessSettings } from '../appliance/mgmt/state/settings';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !what()) await sleep(20);
  return what();
}

/** Answers per address from a script (true: answered in 1 ms; false: timeout); records every echo. */
class ScriptedEcho implements EchoTransport {
  readonly echoes: string[] = [];
  refuse: string | null = null;
  opened = 0;
  constructor(readonly script: Record<string, boolean[]> = {}) {}
  open(): string | null {
    this.opened++;
    return this.refuse;
  }
  async echo(address: string): Promise<EchoResult> {
    const n = this.echoes.filter((a) => a === address).length;
    this.echoes.push(address);
    const answers = this.script[address] ?? [];
    return (answers[n] ?? true) ? { kind: 'answered', rttMs: 1 } : { kind: 'timeout' };
  }
  close(): void {}
}

function asset(id: number, addresses: string[], extra: Partial<Asset> = {}): Asset {
  return {
    id, pair: 'pair0', mac: `02:00:00:00:00:0${id}`, vendor: null, addresses, router: false, vlan: 0, side: 'inside', name: null,
    identity: {}, firstSeen: 0, lastSeen: 0, packets: 0, bytes: 0, offers: [], uses: [],
    liveness: { state: 'unknown', rttMs: null, checkedAt: null, changedAt: null }, ...extra,
  };
}

class Recording implements Pick<Inventory, 'assets' | 'liveness'> {
  readonly calls: [number, boolean][] = [];
  fail = false;
  constructor(public list: Asset[]) {}
  assets(filter: AssetFilter): Asset[] {
    return this.list.slice(0, filter.limit);
  }
  liveness(id: number, answered: boolean): AssetEvent | null {
    if (this.fail) throw new Error('database is locked');
    this.calls.push([id, answered]);
    return { type: answered ? 'asset.up' : 'asset.down', asset: id } as AssetEvent;
  }
}

function logger() {
  const lines: string[] = [];
  const add = (level: string) => (_: object, msg: string) => void lines.push(`${level}: ${msg}`);
  return { lines, info: add('info'), warn: add('warn'), error: add('error') };
}

const policy = (plc: string, hmi: string) => `version: 1
mode: enforce
default: deny
groups:
  plc:
    members: [${plc}]
  hmi:
    members: [${hmi}]
rules:
  - name: r
    from: hmi
    to: plc
    service: ping
    action: allow
`;

const FAST: LivenessSettings = { ...DEFAULT_LIVENESS, enabled: true, intervalSeconds: 1, timeoutMs: 100, downAfter: 3, maxProbesPerSecond: 100,
  groups: { plc: { enabled: true }, hmi: { enabled: false } } };

t.test('down only after K consecutive misses; an answer resets the count', async (t) => {
  // .10: miss, miss, answer, miss, miss, miss -> never down until the 6th probe.
  const echo = new ScriptedEcho({ '198.18.7.10': [false, false, true, false, false, false] });
  const inventory = new Recording([asset(1, ['198.18.7.10'])]);
  const events: AssetEvent[] = [];
  const text = policy('198.18.7.0/24', '198.18.8.0/24');
  const prober = new LivenessProber({ inventory, settings: () => FAST, activePolicy: () => ({ text, hash: 'a' }), log: logger(),
    onEvent: (e) => events.push(e), transport: echo });
  prober.start();
  t.teardown(() => prober.stop());
  t.ok(await waitFor(() => echo.echoes.length >= 6, 20_000), `6 probes (${echo.echoes.length})`);
  prober.stop();
  t.same(inventory.calls, [[1, true], [1, false]], 'the inventory hears of the answer and of the 3rd consecutive miss only');
  t.same(events.map((e) => e.type), ['asset.up', 'asset.down'], 'and its events are handed on');
  t.same(prober.counters(), { sent: 6, answered: 1, timeouts: 5, errors: 0, targets: 0, disabled: 0 });
});

t.test('what is probed follows the settings and the active policy, without a restart', async (t) => {
  const echo = new ScriptedEcho();
  const inventory = new Recording([
    asset(1, ['fe80::1', '198.18.7.10', '2001:2:0:7::10']), // link-local skipped; the most recent probeable address in a group
    asset(2, ['198.18.8.20']), // hmi
    asset(3, ['198.18.9.30']), // in no group
    asset(4, ['198.18.7.40'], { router: true }),
  ]);
  let settings = FAST;
  let active = { text: policy('198.18.7.0/24', '198.18.8.0/24'), hash: 'a' };
  const prober = new LivenessProber({ inventory, settings: () => settings, activePolicy: () => active, log: logger(),
    onEvent: () => undefined, transport: echo });
  prober.start();
  t.teardown(() => prober.stop());
  t.ok(await waitFor(() => echo.echoes.length >= 1, 5000), 'probing');
  await sleep(300);
  t.same([...new Set(echo.echoes)], ['198.18.7.10'], 'only the plc asset, at its most recent probeable address');

  settings = { ...FAST, groups: { plc: { enabled: false }, hmi: { enabled: true, intervalSeconds: 2 } } };
  const mark = echo.echoes.length;
  t.ok(await waitFor(() => echo.echoes.slice(mark).includes('198.18.8.20'), 5000), 'hmi switched on: its asset is probed');
  await sleep(300);
  t.same([...new Set(echo.echoes.slice(mark))], ['198.18.8.20'], 'and plc switched off: its asset no longer');

  active = { text: policy('198.18.7.0/24', '198.18.9.0/24'), hash: 'b' };
  const mark2 = echo.echoes.length;
  t.ok(await waitFor(() => echo.echoes.slice(mark2).includes('198.18.9.30'), 5000), 'a new policy moves asset 3 into hmi: probed');
  await sleep(2200);
  t.notOk(echo.echoes.slice(mark2 + 1).includes('198.18.8.20'), 'asset 2, no longer in hmi, is not');

  settings = DEFAULT_LIVENESS;
  await sleep(300);
  const mark3 = echo.echoes.length;
  await sleep(1500);
  t.equal(echo.echoes.length, mark3, 'switched off: nothing more');
  t.equal(prober.status().state, 'off');
});

t.test('failures are counted and logged, never thrown', async (t) => {
  const echo = new ScriptedEcho({ '198.18.7.10': [false, false, false, false, false, false, false] });
  const inventory = new Recording([asset(1, ['198.18.7.10'])]);
  const log = logger();
  const text = policy('198.18.7.0/24', '198.18.8.0/24');
  let settings: LivenessSettings = { ...FAST, downAfter: 1 };
  const prober = new LivenessProber({ inventory, settings: () => settings, activePolicy: () => ({ text, hash: 'a' }), log,
    onEvent: () => { throw new Error('sink gone'); }, transport: echo });
  prober.start();
  t.teardown(() => prober.stop());
  t.ok(await waitFor(() => log.lines.some((l) => l.includes('could not be handed on')), 5000), 'an event path that throws is logged');
  inventory.fail = true;
  t.ok(await waitFor(() => log.lines.some((l) => l.includes('could not record a liveness probe')), 5000), 'an inventory that throws is logged');
  t.ok(prober.counters().errors >= 1, 'and counted');

  echo.refuse = 'Operation not permitted';
  settings = { ...settings, intervalSeconds: 2 }; // a change: the socket is tried again
  t.ok(await waitFor(() => prober.status().state === 'disabled', 5000), 'a refused socket disables probing');
  const opened = echo.opened;
  await sleep(500);
  t.equal(echo.opened, opened, 'and is not retried every tick');
  t.equal(log.lines.filter((l) => l.startsWith('error: liveness probes disabled')).length, 1, 'one log line');
  echo.refuse = null;
  settings = { ...settings, intervalSeconds: 3 };
  t.ok(await waitFor(() => prober.status().state === 'probing', 5000), 'changed settings try again, and it probes');
});

t.test('probeable addresses', async (t) => {
  for (const a of ['198.18.0.1', '10.0.0.1', '2001:2::1', 'fd00::1']) t.ok(probeable(a), `${a} is probed`);
  for (const a of ['0.0.0.0', '127.0.0.1', '169.254.1.1', '224.0.0.1', '255.255.255.255', '::', '::1', 'fe80::1', 'ff02::1', 'nonsense', ''])
    t.notOk(probeable(a), `${JSON.stringify(a)} is not`);
});
