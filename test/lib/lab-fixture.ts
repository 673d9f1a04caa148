// A namespace lab for one test file: built, running the gatekeeper with the given policy, and
// always torn down (also when a test fails or throws). The hosts keep their default offloads unless
// told `hostOffloads: 'off'` (lab.ts).

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Lab, labAddresses, type HostOffloads } from '../../appliance/lab/lab';
import type { DataplaneStats } from '../../appliance/ipc/stats';

export { labAddresses, sleep, type HostOffloads };

/** Both host setups, for tests that run in each: default offloads (realistic) and none (per-packet worst case). */
export const hostOffloadSetups: readonly HostOffloads[] = ['on', 'off'];

export interface RunningLab {
  lab: Lab;
  dataplane: ChildProcess;
  policyPath: string;
  /** Replace the policy file and send SIGHUP; resolves when the dataplane has answered. */
  reload(text: string): Promise<DataplaneStats>;
  /** Run in the client / server namespace. */
  client(argv: string[], timeoutMs?: number): { status: number | null; stdout: string; stderr: string; ms: number };
  server(argv: string[], timeoutMs?: number): { status: number | null; stdout: string; stderr: string; ms: number };
}

/** Root and the lab's tools are needed; without them the lab tests cannot say anything. */
export function labUnavailable(): string | false {
  if (process.getuid?.() !== 0) return 'lab tests need root';
  for (const tool of ['ip', 'ethtool', 'nc', 'ping', 'iperf3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `lab tests need ${tool}`;
  }
  return false;
}

export async function startLab(t: Test, policyText: string, hostOffloads: HostOffloads = 'on'): Promise<RunningLab> {
  const lab = new Lab(undefined, hostOffloads);
  t.teardown(() => lab.destroy());
  lab.create();
  const policyPath = join(lab.dir, 'policy.yaml');
  writeFileSync(policyPath, policyText);
  const dataplane = await lab.startDataplane(policyPath);
  const inNs = (ns: string) => (argv: string[], timeoutMs = 20_000) => {
    const started = Date.now();
    const r = lab.exec(ns, argv, timeoutMs);
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - started };
  };
  return {
    lab,
    dataplane,
    policyPath,
    async reload(text: string) {
      const before = lab.dataplaneLog.length;
      writeFileSync(policyPath, text);
      dataplane.kill('SIGHUP');
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const answered = lab.dataplaneLog.slice(before).some((l) => /policy reload/.test(l));
        if (answered) break;
        await sleep(50);
      }
      return lab.freshStats();
    },
    client: inNs(lab.client),
    server: inNs(lab.server),
  };
}
