// Decoder conformance against tshark: every pcap in ../shared/conformance/pcaps must decode to its
// reference tuples with 0 mismatches (compare.py), and every `invalid` line must name a known reason.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { decodeErrorNames } from '../appliance/dataplane/decode/errors';
import { pcapTuples } from '../appliance/dataplane/offline/tuples';

const conformanceDir = path.resolve(__dirname, '../../shared/conformance');
const pcapDir = path.join(conformanceDir, 'pcaps');
const compareScript = path.join(conformanceDir, 'compare.py');

const pcaps = fs.existsSync(pcapDir) ? fs.readdirSync(pcapDir).filter((f) => f.endsWith('.pcap')).sort() : [];

t.test('conformance material is present', async (t) => {
  t.ok(fs.existsSync(pcapDir), `conformance pcaps expected at ${pcapDir} (../shared from the project root)`);
  t.ok(fs.existsSync(compareScript), `compare.py expected at ${compareScript}`);
  t.ok(pcaps.length > 0, `no *.pcap in ${pcapDir}`);
});

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatekeeper-conformance-'));
t.teardown(() => fs.rmSync(workDir, { recursive: true, force: true }));

for (const file of pcaps) {
  t.test(file, async (t) => {
    const name = file.slice(0, -'.pcap'.length);
    const reference = path.join(pcapDir, `${name}.tuples.tsv`);
    t.ok(fs.existsSync(reference), `reference ${reference} exists`);

    const lines: string[] = [];
    for await (const line of pcapTuples(path.join(pcapDir, file))) lines.push(line);
    const ours = path.join(workDir, `${name}.tsv`);
    fs.writeFileSync(ours, lines.join('\n') + '\n');

    const compare = spawnSync('python3', [compareScript, reference, ours], { encoding: 'utf8' });
    const summary = compare.stdout.split('\n')[0] ?? '';
    t.comment(`${name}: ${summary}`);
    t.equal(compare.status, 0, 'compare.py exits 0', { output: compare.stdout + compare.stderr });
    t.match(summary, /mismatched 0$/, 'no mismatches');

    for (const line of lines) {
      const cols = line.split('\t');
      if (cols[1] !== 'invalid') continue;
      t.ok(cols[2] !== 'none' && decodeErrorNames.includes(cols[2]), `frame ${cols[0]}: reason ${cols[2]} is a named DecodeError`);
    }
  });
}
