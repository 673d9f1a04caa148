// A scratch network namespace for the port-level tests (test/port-io, test/port-offload): made with a
// per-run name, entered through inNs(), a forwarder started in it whose JSON lines are read one at a
// time, and everything removed in the test's teardown, also on failure.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';

export function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout;
}

export interface Forwarder {
  child: ChildProcess;
  /** The forwarder's next stdout line; throws with its stderr if it ends first. */
  next(what: string): Promise<string>;
  exited: Promise<number | null>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

export interface PortNamespace {
  ns: string;
  /** A scratch directory, removed with the namespace. */
  scratch: string;
  inNs(argv: string[]): string;
  /** `node -e script ...args` inside the namespace. */
  startForwarder(script: string, args: string[]): Forwarder;
}

export function portNamespace(t: Test, label: string): PortNamespace {
  const ns = `gk-${randomBytes(3).toString('hex')}-port`;
  const scratch = mkdtempSync(join(tmpdir(), `gatekeeper-${label}-`));
  const children: ChildProcess[] = [];
  t.teardown(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(scratch, { recursive: true, force: true });
  });
  must('ip', ['netns', 'add', ns]);
  const inNs = (argv: string[]) => must('ip', ['netns', 'exec', ns, ...argv]);
  inNs(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const startForwarder = (script: string, args: string[]): Forwarder => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const next = async (what: string): Promise<string> => {
      const line = await Promise.race([lines.next(), exited.then(() => undefined)]);
      if (line === undefined || line.done) throw new Error(`forwarder ended before ${what}: ${stderr}`);
      return line.value;
    };
    return { child, next, exited, stderr: () => stderr };
  };
  return { ns, scratch, inNs, startForwarder };
}
