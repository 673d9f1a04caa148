#!/usr/bin/env -S node --no-memory-reducer
// The `gatekeeper` command: one entry point for the dataplane, offline tools and the lab.

import './prewarm'; // first: `run` starts the policy worker before the rest loads
import { constants } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { runDataplane } from '../dataplane/dataplane';
import { FAIL_MODES, type FailMode } from '../dataplane/failsafe/kernel-bridge';
import { pcapOtMessages } from '../dataplane/offline/ot-messages';
import { pcapTuples } from '../dataplane/offline/tuples';
import { parseInside, replayPcap } from '../dataplane/offline/replay';
import { runLab } from '../lab/lab-command';
import { registerMgmtCommands } from './mgmt-commands';
import { explainDecision } from '../policy/analysis/explain';
import { formatDiagnostic } from '../policy/diagnostics';
import { loadPolicyFile, type LoadResult } from '../policy/load';

// A reader that stops early (`| head`, quitting `less`) closes the pipe. Tools that keep SIGPIPE's
// default die of it silently, status 141 in the shell; Node ignores SIGPIPE, so the write fails with
// EPIPE instead, which would crash with a stack trace: end the same way, quietly, for every command.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(128 + constants.signals.SIGPIPE);
  throw err;
});

const program = new Command();
program
  .name('gatekeeper')
  .description('Agentless inline micro-segmentation: a transparent bridge that enforces an allowlist.')
  .showHelpAfterError();

program
  .command('run')
  .description('Bridge two ports and enforce a policy (one process per port pair). SIGHUP reloads the policy.')
  .requiredOption('--inside <if>', 'port facing the protected asset')
  .requiredOption('--outside <if>', 'port facing the network')
  .requiredOption('--policy <file>', 'policy file (YAML)')
  .option('--name <name>', 'name of this port pair, used in logs and stats')
  .option('--stats-file <file>', 'write a JSON counter snapshot here every second')
  .option('--mgmt-socket <path>', 'management service socket to connect to (reconnects while it is down)')
  .addOption(new Option('--fail <mode>', 'while no dataplane runs: open = the kernel bridges the ports, closed = nothing passes')
    .choices([...FAIL_MODES]).default('closed'))
  .option('--link-fault-pass-through', 'when one port loses carrier, take the other port down until it returns')
  .action((o: { inside: string; outside: string; policy: string; name?: string; statsFile?: string; mgmtSocket?: string;
    fail: FailMode; linkFaultPassThrough?: boolean }) => {
    if (o.inside === o.outside) fail('--inside and --outside must be different interfaces');
    try {
      runDataplane({ inside: o.inside, outside: o.outside, policyPath: o.policy, name: o.name, statsFile: o.statsFile,
        mgmtSocket: o.mgmtSocket, failMode: o.fail, linkFaultPassThrough: o.linkFaultPassThrough === true });
    } catch (err) {
      fail((err as Error).message);
    }
  });

program
  .command('replay')
  .description('Run a capture through the engine offline: a verdict per frame, tuples with --tuples, OT messages with --ot.')
  .argument('<pcap>', 'capture file (pcap)')
  .option('--policy <file>', 'policy to judge the frames with')
  .option('--tuples', "print each frame's decoded 5-tuple in the conformance format instead of verdicts")
  .option('--ot', 'print the industrial-protocol messages (Modbus/TCP) the parser sees, in the conformance format')
  .option('--summary', 'print only the totals and the per-rule counts')
  .option('--json', 'print the summary as JSON')
  .option('--inside <cidr|mac>', 'what is behind the inside port (address, CIDR or MAC; repeatable): a frame from it came ' +
    'in on the inside port, every other frame on the outside; without it, ports are learned from MAC addresses',
  (value: string, list: string[]) => [...list, value], [] as string[])
  .action(async (pcap: string, o: { policy?: string; tuples?: boolean; ot?: boolean; summary?: boolean; json?: boolean; inside: string[] }) => {
    if (o.tuples) {
      for await (const line of pcapTuples(pcap)) process.stdout.write(`${line}\n`);
      return;
    }
    if (o.ot) {
      for await (const line of pcapOtMessages(pcap)) process.stdout.write(`${line}\n`);
      return;
    }
    if (!o.policy) fail('replay needs --policy FILE (or --tuples)');
    const policy = mustLoad(o.policy).policy;
    const inside = parseInside(o.inside);
    if (typeof inside === 'string') fail(inside);
    const summary = await replayPcap(pcap, policy, o.summary || o.json ? undefined : (f) => {
      const detail = [f.rule && `rule=${f.rule}`, f.reason && `reason=${f.reason}`, f.inspector && `app=${f.inspector}`].filter(Boolean).join(' ');
      process.stdout.write(`${f.number}\t${f.side}\t${f.verdict}\t${detail}\n`);
    }, { inside });
    if (o.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      return;
    }
    process.stdout.write(`frames ${summary.frames}: forwarded ${summary.forwarded}, dropped ${summary.dropped}, ` +
      `rejected ${summary.rejected}, skipped ${summary.skipped}\n`);
    process.stdout.write(`  sides: ${summary.sides}\n`);
    for (const r of summary.byRule) {
      const violations = r.violations > 0 ? `, ${r.violations} violations` : '';
      if (r.packets > 0) process.stdout.write(`  ${r.rule} (${r.action}): ${r.packets} packets, ${r.bytes} bytes${violations}\n`);
    }
    for (const [reason, n] of Object.entries(summary.dropReasons)) process.stdout.write(`  dropped for ${reason}: ${n}\n`);
    for (const [reason, n] of Object.entries(summary.inspectorReasons)) process.stdout.write(`  application layer ${reason}: ${n}\n`);
  });

const policyCmd = program.command('policy').description('Check, explain and compile policy files.');

policyCmd
  .command('check')
  .description('Validate a policy file; errors as file:line:col, non-zero exit when it would be refused.')
  .argument('<file>')
  .action((file: string) => {
    const r = mustLoad(file);
    process.stdout.write(`${file}: ok, ${r.policy.rules.length - 1} rules, mode ${r.policy.mode}` +
      `${r.warnings.length ? `, ${r.warnings.length} warning(s)` : ''}\n`);
  });

policyCmd
  .command('explain')
  .description('Say which rule decides a connection, and why.')
  .argument('<file>')
  .requiredOption('--from <ip>', 'source address (the side that opens the connection)')
  .requiredOption('--to <ip>', 'destination address')
  .option('--service <svc>', 'e.g. tcp/502, udp/53, icmp/echo-request', 'any')
  .option('--modbus-function <f>', "a Modbus request's function: name (read-holding-registers), code (3) or 43/14; " +
    "says whether the deciding rule's modbus block lets it through")
  .option('--unit <n>', 'with --modbus-function: the unit identifier, 0-255')
  .option('--address <a>', "with --modbus-function: the address or range A-B in the function's table (the range's length is the quantity)")
  .action((file: string, o: { from: string; to: string; service: string; modbusFunction?: string; unit?: string; address?: string }) => {
    if (o.modbusFunction === undefined && (o.unit !== undefined || o.address !== undefined)) {
      fail('--unit and --address describe a Modbus request: give its --modbus-function too');
    }
    const r = mustLoad(file);
    const modbus = o.modbusFunction === undefined ? undefined : { function: o.modbusFunction, unit: o.unit, address: o.address };
    const result = explainDecision(r.model, r.policy, o.from, o.to, o.service, modbus);
    process.stdout.write(`${result.text}\n`);
    if (!result.ok) process.exitCode = 2;
  });

policyCmd
  .command('compile')
  .description('Compile a policy and print table statistics.')
  .argument('<file>')
  .option('--json', 'print the statistics as JSON')
  .action((file: string, o: { json?: boolean }) => {
    const s = mustLoad(file).policy.stats;
    if (o.json) {
      process.stdout.write(`${JSON.stringify(s)}\n`);
      return;
    }
    process.stdout.write([
      `rules            ${s.rules}`,
      `groups           ${s.groups}`,
      `services         ${s.services}`,
      `source intervals ${s.srcIntervals}`,
      `dest intervals   ${s.dstIntervals}`,
      `rule bitsets     ${s.bitsets}`,
      `MAC bindings     ${s.bindings}`,
      `table size       ${(s.tableBytes / 1024).toFixed(1)} KiB`,
      `compile time     ${s.compileMs.toFixed(1)} ms`,
    ].join('\n') + '\n');
  });

program
  .command('lab')
  .description('Build a lab (client and server namespaces through the gatekeeper), run it until Ctrl-C, then remove it.')
  .option('--policy <file>', 'policy to run (default: the sample lab policy)')
  .option('--clean', 'only remove namespaces left behind by labs that were killed')
  .option('--for <seconds>', 'stop by itself after this many seconds', positiveInt)
  .option('--listen <host:port>', 'where the web UI listens (plain HTTP: keep it on loopback)', '127.0.0.1:8443')
  .action(async (o: { policy?: string; clean?: boolean; for?: number; listen: string }) => {
    process.exitCode = await runLab(o);
  });

/** Load a policy or exit 2 with its errors; warnings go to stderr either way. */
function mustLoad(file: string): Extract<LoadResult, { ok: true }> {
  const r = loadPolicyFile(file);
  for (const d of r.warnings) process.stderr.write(`${formatDiagnostic(d)}\n`);
  if (!r.ok) {
    for (const d of r.errors) process.stderr.write(`${formatDiagnostic(d)}\n`);
    process.stderr.write(`${file}: ${r.errors.length} error(s); policy refused\n`);
    process.exit(2);
  }
  return r;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

function fail(message: string): never {
  process.stderr.write(`gatekeeper: ${message}\n`);
  process.exit(2);
}

registerMgmtCommands(program);

program.parseAsync(process.argv).catch((err: Error) => fail(err.message));
