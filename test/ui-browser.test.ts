// The web UI in a real browser (Debian's chromium, headless, driven by playwright-core) against a
// real management process and a real namespace lab whose dataplane is connected to it: sign in, see
// the pair, break the policy and see the error where it is, fix it, review the diff and the dry run,
// apply, and see the lab's traffic change verdict; roll back the same way; add a syslog target that
// receives the test message; a viewer sees no way to change anything. The dashboard stops polling
// while the tab is hidden. Modbus inspection, from a test dataplane on the management socket (no lab):
// the functions on inspected flows, the violations table, the ot.violation and flow.end events, the
// per-rule violations and the inspection box. Set GK_UI_SCREENSHOTS=DIR to keep a screenshot of every
// main view there.

import t from 'tap';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import type { DataplaneStats } from '../appliance/ipc/stats';
import { Lab, labAddresses as A, sleep } from '../appliance/lab/lab';
import { labPolicyPath } from '../appliance/paths';
import { labUnavailable } from './lib/lab-fixture';
import { ADMIN, startMgmt, type RunningMgmt } from './lib/mgmt-fixture';
import { flowEndEvent, ModbusDataplane, modbusStats, violationEvent } from './lib/modbus-fixture';

const CHROMIUM = '/usr/bin/chromium';
const screenshots = process.env.GK_UI_SCREENSHOTS;

const labPolicy = readFileSync(labPolicyPath, 'utf8');
/** The lab policy plus a rule for tcp/9999 (denied by the default before) to the group `to`. */
const withPort9999 = (to: string) => labPolicy.replace('\nl2:', `
  - name: client-port-9999
    from: client
    to: ${to}
    service: tcp/9999
    action: allow
    log: true

l2:`);

/** Polls until `check` returns a value (not undefined/false), or fails with `what`. */
async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function shoot(page: Page, name: string): Promise<void> {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

/** Browser problems that must never happen: script errors and CSP refusals. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => {
    // The one expected console error is the 401 of /auth/session before signing in.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return problems;
}

async function signIn(page: Page, url: string, name: string, password: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
}

const text = async (l: Locator) => (await l.textContent()) ?? '';

const unavailable = labUnavailable() || (!existsSync(CHROMIUM) && `needs ${CHROMIUM}`);

t.test('web UI in chromium against the real service and lab', { skip: unavailable }, async (t) => {
  const mgmt: RunningMgmt = await startMgmt(t, { initialPolicy: labPolicy });
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  const policyPath = join(lab.dir, 'policy.yaml');
  writeFileSync(policyPath, labPolicy);
  await lab.startDataplane(policyPath, 15_000, mgmt.socketPath);
  const pair = `lab-${lab.id}`;
  lab.spawn(lab.server, ['nc', '-lk', '9999']);
  const connect9999 = () => lab.exec(lab.client, ['nc', '-z', '-w', '2', A.server4, '9999']);

  const started = Date.now();
  const before = connect9999();
  const beforeMs = Date.now() - started;
  t.not(before.status, 0, 'before: tcp/9999 from the client does not connect');
  t.ok(beforeMs >= 1500, `... because it is dropped: the attempt times out (${beforeMs} ms), it is not refused`);

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  page.setDefaultTimeout(15_000);
  const problems = watchProblems(page);

  await t.test('sign in through the form; the dashboard shows the pair connected', async (t) => {
    await page.goto(mgmt.url);
    await page.getByLabel('Password').fill('wrong password!');
    await page.getByLabel('Username').fill(ADMIN.name);
    await page.getByRole('button', { name: 'Sign in' }).click();
    t.match(await text(page.getByRole('alert')), /invalid username or password/, 'a wrong password is refused with a message');
    await shoot(page, 'login');

    await signIn(page, mgmt.url, ADMIN.name, ADMIN.password);
    const card = page.getByRole('region', { name: `Port pair ${pair}` });
    await card.getByText('connected', { exact: true }).waitFor();
    t.match(await text(card), /enforcing/, 'the mode is shown');
    t.match(await text(card), /policy v1/, 'the running policy is the stored v1');
    t.match(await text(card), /Inside port\s*inside0\s*link up/, 'the inside link is up');
    t.match(await text(card), /Outside port\s*outside0\s*link up/, 'the outside link is up');
    t.match(await text(card), /Lost before inspection\s*0\s*\(box too slow, not the policy\)/, 'frames lost in the kernel are shown apart, none here');
    const denied = page.getByRole('region', { name: 'Top denied flows (last hour)' });
    await denied.getByRole('cell', { name: 'tcp/9999' }).waitFor({ timeout: 30_000 });
    t.pass('the denied tcp/9999 attempt is listed under top denied flows');
    await shoot(page, 'dashboard');
  });

  await t.test('the dashboard refreshes every second and stops while the tab is hidden', async (t) => {
    const statusRequests = async (ms: number) => {
      let n = 0;
      const count = (r: { url(): string }) => { if (r.url().endsWith('/api/v1/status')) n++; };
      page.on('request', count);
      await sleep(ms);
      page.off('request', count);
      return n;
    };
    const setHidden = (hidden: boolean) => page.evaluate(`Object.defineProperty(document, 'hidden', { configurable: true, get: () => ${hidden} });
      document.dispatchEvent(new Event('visibilitychange'));`);
    const visible = await statusRequests(3000);
    t.ok(visible >= 2, `visible: ${visible} status requests in 3 s`);
    await setHidden(true);
    await sleep(500);
    t.equal(await statusRequests(3000), 0, 'hidden: none');
    await setHidden(false);
    t.ok(await statusRequests(1500) >= 1, 'shown again: refreshing resumes');
  });

  await t.test('a broken policy shows its error at line:col; the fixed one is applied after review', async (t) => {
    await page.getByRole('link', { name: 'Policy' }).click();
    const editor = page.getByLabel('Policy (YAML)');
    await until('the active policy in the editor', async () => (await editor.inputValue()) === labPolicy);
    await page.getByRole('status').filter({ hasText: 'valid' }).first().waitFor();

    const broken = withPort9999('servers');
    const brokenLine = broken.split('\n').findIndex((l) => l.includes('to: servers')) + 1;
    await editor.fill(broken);
    const problem = page.getByRole('button', { name: new RegExp(`line ${brokenLine}:9 unknown group 'servers'`) });
    await problem.waitFor();
    t.pass(`the error is listed as line ${brokenLine}:9`);
    t.equal(await page.locator(`.gutter > div:nth-child(${brokenLine})`).getAttribute('class'), 'line-error', 'the offending line is marked in the gutter');
    t.ok(await page.getByRole('button', { name: 'Review and apply…' }).isDisabled(), 'a policy with errors cannot be applied');
    await shoot(page, 'policy-error');
    await problem.click();
    const cursor = await editor.evaluate((el) => (el as unknown as { selectionStart: number }).selectionStart);
    const offset = broken.split('\n').slice(0, brokenLine - 1).join('\n').length + 1 + 8;
    t.equal(cursor, offset, 'clicking the error puts the cursor on it');

    await editor.fill(withPort9999('server'));
    await until('the error to go away', async () => (await problem.count()) === 0);
    const review = page.getByRole('button', { name: 'Review and apply…' });
    await until('the review button', async () => review.isEnabled());
    await review.click();

    const dialog = page.getByRole('dialog', { name: 'Review policy change' });
    await dialog.waitFor();
    const diff = dialog.getByLabel('Unified diff');
    await diff.waitFor();
    t.match(await text(diff), /\+\s+service: tcp\/9999/, 'the diff shows the added rule');
    const changes = dialog.getByRole('table', { name: 'Flows that change verdict' });
    await changes.waitFor();
    const changeText = await text(changes);
    t.match(changeText, /198\.18\.1\.100:9999/, 'the dry run lists the observed tcp/9999 attempt');
    t.match(changeText, /deny\s*default.*allow\s*client-port-9999/s, '... going from deny (default) to allow (client-port-9999)');
    await shoot(page, 'policy-review');

    await dialog.getByRole('button', { name: 'Apply policy' }).click();
    t.match(await text(dialog.getByRole('alert')), /Write a comment/, 'apply asks for a comment first');
    await dialog.getByLabel('Comment (required)').fill('allow the test service on tcp/9999');
    await dialog.getByRole('button', { name: 'Apply policy' }).click();
    await dialog.waitFor({ state: 'detached' });
    const notice = page.locator('#notices').getByText(/Policy v2 applied/);
    await notice.waitFor();
    t.match(await text(notice), new RegExp(`${pair} \\(generation 2\\)`), 'the apply reached the lab pair');
    await page.getByText('Active: v2').waitFor();
    await page.getByRole('banner').getByText('Policy v2').waitFor();
    t.pass('the header shows v2 running at once');
  });

  await t.test('the lab traffic changes verdict and the flows view shows it', async (t) => {
    const after = connect9999();
    t.equal(after.status, 0, 'after: tcp/9999 from the client connects');
    // A connection that stays open, to find in the flow table.
    lab.spawn(lab.client, ['sh', '-c', `sleep 30 | nc ${A.server4} 9999`]);

    await page.getByRole('link', { name: 'Flows' }).click();
    await page.getByLabel('Port', { exact: true }).fill('9999');
    await page.getByRole('button', { name: 'Show flows' }).click();
    const row = page.getByRole('row').filter({ hasText: 'client-port-9999' }).first();
    await row.waitFor();
    t.match(await text(row), new RegExp(`${pair}.*tcp/9999.*allowed`, 's'), 'the flow is listed as allowed by the new rule');
    await shoot(page, 'flows');

    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByRole('cell', { name: 'policy.applied' }).first().waitFor();
    t.pass('the policy.applied event is listed');
    await shoot(page, 'events');
  });

  await t.test('rolling back to v1 goes through the same review and denies tcp/9999 again', async (t) => {
    await page.getByRole('link', { name: 'Policy' }).click();
    await page.getByRole('tab', { name: 'History' }).click();
    await page.getByRole('cell', { name: 'allow the test service on tcp/9999' }).waitFor();
    await shoot(page, 'policy-history');
    await page.getByRole('button', { name: 'Roll back to v1' }).click();
    const dialog = page.getByRole('dialog', { name: 'Review rollback to v1 (from v2)' });
    await dialog.waitFor();
    t.match(await text(dialog.getByLabel('Unified diff')), /-\s+service: tcp\/9999/, 'the diff shows the rule going away');
    const changes = dialog.getByRole('table', { name: 'Flows that change verdict' });
    await changes.waitFor();
    t.match(await text(changes), /allow\s*client-port-9999.*deny\s*default/s, 'the dry run shows tcp/9999 going back to deny');
    await dialog.getByLabel('Comment (required)').fill('test over');
    await dialog.getByRole('button', { name: 'Roll back to v1' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('#notices').getByText(/Policy v3 applied/).waitFor();
    await page.getByRole('cell', { name: 'rollback to v1: test over' }).waitFor();
    t.pass('v3 (the text of v1) is in the history with the comment');
    t.not(connect9999().status, 0, 'tcp/9999 is dropped again');
  });

  await t.test('settings: a syslog target added in the UI receives the test message', async (t) => {
    const receiver = createSocket('udp4');
    const received: string[] = [];
    receiver.on('message', (m) => received.push(m.toString()));
    await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
    t.teardown(() => receiver.close());

    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('button', { name: 'Add target…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add syslog target' });
    await dialog.getByLabel('Name', { exact: true }).fill('siem-lab');
    await dialog.getByLabel('Host', { exact: true }).fill('127.0.0.1');
    await dialog.getByLabel('Port', { exact: true }).fill(String(receiver.address().port));
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const row = page.getByRole('row').filter({ hasText: 'siem-lab' });
    t.match(await text(row), /udp:\/\/127\.0\.0\.1:\d+.*rfc5424/s, 'the target is listed');
    await row.getByRole('button', { name: 'Send a test message to siem-lab' }).click();
    await page.locator('#notices').getByText('Test message sent to siem-lab.').waitFor();
    await until('the test message at the receiver', () => received.some((m) => /siem-lab/.test(m)));
    t.pass('the receiver got the test message');
    await row.getByText(/sent [1-9]/).waitFor();
    t.match(await text(row), /connected/, 'the status shows the target connected and events sent');
    await shoot(page, 'settings');
  });

  await t.test('a viewer sees everything and can change nothing', async (t) => {
    await page.getByRole('link', { name: 'Users' }).click();
    await shoot(page, 'users');
    await page.getByRole('button', { name: 'Add user…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add user' });
    await dialog.getByLabel('Name').fill('vera');
    await dialog.getByLabel('Role').selectOption('viewer');
    await dialog.getByLabel('Password').fill('short');
    await dialog.getByRole('button', { name: 'Add user' }).click();
    t.match(await text(dialog.getByRole('alert')), /at least 12 characters/, 'a short password is refused before sending');
    await dialog.getByLabel('Password').fill('vera-password-123');
    await dialog.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('cell', { name: 'vera', exact: true }).waitFor();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, mgmt.url, 'vera', 'vera-password-123');
    t.equal(await page.getByRole('link', { name: 'Users' }).count(), 0, 'no Users view for a viewer');
    await page.getByRole('link', { name: 'Policy' }).click();
    await page.getByText('Read-only: your role (viewer) cannot apply policies.').waitFor();
    t.equal(await page.getByRole('button', { name: 'Review and apply…' }).count(), 0, 'no apply button');
    await page.getByRole('tab', { name: 'History' }).click();
    await page.getByRole('cell', { name: 'v1', exact: true }).waitFor();
    t.equal(await page.getByRole('button', { name: /Roll back/ }).count(), 0, 'no rollback button');
  });

  t.same(problems, [], 'no script error or CSP refusal in the browser');
});

t.test('Modbus inspection in the UI, from a dataplane on the management socket', { skip: !existsSync(CHROMIUM) && `needs ${CHROMIUM}` }, async (t) => {
  const mgmt: RunningMgmt = await startMgmt(t);
  const pair = 'plant-a';
  const pid = 4321;
  const dp = await ModbusDataplane.connect(mgmt.socketPath, pair, pid);
  t.teardown(() => dp.close());
  // A fresh snapshot every second, as a dataplane sends them; no inspected flow at first.
  const startedAt = Date.now();
  const inspecting = modbusStats(pair, pid, 0);
  let current: DataplaneStats = { ...inspecting, inspect: { modbus: { flows: 0, active: 0, violations: {}, held: {} } } };
  const sendStats = () => dp.send({ type: 'stats', stats: { ...current, uptimeMs: 60_000 + Date.now() - startedAt } });
  sendStats();
  const timer = setInterval(sendStats, 1000);
  t.teardown(() => clearInterval(timer));

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  page.setDefaultTimeout(15_000);
  const problems = watchProblems(page);
  await signIn(page, mgmt.url, ADMIN.name, ADMIN.password);
  const card = page.getByRole('region', { name: `Port pair ${pair}` });
  const inspection = page.getByRole('group', { name: `Modbus inspection on ${pair}` });
  const violations = page.getByRole('region', { name: 'Modbus violations (last hour)' });

  await t.test('before anything was inspected: no inspection box, the violations table says what it is for', async (t) => {
    await card.getByText('connected', { exact: true }).waitFor();
    await card.getByText('Rule counters (2 rules)').waitFor();
    t.equal(await inspection.count(), 0, 'no inspection box while the pair has inspected nothing');
    await violations.getByText(/No Modbus request was refused in the last hour\. Rules with a modbus: block list here/).waitFor();
    t.pass('the empty violations table explains itself');
  });

  await t.test('the dashboard shows the inspection counters, per-rule violations and the violations table', async (t) => {
    current = inspecting;
    dp.send({ type: 'events', dropped: 0, events: [violationEvent(), violationEvent({ count: 2, addressFirst: 38, addressLast: 39 }), flowEndEvent()] });
    await inspection.waitFor();
    const box = await text(inspection);
    t.match(box, /1 inspected now · 3 since start/, 'inspected flows now and since start');
    t.match(box, /Refused\s*7 \(function_not_allowed 5, address_not_allowed 2\)/, 'violations by reason');
    t.match(box, /Held\s*2 \(segment_ahead 2\)/, 'held segments by reason, apart');

    await card.getByText('Rule counters (2 rules) · 7 violations').click();
    const rule = card.getByRole('row').filter({ hasText: 'hmi-reads-plc' });
    await rule.waitFor();
    t.match(await text(rule), /hmi-reads-plc\s*allow\s*420\s*3\s*7/, 'the rule\'s violations next to its packets and flows');

    const row = violations.getByRole('row').filter({ hasText: 'write-single-register' });
    await row.waitFor();
    const cells = await row.getByRole('cell').allTextContents();
    t.same(cells.slice(1), [pair, '198.18.1.10 hmi', '198.18.1.100:502 plc', 'hmi-reads-plc', 'write-single-register', '1', '38–40',
      'function_not_allowed', 'reset', '7'], 'both summaries in one row: function, unit, address range, reason, action, count');
    await shoot(page, 'modbus-dashboard');
  });

  await t.test('the flows view shows the functions seen on an inspected flow', async (t) => {
    await page.getByRole('link', { name: 'Flows' }).click();
    const row = page.getByRole('row').filter({ hasText: 'hmi-reads-plc' });
    await row.waitFor();
    t.match(await text(row), /modbus: read-holding-registers ×120, write-single-register ×1/, 'functions by use, with counts');
    await shoot(page, 'modbus-flows');
  });

  await t.test('the events view renders ot.violation and the functions of flow.end', async (t) => {
    await page.getByRole('link', { name: 'Events' }).click();
    const violation = page.getByRole('row').filter({ hasText: 'ot.violation' }).filter({ hasText: '38–39' });
    await violation.waitFor();
    t.match(await text(violation), /reset\s*198\.18\.1\.10:40100 → 198\.18\.1\.100:502 \(tcp\/502\) 2 modbus write-single-register requests to unit 1, addresses 38–39 refused by hmi-reads-plc: function_not_allowed/,
      'who, what function, unit, addresses, rule, reason and what was done');
    const single = page.getByRole('row').filter({ hasText: 'ot.violation' }).filter({ hasText: '5 modbus' });
    t.match(await text(single), /to unit 1, address 40 refused/, 'one address is named as such');
    const end = page.getByRole('row').filter({ hasText: 'flow.end' });
    t.match(await text(end), /requests: read-holding-registers ×120, write-single-register ×1/, 'flow.end lists the requests per function');
    await shoot(page, 'modbus-events');
  });

  t.same(problems, [], 'no script error or CSP refusal in the browser');
});
