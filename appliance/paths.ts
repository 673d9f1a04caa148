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
export const labPolicyPath = join(projectRoot, 'docs', 'examples', 'lab.yaml');
