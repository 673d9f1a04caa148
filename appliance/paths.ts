// Where the installed project lives, whether running from dist/ or from source under tests.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const projectRoot = findRoot(__dirname);
/** The built CLI; tests and the lab start dataplanes from it. */
export const cliPath = join(projectRoot, 'dist', 'appliance', 'cli', 'gatekeeper.js');
/**
 * Node.js flags every dataplane runs with (before cliPath on its command line: the systemd unit,
 * the labs): V8's memory reducer off. Once allocation goes quiet (8 s after start, and after each
 * busy stretch) it runs full mark-compact collections to shrink the heap; here they held the packet
 * loop 2-11 ms (a ping's worst round trips). The dataplane's memory is bounded by its preallocated
 * tables and needs no shrinking; ordinary collections still run as it allocates. V8 takes the flag
 * only on the command line (not in NODE_OPTIONS, not from v8.setFlagsFromString once running).
 */
export const dataplaneNodeFlags: readonly string[] = ['--no-memory-reducer'];
export const labPolicyPath = join(projectRoot, 'docs', 'examples', 'lab.yaml');
