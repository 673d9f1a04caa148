// Issue 11 end to end through the API, every part real: the plant lab (test/lib/plant-lab.ts) behind
// a gatekeeper connected to management, rsyslog as the SIEM. A fresh appliance (deny-all) learns in
// monitor mode for 20 s while the plant runs; the inventory lists the four hosts with the identity
// their traffic revealed (LLDP name, DHCP host name, vendor from the IEEE registry); the
// conversations carry the Modbus functions; the proposal covers what was seen with function-level
// Modbus rules; accepted whole, reviewed, dry-run and applied through the policy transaction, it lets
// the same traffic pass and denies what was never seen (HMI → PLC tcp/22, the historian's Modbus,
// the HMI's write); a newcomer raises asset.new at the SIEM; after a management restart the
// inventory is still there.
// Written against the contracts (appliance/mgmt/inventory/types.ts, appliance/mgmt/learn/types.ts,
// appliance/ipc/events.ts) before their code was merged: a route that is not there fails with a
// message that says so.

import t from 'tap';
import type { Asset, Conversation } from '../appliance/mgmt/inventory/types';
import type { LearnStatus, Proposal, ProposedGroup, ReviewResult } from '../appliance/mgmt/learn/types';
import { functionClasses, functionNames } from '../appliance/policy/modbus-functions';
import { PlantMgmt, sdParam, siemEvents, startSiem, type Login } from './lib/plant-mgmt';
import { freshPolicy, plant, plantFour, plantHosts as H, plantLabUnavailable, sleep, startPlant, type HostName } from './lib/plant-lab';

/** How long the test learns: it starts a session of the shortest period the API takes and stops it after LEARN_MS. */
const LEARN_MS = 20_000;
const SESSION_MS = 60_000;

/** Polls until `check` gives a value, else fails with `what` and the last thing seen. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, last: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last() ? `; last seen: ${last()}` : ''}`);
    await sleep(250);
  }
}

/** A list route may answer the array itself or wrap it ({assets: [...]}) : accept both, say which key. */
function listOf<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) return body as T[];
  const inner = (body as Record<string, unknown> | null)?.[key];
  if (Array.isArray(inner)) return inner as T[];
  throw new Error(`expected a list (or {${key}: [...]}) but got ${JSON.stringify(body).slice(0, 500)}`);
}

/** Function codes a proposal's modbus.functions names; a class name stays as "class:<name>". */
function codes(functions: (string | number)[]): (number | string)[] {
  return functions.map((f) => (typeof f === 'number' ? f : /^\d+$/.test(f) ? Number(f)
    : functionNames.get(f) ?? (functionClasses.has(f) ? `class:${f}` : `unknown:${f}`)))
    .sort((a, b) => String(a).localeCompare(String(b), 'en', { numeric: true }));
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

t.test('learn, propose, review, apply: the learned allowlist enforced on the plant', { skip: plantLabUnavailable() }, async (t) => {
  const started = Date.now();
  const lab = await startPlant(t);
  const mgmt = await PlantMgmt.create(t, freshPolicy);
  let admin: Login = await mgmt.login();
  const siem = await startSiem(t, mgmt, admin);
  await lab.startDataplane(freshPolicy, mgmt.socketPath);
  await mgmt.waitForPair(admin, lab.pair);
  const pair = lab.pair;
  const modbus = lab.modbus!;
  const ip = (h: HostName) => H[h].ip;

  /** A route of the learn/inventory contract; a 404 means its code is not merged yet. */
  const contract = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await mgmt.api<T>(admin, method, path, body);
    if (r.status === 404 && /no such route|route .* not found/i.test(JSON.stringify(r.body))) {
      throw new Error(`${method} ${path}: no such route (404). The asset inventory / learn mode (issue 11) is not in this build yet.`);
    }
    if (r.status !== 200) throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 2000)}`);
    return r.body;
  };
  const assets = async () => listOf<Asset>(await contract('GET', `/api/v1/assets?pair=${pair}`), 'assets');
  const conversations = async () => listOf<Conversation>(await contract('GET', `/api/v1/conversations?pair=${pair}`), 'conversations');
  const byMac = (list: Asset[], host: HostName) => list.find((a) => a.mac.toLowerCase() === H[host].mac);

  // One clear failure, not a cascade, while the issue-11 code is not merged.
  const missing: string[] = [];
  for (const path of ['/api/v1/learn', `/api/v1/assets?pair=${pair}`, `/api/v1/conversations?pair=${pair}`]) {
    const r = await mgmt.api(admin, 'GET', path);
    if (r.status === 404) missing.push(`GET ${path}: ${JSON.stringify(r.body)}`);
  }
  if (missing.length > 0) {
    t.fail(`the asset inventory / learn routes of issue 11 are not in this build (merge them first):\n${missing.join('\n')}`);
    return;
  }

  // No traffic is tried before learning: a conversation dropped by the fresh policy would rightly be
  // left out of the proposal and lower its coverage below 1.
  await t.test('learning in monitor mode: the plant runs through the appliance meanwhile', async (t) => {
    const status = await contract<LearnStatus>('POST', '/api/v1/learn/start', { pair, durationMs: SESSION_MS, mode: 'monitor' });
    t.match(status, { pair, state: 'learning', mode: 'monitor', author: 'admin' }, 'learning started');
    t.ok(status.endsAt !== null && status.startedAt !== null && Math.abs(status.endsAt - status.startedAt - SESSION_MS) < 1000,
      `it would end by itself after the period (${status.startedAt} → ${status.endsAt})`);
    const learnStarted = Date.now();
    // The engineering station is switched on now: its DHCP request carries its host name.
    await lab.dhcp();
    const traffic = lab.startTraffic();
    t.teardown(() => traffic.stop());
    const read = await until('the HMI\'s read to pass in monitor mode', async () => {
      const r = await lab.readRegisters('hmi');
      return r.status === 0 ? r : undefined;
    }, 10_000);
    t.same(read.values, range(1000, 10), 'in monitor mode the HMI reads the PLC');
    const learning = await until('the learn status to count the four hosts', async () => {
      const mine = listOf<LearnStatus>(await contract('GET', '/api/v1/learn'), 'pairs').find((s) => s.pair === pair);
      return mine && mine.assets >= 4 ? mine : undefined;
    }, LEARN_MS + 10_000);
    t.match(learning, { state: 'learning' }, `the status shows what was learned so far (${learning.assets} assets, ${learning.conversations} conversations)`);
    await sleep(Math.max(0, LEARN_MS - (Date.now() - learnStarted)));
    // Stop the traffic first and let the last flows end: nothing is then dropped once enforcing again.
    traffic.stop();
    await sleep(1500);
    const done = await contract<LearnStatus>('POST', '/api/v1/learn/stop', { pair });
    t.match(done, { pair, state: 'done' }, 'stopped');
    t.ok(done.assets >= 4, `it learned the four hosts (${done.assets} assets)`);
    t.ok(done.conversations >= 6, `and their conversations (${done.conversations})`);
    await until('learn.start and learn.stop at the SIEM', async () =>
      (siemEvents(siem, 'learn.start').length > 0 && siemEvents(siem, 'learn.stop').length > 0) || undefined, 10_000);
    t.pass('learn.start and learn.stop reached the SIEM');
  });

  await t.test('the inventory: four hosts with their identity', async (t) => {
    let last: Asset[] = [];
    const list = await until('the four hosts with LLDP and DHCP identity in GET /api/v1/assets', async () => {
      const l = await assets();
      last = l;
      const ok = plantFour.every((h) => byMac(l, h)) && byMac(l, 'plc')?.identity.lldp?.systemName && byMac(l, 'eng')?.identity.dhcp?.hostName;
      return ok ? l : undefined;
    }, 20_000, () => JSON.stringify(last).slice(0, 3000));
    for (const h of plantFour) {
      t.match(byMac(list, h), { pair, mac: H[h].mac, side: H[h].side, vlan: 0 }, `${h}: behind the ${H[h].side} port`);
      t.ok(byMac(list, h)!.addresses.includes(H[h].ip), `${h}: carries ${H[h].ip} (${byMac(list, h)!.addresses.join(', ')})`);
      t.ok(byMac(list, h)!.addresses.every((a) => a === H[h].ip || a === ''), `${h}: no other address`);
    }
    const plc = byMac(list, 'plc')!;
    t.match(plc, { name: plant.lldpName, identity: { lldp: { systemName: plant.lldpName, systemDescription: plant.lldpDescription } } },
      'the PLC is named by its LLDP system name');
    t.match(plc.vendor, /Siemens/i, `the PLC's vendor from the IEEE registry (00:1b:1b): ${plc.vendor}`);
    t.ok(plc.offers.includes('modbus'), `the PLC offers modbus (${plc.offers.join(', ')})`);
    const eng = byMac(list, 'eng')!;
    t.match(eng, { name: plant.dhcpName, identity: { dhcp: { hostName: plant.dhcpName } } }, 'the engineering station is named by its DHCP host name');
    for (const h of ['hmi', 'eng', 'historian'] as const) t.equal(byMac(list, h)!.vendor, null, `${h}: a locally administered MAC has no vendor`);
    t.ok(byMac(list, 'historian')!.offers.includes(`tcp/${plant.historianPort}`), 'the historian offers its port');
    t.equal(list.filter((a) => !plantFour.some((h) => a.mac.toLowerCase() === H[h].mac)).length, 0,
      `no other asset (the switch and the appliance stay silent): ${list.map((a) => a.mac).join(', ')}`);
  });

  await t.test('the conversations, with the Modbus functions', async (t) => {
    const list = await conversations();
    const seen = (client: HostName, server: HostName, proto: string, port?: number) => list.filter((c) => c.client === ip(client) && c.server === ip(server)
      && c.proto === proto && (port === undefined || c.port === port) && c.verdict !== 'deny');
    const functionsOf = (cs: Conversation[]) => [...new Set(cs.flatMap((c) => Object.keys(c.functions)))].sort();
    const hmi = seen('hmi', 'plc', 'tcp', 502);
    t.ok(hmi.length > 0 && hmi.every((c) => c.service === 'modbus' && c.verdict === 'monitor'), 'HMI → PLC: modbus, passed by monitor mode');
    t.same(functionsOf(hmi), ['read-holding-registers'], 'the HMI only read holding registers');
    t.ok(hmi.reduce((n, c) => n + c.flows, 0) >= 5, `one flow per poll (${hmi.reduce((n, c) => n + c.flows, 0)})`);
    t.ok(hmi.every((c) => c.clientAsset !== null && c.serverAsset !== null), 'both ends are assets');
    t.same(functionsOf(seen('eng', 'plc', 'tcp', 502)), ['read-holding-registers', 'write-single-register'], 'the engineering station read and wrote');
    t.ok(seen('plc', 'historian', 'tcp', plant.historianPort).some((c) => c.service === `tcp/${plant.historianPort}`), 'PLC → historian on its port');
    for (const h of ['hmi', 'eng', 'historian'] as const) t.ok(seen(h, 'plc', 'icmp').length > 0, `${h} pinged the PLC`);
    t.same(seen('historian', 'plc', 'tcp'), [], 'the historian never opened TCP to the PLC');
    t.same(seen('hmi', 'plc', 'tcp', plant.sshPort), [], 'nobody opened tcp/22');
  });

  let proposal: Proposal | undefined;
  await t.test('the proposal: identity-named groups, one rule per conversation kind, Modbus at function level', async (t) => {
    proposal = await contract<Proposal>('POST', '/api/v1/learn/propose', { pair, hours: 1 });
    const p = proposal;
    const groupOf = (h: HostName): ProposedGroup | undefined => p.groups.find((g) => g.members.some((m) => m.split('@')[0] === ip(h)));
    for (const h of plantFour) t.ok(groupOf(h), `${h} is in a group (${groupOf(h)?.name})`);
    t.match(groupOf('plc'), { namedFrom: 'lldp', name: new RegExp(plant.lldpName) }, 'the PLC\'s group is named from LLDP');
    t.match(groupOf('eng'), { namedFrom: 'dhcp', name: new RegExp(plant.dhcpName) }, 'the engineering station\'s from DHCP');
    t.ok(groupOf('plc')!.members.some((m) => m.toLowerCase() === `${ip('plc')}@${H.plc.mac}`), `the PLC's address is bound to its MAC (${groupOf('plc')!.members})`);
    t.not(groupOf('hmi')!.name, groupOf('eng')!.name, 'the HMI and the engineering station are not lumped together (they do different things)');
    const rulesFrom = (h: HostName, to: HostName) => p.rules.filter((r) => r.from === groupOf(h)?.name && r.to === groupOf(to)?.name);
    const modbusRule = (h: HostName) => rulesFrom(h, 'plc').find((r) => r.services.includes('modbus'));
    t.same(modbusRule('hmi')?.modbus?.functions, ['read'], 'HMI → PLC: functions [read]');
    t.same(modbusRule('hmi')?.modbus?.units, [1], 'and the unit mbpoll addressed (-a 1)');
    t.same(codes(modbusRule('eng')?.modbus?.functions ?? []), [3, 6], `engineering station → PLC: the exact codes (${modbusRule('eng')?.modbus?.functions})`);
    t.ok(rulesFrom('plc', 'historian').some((r) => r.services.includes(`tcp/${plant.historianPort}`)), 'PLC → historian on its port');
    for (const h of ['hmi', 'eng', 'historian'] as const) t.ok(rulesFrom(h, 'plc').some((r) => r.services.includes('ping')), `${h} → PLC: ping`);
    t.notOk(rulesFrom('historian', 'plc').some((r) => r.services.includes('modbus')), 'no Modbus for the historian');
    t.notOk(p.rules.some((r) => r.services.includes(`tcp/${plant.sshPort}`)), 'no tcp/22');
    t.ok(p.rules.every((r) => /learn/i.test(r.description) && r.flows > 0 && r.firstSeen <= r.lastSeen),
      'every rule says it was learned, with its flows and first/last seen');
    const c = p.coverage;
    t.equal(c.hours, 1, 'coverage over the hour asked for');
    t.equal(c.share, c.conversations === 0 ? 1 : c.allowed / c.conversations, 'share = allowed / conversations');
    const plantAddress = new Set(plantFour.map(ip));
    const leftBetweenHosts = c.leftOut.filter((l) => plantAddress.has(l.client) && plantAddress.has(l.server));
    t.same(leftBetweenHosts, [], 'nothing the four hosts did to each other is left out');
    const notBroadcast = c.leftOut.filter((l) => !(l.server === '255.255.255.255' || l.server === plant.broadcast || l.client === '0.0.0.0'));
    t.same(notBroadcast, [], `only broadcasts (DHCP) may be left out: ${JSON.stringify(c.leftOut)}`);
    if (c.leftOut.length === 0) t.equal(c.share, 1, 'coverage 1: the proposal allows every conversation of the window');
    t.comment(`coverage: ${c.allowed}/${c.conversations} (${c.share}), left out: ${JSON.stringify(c.leftOut)}`);
  });
  if (!proposal) throw new Error('no proposal: the rest cannot run');

  let text = '';
  await t.test('review accepting everything, dry-run, apply', async (t) => {
    const p = proposal!;
    const decisions = [...p.groups.map((g) => ({ kind: 'group', id: g.id, accept: true })), ...p.rules.map((r) => ({ kind: 'rule', id: r.id, accept: true }))];
    const review = await contract<ReviewResult>('POST', '/api/v1/learn/review', { pair, proposalId: p.id, decisions });
    t.same(review.notes, [], 'no notes: everything accepted fits together');
    t.match(review.diff, /^\+.*hmi|^\+.*modbus/m, 'the diff adds the learned rules');
    const validated = await mgmt.must(admin, 'POST', '/api/v1/policy/validate', { text: review.text });
    t.match(validated, { ok: true }, `the reviewed text compiles: ${JSON.stringify(validated).slice(0, 500)}`);
    text = review.text;

    // Learning over, the pair enforces the fresh policy again; the HMI's read it drops is recent
    // traffic the dry run must see change to allowed.
    t.not((await lab.readRegisters('hmi')).status, 0, 'after learning the pair enforces the fresh policy again: the HMI\'s read is dropped');
    const dry = await until('the dry run to list the HMI\'s read going from deny to allow', async () => {
      const d = await mgmt.must<{ ok: boolean; errors?: unknown[]; changes: { src: string; dst: string; dstPort: number; before: { action: string }; after: { action: string } }[] }>(
        admin, 'POST', '/api/v1/policy/dry-run', { text });
      return d.changes.some((c) => c.src === ip('hmi') && c.dst === ip('plc') && c.dstPort === 502 && c.before.action === 'deny' && c.after.action === 'allow')
        ? d : undefined;
    }, 20_000);
    t.equal(dry.ok, true, 'the dry run passes');
    t.notOk(dry.changes.some((c) => c.after.action !== 'allow'), 'and opens only, closes nothing that was allowed');

    const applied = await mgmt.must<{ version: number; pairs: { pair: string; generation: number }[] }>(admin, 'POST', '/api/v1/policy/apply',
      { text, comment: 'allowlist learned over 20 s, reviewed' });
    t.match(applied.pairs, [{ pair }], `applied on the pair as version ${applied.version}`);
  });

  await t.test('enforced: the same traffic passes, what was never seen is denied', async (t) => {
    const mark = modbus.mark();
    const hmiRead = await lab.readRegisters('hmi');
    t.same(hmiRead.values, range(1000, 10), `the HMI reads: ${hmiRead.stderr}`);
    t.equal((await lab.readRegisters('eng')).status, 0, 'the engineering station reads');
    t.equal((await lab.writeRegister('eng', 11, 9)).status, 0, 'and writes (function 6, seen while learning)');
    const hmiWrite = await lab.writeRegister('hmi', 12, 99);
    t.not(hmiWrite.status, 0, `the HMI's write (never seen from the HMI) is refused (${hmiWrite.stderr.trim()})`);
    await sleep(200);
    t.same(modbus.executed(mark).map((e) => e.function), [3, 3, 6], 'the PLC executed the reads and the engineering station\'s write only');
    t.equal(modbus.memory().holding[11], 1011, 'the register the HMI tried to write is unchanged');

    const hist = lab.historian!.mark();
    t.equal((await lab.sendLine('plc', 'historian', plant.historianPort)).status, 0, 'the PLC pushes to the historian');
    for (const h of ['hmi', 'eng', 'historian'] as const) t.equal((await lab.ping(h, 'plc')).status, 0, `${h} pings the PLC`);
    await sleep(200);
    t.same(lab.historian!.accepted(hist), [ip('plc')], 'the historian got the PLC\'s push');

    const ssh = lab.plcSsh!.mark();
    t.not((await lab.connect('hmi', 'plc', plant.sshPort)).status, 0, 'HMI → PLC tcp/22, never seen, is denied');
    t.not((await lab.readRegisters('historian')).status, 0, 'historian → PLC Modbus, never seen, is denied');
    t.not((await lab.ping('plc', 'hmi', 1)).status, 0, 'PLC → HMI ping, never seen, is denied');
    await sleep(200);
    t.same(lab.plcSsh!.accepted(ssh), [], 'nothing reached the PLC\'s tcp/22');
  });

  await t.test('a newcomer after learning raises asset.new at the SIEM', async (t) => {
    lab.addNewcomer();
    t.not((await lab.ping('newcomer', 'plc', 3)).status, 0, 'the newcomer, never seen, is denied');
    const event = await until('asset.new for the newcomer at rsyslog', async () =>
      siemEvents(siem, 'asset.new').find((m) => sdParam(m, 'mac')?.toLowerCase() === H.newcomer.mac), 30_000,
    () => siem.lines('siem').slice(-5).join('\n'));
    t.equal(sdParam(event, 'side'), 'outside', 'behind the outside port');
    t.equal(sdParam(event, 'pair'), pair, 'on the pair');
    t.same(siemEvents(siem, 'asset.new').map((m) => sdParam(m, 'mac')?.toLowerCase()).filter((m) => m !== H.newcomer.mac), [],
      'the four hosts learned on the first day raised no asset.new');
    t.ok(byMac(await assets(), 'newcomer'), 'the newcomer is in the inventory');
  });

  await t.test('after a management restart the inventory is still there', async (t) => {
    await mgmt.restart();
    admin = await mgmt.login();
    await mgmt.waitForPair(admin, pair);
    const list = await assets();
    for (const h of [...plantFour, 'newcomer'] as const) t.ok(byMac(list, h), `${h} is still listed`);
    t.equal(byMac(list, 'plc')?.name, plant.lldpName, 'with the PLC\'s LLDP name');
    t.equal(byMac(list, 'eng')?.name, plant.dhcpName, 'and the engineering station\'s DHCP host name');
    t.ok((await conversations()).some((c) => c.client === ip('hmi') && c.server === ip('plc') && c.port === 502), 'the conversations too');
    const active = await mgmt.must<{ text: string }>(admin, 'GET', '/api/v1/policy');
    t.equal(active.text, text, 'the learned policy is the active one');
    t.equal((await lab.readRegisters('hmi')).status, 0, 'and the HMI still reads');
  });

  t.comment(`# learn lab took ${Math.round((Date.now() - started) / 1000)} s`);
});
