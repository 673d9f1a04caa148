// Modbus wire benchmark (root): the round trip of a Modbus/TCP transaction (read 10 holding
// registers, sequential, one connection, TCP_NODELAY) through a lab whose hosts keep their default
// offloads, three ways through the appliance namespace, interleaved over ROUNDS: (a) the kernel
// bridge, (b) the gatekeeper with the connection allowed by a plain rule, (c) the gatekeeper with a
// read-only `modbus:` block inspecting every request and response. Prints p50/p99 per path and what
// the gatekeeper adds over the bridge, with and without inspection. The responder is a few lines of
// Python (bench/modbus-rtt.py), so the round trip is the path's, not a PLC's. Must not leave a lab
// behind, also when interrupted.
//
//   npm run bench:modbus [-- --json]

import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, labAddresses, sleep } from '../appliance/lab/lab';
import { projectRoot } from '../appliance/paths';

const TRANSACTIONS = 2000;
const ROUNDS = 3;
const PORT = 502;
const RTT_SCRIPT = resolve(projectRoot, 'bench/modbus-rtt.py');

const policy = (block: string) => `# Modbus wire bench: the lab's client polls the server.
version: 1
default: deny
groups:
  client: [${labAddresses.client4}]
  server: [${labAddresses.server4}]
rules:
  - name: client-polls-server
    from: client
    to: server
    service: modbus
    action: allow
${block}`;

const READ_ONLY = `    modbus:
      functions: [read]
      units: [1]
      addresses:
        holding-registers: [0-99]
`;

interface PathResult {
  path: string;
  samplesUs: number[];
  p50Us: number;
  p99Us: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function poll(lab: Lab): number[] {
  const r = lab.exec(lab.client, ['/usr/bin/python3', RTT_SCRIPT, 'poll', labAddresses.server4, String(PORT), String(TRANSACTIONS)], 60_000);
  if (r.status !== 0) throw new Error(`poll failed: ${r.stderr || r.stdout}`);
  const rtts = JSON.parse(r.stdout) as number[];
  if (rtts.length !== TRANSACTIONS) throw new Error(`poll answered ${rtts.length} of ${TRANSACTIONS} transactions`);
  return rtts;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const log = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`);
  };
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:modbus must run as root (it creates network namespaces)\n');
    process.exitCode = 2;
    return;
  }
  const lab = new Lab(undefined, 'on');
  const cleanUp = (signal: NodeJS.Signals) => {
    lab.destroy();
    process.stderr.write(`bench:modbus: ${signal}, lab removed\n`);
    process.exit(130);
  };
  process.on('SIGINT', cleanUp);
  process.on('SIGTERM', cleanUp);
  try {
    lab.create();
    const plainPath = join(lab.dir, 'plain.yaml');
    const inspectedPath = join(lab.dir, 'inspected.yaml');
    writeFileSync(plainPath, policy(''));
    writeFileSync(inspectedPath, policy(READ_ONLY));
    const server = lab.spawn(lab.server, ['/usr/bin/python3', RTT_SCRIPT, 'serve', labAddresses.server4, String(PORT)]);
    await sleep(500);
    if (server.exitCode !== null) throw new Error('the Modbus responder did not start');
    log(`gatekeeper modbus wire bench: ${TRANSACTIONS} sequential reads per run, ${ROUNDS} interleaved rounds, ` +
      `host offloads on, load average ${loadavg()[0].toFixed(2)}`);
    const paths: { path: string; up(): Promise<ChildProcess | undefined> }[] = [
      { path: 'bridge', up: async () => (lab.bridgePorts(), undefined) },
      { path: 'gk-plain', up: async () => lab.startDataplane(plainPath) },
      { path: 'gk-inspected', up: async () => lab.startDataplane(inspectedPath) },
    ];
    const samples = new Map<string, number[]>(paths.map((p) => [p.path, []]));
    let inspectedFlows = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const p of paths) {
        log(`round ${round}/${ROUNDS}: ${p.path} ...`);
        const dataplane = await p.up();
        try {
          samples.get(p.path)!.push(...poll(lab));
          if (p.path === 'gk-inspected') inspectedFlows = (await lab.freshStats()).inspect.modbus?.flows ?? 0;
        } finally {
          if (dataplane === undefined) lab.unbridgePorts();
          else await stop(dataplane);
        }
      }
    }
    if (inspectedFlows === 0) throw new Error('the inspected path inspected nothing: the bench is not measuring inspection');
    const results: PathResult[] = paths.map(({ path }) => {
      const sorted = [...samples.get(path)!].sort((a, b) => a - b);
      return { path, samplesUs: [], p50Us: Math.round(percentile(sorted, 0.5)), p99Us: Math.round(percentile(sorted, 0.99)) };
    });
    const [bridge, plain, inspected] = results;
    const report = {
      modbusWire: {
        transactions: TRANSACTIONS * ROUNDS,
        bridgeP50Us: bridge.p50Us, bridgeP99Us: bridge.p99Us,
        plainP50Us: plain.p50Us, plainP99Us: plain.p99Us,
        inspectedP50Us: inspected.p50Us, inspectedP99Us: inspected.p99Us,
        /** Round trip the gatekeeper adds over the kernel bridge, without and with inspection. */
        addedP50Us: plain.p50Us - bridge.p50Us, addedP99Us: plain.p99Us - bridge.p99Us,
        addedInspectedP50Us: inspected.p50Us - bridge.p50Us, addedInspectedP99Us: inspected.p99Us - bridge.p99Us,
        loadAverage: +loadavg()[0].toFixed(2),
      },
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    log('');
    log('  path           p50 µs   p99 µs   added p50/p99 µs');
    for (const r of results) {
      log(`  ${r.path.padEnd(13)}  ${String(r.p50Us).padStart(6)}   ${String(r.p99Us).padStart(6)}   ` +
        `${`${r.p50Us - bridge.p50Us}/${r.p99Us - bridge.p99Us}`.padStart(16)}`);
    }
  } finally {
    lab.destroy();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench:modbus failed: ${err.message}\n`);
  process.exitCode = 1;
});
