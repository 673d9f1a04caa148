// Industrial-protocol conformance against tshark: every capture in ../shared/conformance/ot must give
// its reference messages (.ot.tsv, from tshark_ot.py), compared frame by frame and in order within a
// frame as compare_ot.py does; compare_ot.py itself runs too when python3 is there.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pcapOtMessages } from '../appliance/dataplane/offline/ot-messages';
import { cliPath } from '../appliance/paths';

const conformanceDir = path.resolve(__dirname, '../../shared/conformance');
const otDir = path.join(conformanceDir, 'ot');
const compareScript = path.join(conformanceDir, 'compare_ot.py');

const pcaps = fs.existsSync(otDir) ? fs.readdirSync(otDir).filter((f) => f.endsWith('.pcap')).sort() : [];
const python = spawnSync('python3', ['--version']).status === 0;

/** Lines by frame, as compare_ot.py reads them (comments and blank lines skipped). */
function byFrame(lines: string[]): Map<string, string[][]> {
  const out = new Map<string, string[][]>();
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const cols = line.split('\t');
    const list = out.get(cols[0]) ?? [];
    list.push(cols.slice(1));
    out.set(cols[0], list);
  }
  return out;
}

/** compare_ot.py's differences, in the same words. */
function differences(reference: string[], ours: string[]): string[] {
  const want = byFrame(reference);
  const have = byFrame(ours);
  const frames = [...new Set([...want.keys(), ...have.keys()])].sort((a, b) => Number(a) - Number(b));
  const bad: string[] = [];
  for (const frame of frames) {
    const w = want.get(frame) ?? [];
    const h = have.get(frame) ?? [];
    for (let i = 0; i < Math.max(w.length, h.length); i++) {
      if (w[i] !== undefined && h[i] !== undefined && w[i].join('\t') === h[i].join('\t')) continue;
      if (w[i] === undefined) bad.push(`frame ${frame}: extra ${h[i].join(' ')}`);
      else if (h[i] === undefined) bad.push(`frame ${frame}: missing ${w[i].join(' ')}`);
      else bad.push(`frame ${frame}: want ${w[i].join(' ')} | got ${h[i].join(' ')}`);
    }
  }
  return bad;
}

t.test('conformance material is present', async (t) => {
  t.ok(fs.existsSync(otDir), `OT captures expected at ${otDir} (../shared from the project root)`);
  t.ok(pcaps.length > 0, `no *.pcap in ${otDir}`);
});

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatekeeper-ot-'));
t.teardown(() => fs.rmSync(workDir, { recursive: true, force: true }));

for (const file of pcaps) {
  t.test(file, async (t) => {
    const name = file.slice(0, -'.pcap'.length);
    const reference = path.join(otDir, `${name}.ot.tsv`);
    t.ok(fs.existsSync(reference), `reference ${reference} exists`);
    const lines: string[] = [];
    for await (const line of pcapOtMessages(path.join(otDir, file))) lines.push(line);
    const want = fs.readFileSync(reference, 'utf8').split('\n');
    t.ok(lines.length > 0, 'the capture has messages');
    t.same(differences(want, lines), [], 'no missing, extra or different messages');

    // The command a user runs prints the same lines.
    const cli = spawnSync(process.execPath, [cliPath, 'replay', '--ot', path.join(otDir, file)], { encoding: 'utf8' });
    t.equal(cli.status, 0, '`gatekeeper replay --ot` exits 0');
    t.same(cli.stdout.split('\n').filter(Boolean), lines, '`gatekeeper replay --ot` prints the same messages');

    if (python && fs.existsSync(compareScript)) {
      const ours = path.join(workDir, `${name}.tsv`);
      fs.writeFileSync(ours, cli.stdout);
      const compare = spawnSync('python3', [compareScript, reference, ours], { encoding: 'utf8' });
      t.comment(`${name}: ${compare.stdout.split('\n')[0] ?? ''}`);
      t.equal(compare.status, 0, 'compare_ot.py exits 0', { output: compare.stdout + compare.stderr });
    }
  });
}
