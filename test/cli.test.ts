// The gatekeeper command as a user runs it: exit codes, file:line:col errors, replay and tuples.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cliPath, labPolicyPath } from '../appliance/paths';

const pcaps = resolve(__dirname, '../../shared/conformance/pcaps');
const dir = mkdtempSync(join(tmpdir(), 'gatekeeper-cli-'));

function gatekeeper(...args: string[]) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const modbusPolicy = join(dir, 'modbus.yaml');
writeFileSync(modbusPolicy, `version: 1
default: deny
groups:
  master: [10.0.0.57]
  plc: [10.0.0.3]
rules:
  - name: master-polls-plc
    from: master
    to: plc
    service: modbus
    action: allow
`);

t.test('--help on every command', async (t) => {
  for (const cmd of [[], ['run'], ['replay'], ['policy'], ['policy', 'check'], ['policy', 'explain'], ['policy', 'compile'], ['lab']]) {
    const r = gatekeeper(...cmd, '--help');
    t.equal(r.status, 0, `gatekeeper ${cmd.join(' ')} --help`);
    t.match(r.stdout, /Usage: gatekeeper/);
  }
});

t.test('policy check: ok with a summary, refused with file:line:col and exit 2', async (t) => {
  const ok = gatekeeper('policy', 'check', labPolicyPath);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /ok, 3 rules/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'version: 1\nrules:\n  - name: r\n    from: nobody\n    to: any\n    service: any\n    action: allow\n');
  const r = gatekeeper('policy', 'check', bad);
  t.equal(r.status, 2);
  t.match(r.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')}:4:11: .*nobody`));
  t.match(r.stderr, /policy refused/);
});

t.test('policy explain names the deciding rule', async (t) => {
  const allowed = gatekeeper('policy', 'explain', modbusPolicy, '--from', '10.0.0.57', '--to', '10.0.0.3', '--service', 'tcp/502');
  t.equal(allowed.status, 0, allowed.stderr);
  t.match(allowed.stdout, /master-polls-plc/);
  t.match(allowed.stdout, /allow/);
  const denied = gatekeeper('policy', 'explain', modbusPolicy, '--from', '10.0.0.3', '--to', '10.0.0.57', '--service', 'tcp/502');
  t.match(denied.stdout, /default/i);
});

t.test('policy compile prints table statistics', async (t) => {
  const r = gatekeeper('policy', 'compile', labPolicyPath, '--json');
  t.equal(r.status, 0, r.stderr);
  const stats = JSON.parse(r.stdout) as { rules: number; compileMs: number; bitsets: number };
  t.equal(stats.rules, 3, 'the three rules of the lab policy');
  t.ok(stats.bitsets > 0);
});

t.test('replay --tuples prints the conformance format', async (t) => {
  const r = gatekeeper('replay', '--tuples', join(pcaps, 'modbus.pcap'));
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.split('\n')[0], '1\t4\t10.0.0.57\t10.0.0.3\t6\t2387\t502\t-');
});

t.test('replay --policy: the Modbus master reaches the PLC, replies follow the flow', async (t) => {
  const r = gatekeeper('replay', join(pcaps, 'modbus.pcap'), '--policy', modbusPolicy, '--json');
  t.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { frames: number; forwarded: number; dropped: number; byRule: { rule: string; packets: number }[] };
  t.ok(s.frames > 0);
  const rule = s.byRule.find((x) => x.rule === 'master-polls-plc');
  t.ok(rule && rule.packets > 0, 'frames counted on the allow rule');
  const perFrame = gatekeeper('replay', join(pcaps, 'modbus.pcap'), '--policy', modbusPolicy);
  // The capture starts in the middle of a connection: without its SYN, that one is not picked up.
  t.match(perFrame.stdout, /^1\toutside\tdrop\treason=tcp_no_flow/m, 'mid-stream segment without a flow dropped');
  t.match(perFrame.stdout, /^5\toutside\tforward\trule=master-polls-plc/m, 'new connection (SYN) forwarded by the rule');
  t.match(perFrame.stdout, /^6\tinside\tforward\trule=master-polls-plc/m, 'the PLC reply follows the flow');

  const reversed = join(dir, 'reversed.yaml');
  writeFileSync(reversed, `version: 1
default: deny
rules:
  - name: plc-to-master-only
    from: 10.0.0.3
    to: 10.0.0.57
    service: modbus
    action: allow
`);
  const denied = JSON.parse(gatekeeper('replay', join(pcaps, 'modbus.pcap'), '--policy', reversed, '--json').stdout) as typeof s;
  t.equal(denied.forwarded, 0, 'the master may not open connections under the reversed policy');
});

/**
 * The CLI with its stdout piped into `reader` (a shell command), as a user types it; stderr is the
 * CLI's and head's, then "exit N" with the CLI's own status. The CLI starts a moment late, so a
 * reader that stops at once has gone before the first write.
 */
function pipedInto(reader: string, ...args: string[]) {
  const r = spawnSync('sh', ['-c', `{ sleep 0.2; "$@"; echo "exit $?" >&2; } | ${reader}`, 'sh', process.execPath, cliPath, ...args],
    { encoding: 'utf8', timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr };
}

t.test('piped into a reader that stops early, every command ends quietly', async (t) => {
  const commands: [string, string[], string][] = [
    ['replay --tuples', ['replay', '--tuples', join(pcaps, 'modbus.pcap')], '1\t4\t10.0.0.57\t10.0.0.3\t6\t2387\t502\t-\n'],
    ['policy compile', ['policy', 'compile', labPolicyPath], 'rules            3\n'],
    ['--help', ['--help'], 'Usage: gatekeeper [options] [command]\n'],
  ];
  for (const [name, args, firstLine] of commands) {
    const head = pipedInto('head -1', ...args);
    t.equal(head.stdout, firstLine, `${name} | head -1: the first line`);
    // 0 when everything was written before head left, 141 (SIGPIPE's status) when it was cut short.
    t.match(head.stderr, /^exit (0|141)\n$/, `${name} | head -1: no stack trace, a clean exit`);
    const gone = pipedInto('true', ...args);
    t.match(gone.stderr, /^exit (0|141)\n$/, `${name} | true (the reader gone before the first write): quiet`);
  }
  t.equal(pipedInto('true', 'replay', '--tuples', join(pcaps, 'modbus.pcap')).stderr, 'exit 141\n',
    'replay stops at its first write once nobody reads, with the status of a tool killed by SIGPIPE');
});

t.test('run refuses bad arguments clearly', async (t) => {
  const same = gatekeeper('run', '--inside', 'x', '--outside', 'x', '--policy', labPolicyPath);
  t.equal(same.status, 2);
  t.match(same.stderr, /must be different/);
  const missing = gatekeeper('run', '--inside', 'gk-none0', '--outside', 'gk-none1', '--policy', labPolicyPath);
  t.not(missing.status, 0);
  t.match(missing.stderr, /gk-none0 does not exist/);
});
