// The Assets, Map and Learn views in a real browser (Debian's chromium, headless, playwright-core)
// against a real management process with a dataplane on its socket (test/lib/ui-fixtures.ts: it
// reports the pair, answers flows.get with the address/port filter and takes policies). The
// inventory and learn routes do not exist yet: the browser gets them from page.route fixtures in
// the same file (installApi; drop that line to test against the real API). Checked: the asset
// table's rows and what each filter asks and shows, the asset page's identity, addresses and
// conversations, the map's nodes and lines (read from cytoscape), the denied line drawn apart, a
// click on a host and on a line, learning start/stop with the monitor-mode confirmation, the
// proposal's coverage, the decisions sent after toggles and renames, the diff, dry run and apply
// through the real policy routes behind a required comment, and that a viewer gets no buttons.
// Any script error or CSP refusal in the page fails it. Screenshots go to GK_UI_SCREENSHOTS or
// $TMPDIR/gatekeeper-ui-shots (printed).

import t from 'tap';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { ADMIN, startMgmt } from './lib/mgmt-fixture';
import { ADDR, INITIAL_POLICY, LEARNED_POLICY, PAIR, PlantDataplane, installApi, lastDecisions, plant, plantFlows } from './lib/ui-fixtures';

const CHROMIUM = '/usr/bin/chromium';
const shots = process.env.GK_UI_SCREENSHOTS ?? join(tmpdir(), 'gatekeeper-ui-shots');
const VIEWER = { name: 'vera', password: 'vera-password-123' };

const text = async (l: Locator) => (await l.textContent()) ?? '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function shoot(page: Page, name: string): Promise<string> {
  mkdirSync(shots, { recursive: true });
  const path = join(shots, `${name}.png`);
  // From the top, so the sticky top bar is where it belongs in the full-page picture.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Script errors and CSP refusals (the one expected console error is the 401 before signing in). */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !/status of 401/.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
  });
  return problems;
}

async function signIn(page: Page, url: string, user: { name: string; password: string }): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Username').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
}

/** The rows of a table by its caption, as arrays of cell texts. */
async function rows(page: Page, caption: string): Promise<string[][]> {
  const body = page.getByRole('table', { name: caption }).locator('tbody tr');
  const out: string[][] = [];
  for (const row of await body.all()) out.push((await row.locator('td').allTextContents()).map((s) => s.trim()));
  return out;
}

interface MapSummary {
  nodes: { id: string; kind: string; label: string }[];
  edges: { id: string; verdict: string; label: string; lineStyle: string; lineColor: string; source: string; target: string }[];
}

/** What cytoscape holds (its registry on the container), once it has drawn. */
async function mapSummary(page: Page): Promise<MapSummary> {
  await page.waitForFunction(() => (((globalThis as any).document.querySelector('.map-canvas'))?._cyreg?.cy?.nodes().length ?? 0) > 0);
  return page.evaluate(() => {
    const cy = ((globalThis as any).document.querySelector('.map-canvas'))._cyreg.cy;
    return {
      nodes: cy.nodes('[kind != "side"]').map((n: any) => ({ id: n.id(), kind: n.data('kind'), label: n.data('label') })),
      edges: cy.edges().map((e: any) => ({ id: e.id(), verdict: e.data('verdict'), label: e.data('label'), lineStyle: e.style('line-style'),
        lineColor: e.style('line-color'), source: e.source().id(), target: e.target().id() })),
    };
  });
}

/** Page coordinates of a node's centre or an edge's midpoint. */
async function mapPoint(page: Page, selector: string): Promise<{ x: number; y: number }> {
  return page.evaluate((sel) => {
    const container = (globalThis as any).document.querySelector('.map-canvas');
    const ele = container._cyreg.cy.$(sel);
    const p = ele.isEdge() ? ele.renderedMidpoint() : ele.renderedPosition();
    const box = container.getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  }, selector);
}

t.test('Assets, Map and Learn in chromium against the real service', { skip: !existsSync(CHROMIUM) && `needs ${CHROMIUM}` }, async (t) => {
  const mgmt = await startMgmt(t, { initialPolicy: INITIAL_POLICY });
  const dp = await PlantDataplane.connect(mgmt.socketPath, plantFlows(Date.now()));
  t.teardown(() => dp.close());
  const admin = await mgmt.login();
  const added = await mgmt.api(admin, 'POST', '/api/v1/users', { name: VIEWER.name, role: 'viewer', password: VIEWER.password });
  t.equal(added.status, 201, 'a viewer account exists for the last part');
  const data = plant(Date.now());
  const cytoscape = await fetch(`${mgmt.url}/ui/vendor/cytoscape/cytoscape.esm.min.mjs`);
  t.equal(cytoscape.status, 200, 'the service serves cytoscape\'s ES module itself (no CDN)');
  t.match(cytoscape.headers.get('content-type'), /javascript/, '... as JavaScript (the browser checks it for modules)');
  t.equal(cytoscape.headers.get('content-security-policy'), "default-src 'self';script-src 'self';style-src 'self';img-src 'self' data:;"
    + "connect-src 'self';frame-ancestors 'none';base-uri 'self';form-action 'self';object-src 'none'", '... under the unchanged CSP (no unsafe-inline, no unsafe-eval)');
  t.equal((await fetch(`${mgmt.url}/ui/vendor/cytoscape/cytoscape.cjs.js`)).status, 404, 'and only that file of its package');

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.setDefaultTimeout(15_000);
  const problems = watchProblems(page);
  const api = await installApi(page, data);
  /** Requests the page made to the real policy routes. */
  const policyRequests: { path: string; body: unknown }[] = [];
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/api/v1/policy/') && r.method() === 'POST') policyRequests.push({ path, body: r.postDataJSON() });
  });
  const saved: string[] = [];
  t.comment(`screenshots in ${shots}`);
  await signIn(page, mgmt.url, ADMIN);

  await t.test('the top bar with the three new views fits a 1366 px laptop screen', async (t) => {
    await page.setViewportSize({ width: 1366, height: 800 });
    await page.getByRole('banner').getByText('1/1 pairs connected').waitFor();
    const signOut = await page.getByRole('button', { name: 'Sign out' }).boundingBox();
    t.ok(signOut && signOut.x + signOut.width <= 1366, `Sign out is on screen (right edge ${signOut && Math.round(signOut.x + signOut.width)} px)`);
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  await t.test('the asset table lists the plant; each filter asks the appliance and shows its answer', async (t) => {
    await page.getByRole('link', { name: 'Assets', exact: true }).click();
    await page.getByRole('heading', { name: 'Assets', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'plc-filtration' }).waitFor();
    const all = await rows(page, 'Assets');
    t.equal(all.length, 4, 'four assets');
    const plc = all.find((r) => r[0].startsWith('plc-filtration'))!;
    t.same(plc.slice(1, 5), ['TELEMECANIQUE ELECTRIQUE', '00:80:f4:01:02:03', ADDR.plc, 'inside'], 'vendor, MAC, address, side');
    t.match(plc[7], /503,900 \/ 44\.7 MB/, 'packets and bytes');
    t.match(plc[8], /serves modbus, ping/, 'the services it answers');
    t.equal(plc[9], 'up · 1.9 ms', 'liveness with the round trip');
    const eng = all.find((r) => r[0].startsWith('eng-ws-01'))!;
    t.match(eng[3], new RegExp(`${ADDR.eng}\\s*${ADDR.eng6.replace(/:/g, ':')}`), 'both addresses of the engineering station');
    t.match(eng[8], /uses modbus, tcp\/23/, 'the services it uses');
    t.equal(all.find((r) => r[0].startsWith('historian'))![9], 'down', 'the historian is down');
    saved.push(await shoot(page, 'assets-table'));

    const lastQuery = () => api.requests.filter((r) => r.path === '/assets').at(-1)!.query;
    await page.getByLabel('Search').fill('eng');
    await until('the search to be asked', () => lastQuery().get('q') === 'eng');
    await until('one row', async () => (await rows(page, 'Assets')).length === 1);
    t.match((await rows(page, 'Assets'))[0][0], /^eng-ws-01/, 'search "eng": the engineering station');
    t.match(page.url(), /#\/assets\?q=eng$/, 'the filter is kept in the address');
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Side').selectOption('inside');
    await until('the side to be asked', () => lastQuery().get('side') === 'inside' && !lastQuery().get('q'));
    await until('one row', async () => (await rows(page, 'Assets')).length === 1);
    t.match((await rows(page, 'Assets'))[0][0], /^plc-filtration/, 'inside: only the PLC');
    await page.getByLabel('Side').selectOption('');
    await page.getByLabel('Liveness').selectOption('down');
    await until('liveness to be asked', () => lastQuery().get('liveness') === 'down' && !lastQuery().get('side'));
    await until('one row', async () => (await rows(page, 'Assets')).length === 1);
    t.match((await rows(page, 'Assets'))[0][0], /^historian/, 'down: only the historian');
    await page.getByLabel('Pair').selectOption(PAIR);
    await until('the pair to be asked', () => lastQuery().get('pair') === PAIR);
    await page.getByLabel('Search').fill('nothing-like-this');
    await page.getByText('No asset matches the filter.').waitFor();
    t.pass('no match says so');
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Liveness').selectOption('');
    await until('all four again', async () => (await rows(page, 'Assets')).length === 4);
  });

  await t.test('the asset page: identity from LLDP and Modbus, addresses, liveness, conversations with functions', async (t) => {
    await page.getByRole('link', { name: 'plc-filtration' }).click();
    await page.getByRole('heading', { name: 'plc-filtration', level: 1 }).waitFor();
    t.match(page.url(), /#\/assets\?id=3&pair=plant-a$/, 'the asset is in the address, with the list\'s filters for the way back');
    const lldp = await text(page.getByRole('group', { name: 'LLDP (what it announces)' }));
    t.match(lldp, /System name\s*plc-filtration/, 'LLDP system name');
    t.match(lldp, /Description\s*Schneider Electric Modicon M340 BMX P34 2020 V3\.40/, 'LLDP description');
    t.match(lldp, /Chassis ID\s*00:80:f4:01:02:03.*Port ID\s*ETH1.*Management address\s*198\.18\.1\.100/s, 'chassis, port, management address');
    const modbus = await text(page.getByRole('group', { name: 'Modbus device identification' }));
    t.match(modbus, /Vendor\s*Schneider Electric\s*Product code\s*BMX P34 2020\s*Revision\s*v3\.40\s*Product name\s*Modicon M340/, 'Modbus identification');
    t.equal(await page.getByRole('group', { name: 'DHCP (what it asked for)' }).count(), 0, 'no DHCP section when it sent none');
    t.match(await text(page.getByRole('region', { name: 'Liveness' })), /up · 1\.9 ms.*Round trip\s*1\.9 ms/s, 'liveness');
    t.match(await text(page.getByRole('region', { name: 'Addresses' })), /198\.18\.1\.100 \(latest\)/, 'addresses');

    const conv = await rows(page, 'Conversations of this asset');
    t.equal(conv.length, 5, 'five conversations, all with the PLC as server');
    const hmiModbus = conv.find((r) => r[1].startsWith('hmi-line1') && r[2] === 'modbus')!;
    t.equal(hmiModbus[0], '← from', 'the PLC answered');
    t.match(hmiModbus[7], /read-holding-registers ×182,300, write-single-register ×42/, 'Modbus functions by use');
    const telnet = conv.find((r) => r[2] === 'tcp/23')!;
    t.match(telnet.join(' '), /eng-ws-01.*tcp\/23.*default.*deny/, 'the denied telnet attempt, by the default');
    t.equal(telnet[10], 'denied', 'no flows link for denied traffic');
    const link = page.getByRole('row').filter({ hasText: 'hmi-polls-plc' }).filter({ hasText: 'modbus' }).getByRole('link', { name: 'Live flows' });
    t.equal(await link.getAttribute('href'), `#/flows?pair=${PAIR}&address=${ADDR.plc}&peer=${ADDR.hmi}&port=502`, 'live flows of one conversation');
    saved.push(await shoot(page, 'asset-detail'));
    await page.getByRole('link', { name: '← All assets' }).click();
    await until('the table again', async () => (await rows(page, 'Assets')).length === 4);
    t.equal(await page.getByLabel('Pair').inputValue(), PAIR, 'back with the pair filter as it was');
  });

  await t.test('the map: four hosts, four lines, the denied one red and dashed; clicks open the asset and the flows', async (t) => {
    await page.getByRole('link', { name: 'Map', exact: true }).click();
    const map = await mapSummary(page);
    t.same(map.nodes.map((n) => n.label).sort(), [
      `eng-ws-01\n${ADDR.eng}`, `historian\n${ADDR.historian}`, `hmi-line1\n${ADDR.hmi}`, `plc-filtration\n${ADDR.plc}`,
    ], 'one node per asset, named, with its address');
    t.equal(map.edges.length, 4, 'four lines: HMI (modbus and ping), engineering (allowed and denied), historian');
    const denied = map.edges.filter((e) => e.verdict === 'deny');
    t.equal(denied.length, 1, 'one denied line');
    t.same([denied[0].label, denied[0].lineStyle, denied[0].lineColor], ['tcp/23 · denied', 'dashed', 'rgb(207,34,46)'], 'labelled, dashed and red');
    for (const e of map.edges.filter((x) => x.verdict === 'allow')) t.same([e.lineStyle, e.lineColor], ['solid', 'rgb(110,119,129)'], `allowed ${e.label}: solid grey`);
    t.equal(map.edges.find((e) => e.source === 'a1')!.label, 'modbus, ping', 'services on one line');
    t.match(await text(page.locator('.page-head')), /4 hosts · 4 connections \(1 denied\)/, 'the summary');
    saved.push(await shoot(page, 'map'));
    await page.getByText('The same connections as a table').click();
    t.equal((await rows(page, 'Connections on the map')).length, 4, 'the same lines as a table');

    const plc = await mapPoint(page, '#a3');
    await page.mouse.move(plc.x, plc.y);
    await page.locator('.map-info').getByText(/plc-filtration · 198\.18\.1\.100 · 00:80:f4:01:02:03/).waitFor();
    t.pass('pointing at a host says what it is');
    await page.mouse.click(plc.x, plc.y);
    await page.getByRole('heading', { name: 'plc-filtration', level: 1 }).waitFor();
    t.match(page.url(), /#\/assets\?id=3$/, 'a click on a host opens its asset page');

    await page.goBack();
    await mapSummary(page);
    const line = await mapPoint(page, `edge[source = "a4"]`);
    await page.mouse.click(line.x, line.y);
    await page.getByRole('heading', { name: 'Flows', level: 1 }).waitFor();
    t.match(page.url(), new RegExp(`#/flows\\?pair=${PAIR}&address=${ADDR.plc.replace(/\./g, '\\.')}&peer=${ADDR.historian.replace(/\./g, '\\.')}&port=502$`),
      'a click on the historian\'s line opens the flows between the two');
    t.equal(await page.getByLabel('Address', { exact: true }).inputValue(), ADDR.plc, 'address filled in');
    t.equal(await page.getByLabel('Other end').inputValue(), ADDR.historian, 'other end filled in');
    t.equal(await page.getByLabel('Port', { exact: true }).inputValue(), '502', 'port filled in');
    await page.getByRole('row').filter({ hasText: 'historian-reads-plc' }).waitFor();
    await until('the pair filter applied', async () => (await page.getByLabel('Pair').inputValue()) === PAIR);
    t.equal(await page.getByRole('row').filter({ hasText: 'hmi-polls-plc' }).count(), 0, 'the HMI\'s flow to the same PLC is not shown');
    t.same(dp.flowQueries.at(-1), { address: ADDR.plc, port: 502 }, 'the dataplane was asked for the PLC\'s address and the port');
  });

  await t.test('learn: stop and start (monitor mode asks first), propose, decide, review, dry run, apply with a comment', async (t) => {
    await page.getByRole('link', { name: 'Learn', exact: true }).click();
    const card = page.getByRole('region', { name: `Learning on ${PAIR}` });
    await card.getByText('4 assets · 5 conversations').waitFor();
    t.match(await text(card), /learning.*Started.*by admin.*Ends.*\(in 3 h 59 min\)|learning.*Started.*by admin.*Ends.*\(in 4 h 0 min\)/s, 'learning, by whom and until when');
    await card.getByRole('button', { name: 'Stop learning' }).click();
    await card.getByText('learning done').waitFor();
    t.same(api.requests.filter((r) => r.path === '/learn/stop').map((r) => r.body), [{ pair: PAIR }], 'stop sent for the pair');

    await card.getByLabel('Learn for').selectOption(String(8 * 3_600_000));
    await card.getByLabel('While learning').selectOption('monitor');
    await card.getByRole('button', { name: 'Start learning' }).click();
    const confirm = page.getByRole('dialog', { name: 'Learn in monitor mode' });
    t.match(await text(confirm), /blocks nothing for 8 h 0 min/, 'monitor mode is confirmed first, saying for how long nothing is blocked');
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    t.equal(api.requests.filter((r) => r.path === '/learn/start').length, 0, 'cancelled: nothing sent');
    await card.getByRole('button', { name: 'Start learning' }).click();
    await page.getByRole('dialog', { name: 'Learn in monitor mode' }).getByRole('button', { name: 'Start in monitor mode' }).click();
    await card.getByText('monitor mode: nothing blocked').waitFor();
    t.same(api.requests.filter((r) => r.path === '/learn/start').map((r) => r.body), [{ pair: PAIR, durationMs: 8 * 3_600_000, mode: 'monitor' }], 'start: pair, duration, mode');

    const hours = card.getByLabel('Cover the last (hours)');
    await hours.fill('2');
    const polls = api.requests.filter((r) => r.path === '/learn').length;
    await until('the next status refresh', () => api.requests.filter((r) => r.path === '/learn').length > polls + 1, 12_000);
    t.ok(await hours.evaluate((el) => el === (globalThis as any).document.activeElement), 'the refresh every 5 s leaves the focus in the field being typed in');
    await hours.fill('24');
    await card.getByRole('button', { name: 'Propose a policy' }).click();
    const coverage = page.getByRole('group', { name: 'Coverage' });
    await coverage.waitFor();
    t.same(api.requests.filter((r) => r.path === '/learn/propose').map((r) => r.body), [{ pair: PAIR, hours: 24 }], 'propose: pair and hours');
    t.match(await text(coverage), /80%.*allows 4 of the 5 conversations seen in the last 24 h/s, 'coverage share and counts');
    t.same(await rows(page, 'Left out of the proposal'), [[ADDR.eng, ADDR.plc, 'tcp/23', 'denied by the active policy', '2']], 'what is left out, and why');
    t.equal((await rows(page, 'Proposed groups')).length, 4, 'four groups');
    t.equal((await rows(page, 'Proposed rules')).length, 3, 'three rules');

    await page.getByLabel('Accept group historian').uncheck();
    await page.getByLabel('Name of group plc-filtration').fill('filtration-plc');
    await page.getByLabel('Accept rule hmi-line1-to-plc-filtration').uncheck();
    await page.getByLabel('Name of rule eng-ws-01-to-plc-filtration').fill('eng-ws-01-programs-plc');
    const ruleRows = await rows(page, 'Proposed rules');
    t.match(ruleRows[1][2], /^eng-ws-01 → filtration-plcengineering station reads/, 'a renamed group shows in the rules at once');
    t.match(ruleRows[2][2], /^historian \(rejected\) → filtration-plc/, 'a rule on a rejected group says so');
    saved.push(await shoot(page, 'learn-proposal'));

    await page.getByLabel('Name of rule eng-ws-01-to-plc-filtration').fill('bad name!');
    const reviewsBefore = api.requests.filter((r) => r.path === '/learn/review').length;
    await page.getByRole('button', { name: 'Review', exact: true }).click();
    await page.getByText(/“bad name!” cannot be a name: names start with a letter/).waitFor();
    t.equal(api.requests.filter((r) => r.path === '/learn/review').length, reviewsBefore, 'a name the policy refuses is not sent');
    await page.getByLabel('Name of rule eng-ws-01-to-plc-filtration').fill('eng-ws-01-programs-plc');
    await page.getByRole('button', { name: 'Review', exact: true }).click();
    const diff = page.getByLabel('Unified diff');
    await diff.waitFor();
    t.same(lastDecisions(api), [
      { kind: 'group', id: 'g1', accept: true },
      { kind: 'group', id: 'g2', accept: true },
      { kind: 'group', id: 'g3', accept: true, rename: 'filtration-plc' },
      { kind: 'group', id: 'g4', accept: false },
      { kind: 'rule', id: 'r1', accept: false },
      { kind: 'rule', id: 'r2', accept: true, rename: 'eng-ws-01-programs-plc' },
      { kind: 'rule', id: 'r3', accept: true },
    ], 'the decisions sent: every group and rule, renames only where changed');
    t.equal(api.requests.filter((r) => r.path === '/learn/review').at(-1)!.body && (api.requests.filter((r) => r.path === '/learn/review').at(-1)!.body as any).proposalId, 'p-7', 'for this proposal');
    const diffText = await text(diff);
    t.match(diffText, /\+\s+- name: eng-ws-01-programs-plc/, 'the diff adds the learned rule');
    t.match(diffText, /-\s+- name: eng-programs-plc/, '... and removes the one it narrows');
    t.match(await text(page.locator('.diff-summary')), /\+\d+ added · −\d+ removed/, 'counts of added and removed lines');
    t.match(await text(page.getByRole('region', { name: 'Review' })), /historian-to-plc-filtration left out: its group historian is rejected/, 'the notes');
    saved.push(await shoot(page, 'learn-diff'));

    await page.getByLabel('Accept group hmi-line1').uncheck();
    await page.getByText('The decisions changed: review again before applying.').waitFor();
    t.equal(await page.getByRole('button', { name: 'Apply…' }).count(), 0, 'a changed decision takes the apply button away until reviewed again');
    await page.getByLabel('Accept group hmi-line1').check();
    await page.getByRole('button', { name: 'Review', exact: true }).click();
    await diff.waitFor();

    await page.getByRole('button', { name: 'Dry run' }).click();
    await page.getByText(/recently observed flows would change verdict|None of the \d+ recently observed flows/).first().waitFor();
    t.same(policyRequests.filter((r) => r.path === '/api/v1/policy/dry-run').map((r) => r.body), [{ text: LEARNED_POLICY }], 'the real dry run got the reviewed text');

    await page.getByRole('button', { name: 'Apply…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Apply the learned policy' });
    await dialog.getByLabel('Unified diff').waitFor();
    await dialog.getByRole('button', { name: 'Apply policy' }).click();
    t.match(await text(dialog.getByRole('alert')), /Write a comment/, 'apply needs a comment');
    t.equal(policyRequests.filter((r) => r.path === '/api/v1/policy/apply').length, 0, '... and sends nothing without it');
    await dialog.getByLabel('Comment (required)').fill('learned over 24 h: engineering station limited to the functions it uses');
    await dialog.getByRole('button', { name: 'Apply policy' }).click();
    await dialog.waitFor({ state: 'detached' });
    // Generation 2 was the resync to v1 when the dataplane connected; the apply is the next one.
    await page.locator('#notices').getByText(`Policy v2 applied to ${PAIR} (generation 3).`).waitFor();
    t.same(policyRequests.filter((r) => r.path === '/api/v1/policy/apply').map((r) => r.body),
      [{ text: LEARNED_POLICY, comment: 'learned over 24 h: engineering station limited to the functions it uses' }], 'the real apply got the text and comment');
    await until('the dataplane to run it', () => dp.policies.at(-1) === LEARNED_POLICY);
    t.same(dp.policies, [INITIAL_POLICY, LEARNED_POLICY], 'the dataplane runs the learned policy (after v1 at connect)');
    await page.getByRole('banner').getByText('Policy v2').waitFor();
  });

  await t.test('a viewer sees assets, map and learning, and no button that changes anything', async (t) => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, mgmt.url, VIEWER);
    await page.getByRole('link', { name: 'Learn', exact: true }).click();
    const card = page.getByRole('region', { name: `Learning on ${PAIR}` });
    await card.getByText('monitor mode: nothing blocked').waitFor();
    await page.getByText('Read-only: your role (viewer) can see learning but not start it, propose or apply.').waitFor();
    for (const name of ['Start learning', 'Stop learning', 'Propose a policy', 'Review', 'Apply…']) {
      t.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`);
    }
    await page.getByRole('link', { name: 'Assets', exact: true }).click();
    await until('the table', async () => (await rows(page, 'Assets')).length === 4);
    t.equal(await page.locator('main button:not([type="submit"])').count(), 0, 'assets: nothing to press but the filters');
    await page.getByRole('link', { name: 'Map', exact: true }).click();
    t.equal((await mapSummary(page)).nodes.length, 4, 'the map draws for a viewer too');
  });

  for (const path of saved) t.ok(existsSync(path), `screenshot ${path}`);
  t.same(problems, [], 'no script error, CSP refusal or failed request in the browser');
});
