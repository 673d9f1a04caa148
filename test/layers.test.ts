// The one-way layers of appliance/: walks every import of every source file and fails on one that
// points the wrong way. Lower layers never import higher ones:
//   wire (the wire vocabulary, a leaf) → policy, ipc → dataplane, mgmt → lab, cli.
// dataplane and mgmt meet only through ipc/. Within a layer, the rules below name folders that
// must not reach up into their parents.

import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { projectRoot } from '../appliance/paths';

const appliance = join(projectRoot, 'appliance');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'node_modules' && name !== 'build') out.push(...sources(path));
    } else if (/\.(ts|js)$/.test(name) && !name.endsWith('.d.ts')) {
      out.push(path);
    }
  }
  return out;
}

/** Imported files of `file`, as paths relative to appliance/ (only relative imports). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s+['"](\.[^'"]+)['"]|\brequire\(\s*['"](\.[^'"]+)['"]\s*\)|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2] ?? m[3];
    found.push(relative(appliance, normalize(join(dirname(file), spec))));
  }
  return found;
}

/** [importing folder, folders it must not import]. Paths relative to appliance/. */
const RULES: readonly [string, readonly string[]][] = [
  ['wire', ['policy', 'ipc', 'dataplane', 'mgmt', 'lab', 'cli', 'paths', 'sd-notify']],
  ['policy', ['dataplane', 'mgmt', 'lab', 'cli']],
  ['ipc', ['dataplane', 'mgmt', 'lab', 'cli']],
  ['dataplane', ['mgmt', 'lab', 'cli']],
  ['mgmt', ['dataplane', 'lab', 'cli']],
  ['lab', ['cli']],
  ['dataplane/decode', ['dataplane/port', 'dataplane/flow', 'dataplane/detect', 'dataplane/inspect', 'dataplane/respond', 'dataplane/events']],
  ['mgmt/auth', ['mgmt/routes']],
  ['mgmt/state', ['mgmt/siem', 'mgmt/routes']],
];

const within = (path: string, folder: string): boolean => path === folder || path.startsWith(`${folder}/`);

const files = sources(appliance);
t.ok(files.length > 50, `found the sources (${files.length})`);

for (const [from, forbidden] of RULES) {
  const wrong: string[] = [];
  for (const file of files) {
    const path = relative(appliance, file);
    if (!within(path, from)) continue;
    for (const target of importsOf(file)) {
      const hit = forbidden.find((f) => within(target.replace(/\.(js|ts)$/, ''), f));
      if (hit !== undefined) wrong.push(`${path} imports ${target}`);
    }
  }
  t.same(wrong, [], `${from}/ imports nothing from ${forbidden.join(', ')}`);
}

t.test('the walker sees imports (a wrong import is caught)', async (t) => {
  const engine = files.find((f) => f.endsWith(join('dataplane', 'dataplane.ts')));
  t.ok(engine !== undefined);
  t.ok(importsOf(engine!).some((p) => within(p, 'policy')), 'dataplane.ts imports policy/');
  t.ok(importsOf(join(appliance, 'mgmt', 'server.ts')).length > 3, 'server.ts imports are read');
});
