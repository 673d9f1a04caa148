// The one-way layers of appliance/: walks every import of every source file and fails on one that
// points the wrong way. Lower layers never import higher ones:
//   wire (the wire vocabulary, a leaf) → policy, ipc → dataplane, mgmt → lab, cli.
// dataplane and mgmt meet only through ipc/. Within a layer, the rules below name folders that
// must not reach up into their parents. The dataplane's pipeline runs one way, each stage a folder:
//   decode → flow → detect → inspect → respond, run by engine.ts (with verdict.ts, a leaf, shared);
// events/ hears about the pipeline and never imports what runs it; offline/ and port/ sit at the edges.

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

/** The dataplane files that run the pipeline or the process: no stage and no event collector imports them. */
const DATAPLANE_RUNNERS = ['dataplane/engine', 'dataplane/dataplane', 'dataplane/forward', 'dataplane/mgmt-link', 'dataplane/running-policy',
  'dataplane/counters'];

/** [importing folder or file, folders and files it must not import]. Paths relative to appliance/. */
const RULES: readonly [string, readonly string[]][] = [
  ['wire', ['policy', 'ipc', 'dataplane', 'mgmt', 'lab', 'cli', 'paths', 'sd-notify']],
  ['policy', ['dataplane', 'mgmt', 'lab', 'cli']],
  ['ipc', ['dataplane', 'mgmt', 'lab', 'cli']],
  ['dataplane', ['mgmt', 'lab', 'cli']],
  ['mgmt', ['dataplane', 'lab', 'cli']],
  ['lab', ['cli']],
  ['dataplane/verdict', ['dataplane', 'policy', 'ipc', 'wire']],
  ['dataplane/decode', ['dataplane/port', 'dataplane/flow', 'dataplane/detect', 'dataplane/inspect', 'dataplane/respond', 'dataplane/events',
    'dataplane/offline', ...DATAPLANE_RUNNERS]],
  ['dataplane/flow', ['dataplane/detect', 'dataplane/inspect', 'dataplane/respond', 'dataplane/events', 'dataplane/port', 'dataplane/offline',
    ...DATAPLANE_RUNNERS]],
  ['dataplane/detect', ['dataplane/inspect', 'dataplane/respond', 'dataplane/events', 'dataplane/port', 'dataplane/offline', ...DATAPLANE_RUNNERS]],
  ['dataplane/inspect', ['dataplane/detect', 'dataplane/respond', 'dataplane/events', 'dataplane/port', 'dataplane/offline', ...DATAPLANE_RUNNERS]],
  ['dataplane/respond', ['dataplane/flow', 'dataplane/detect', 'dataplane/inspect', 'dataplane/events', 'dataplane/port', 'dataplane/offline',
    ...DATAPLANE_RUNNERS]],
  ['dataplane/events', ['dataplane/detect', 'dataplane/inspect', 'dataplane/respond', 'dataplane/port', 'dataplane/offline', ...DATAPLANE_RUNNERS]],
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
    if (!within(path.replace(/\.(js|ts)$/, ''), from)) continue;
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
