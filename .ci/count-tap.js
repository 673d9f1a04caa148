// Counts the leaf assertions of a TAP stream: prints "N passed, N failed, N skipped".
// Exits 1 when the stream has a failure or no assertion at all.
const { readFileSync } = require('node:fs');
const { Parser } = require('tap-parser');

const counts = { pass: 0, fail: 0, skip: 0 };
const parser = new Parser({ flat: true }, (results) => {
  if (!results.ok && counts.fail === 0) counts.fail = 1; // a bailout or a broken plan counts as a failure
  console.log(`${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped`);
  process.exit(counts.fail > 0 || counts.pass === 0 ? 1 : 0);
});
parser.on('assert', (a) => {
  if (a.skip || a.todo) counts.skip++;
  else if (a.ok) counts.pass++;
  else counts.fail++;
});
parser.end(readFileSync(process.argv[2], 'utf8'));
