// Counts the leaf assertions of a TAP stream: prints "N passed, N failed, N skipped".
// A subtest's own summary line is not counted (its assertions are); a file that crashed or broke
// its plan without a failing assertion counts as one failure. Exits 1 on any failure or no test.
const { readFileSync } = require('node:fs');
const { Parser } = require('tap-parser');

const counts = { pass: 0, fail: 0, skip: 0 };

function attach(parser) {
  let childPending = false;
  parser.on('child', (child) => {
    childPending = true;
    attach(child);
  });
  parser.on('assert', (a) => {
    if (childPending) {
      childPending = false; // the summary of the subtest just parsed
      return;
    }
    if (a.skip || a.todo) counts.skip++;
    else if (a.ok) counts.pass++;
    else counts.fail++;
  });
}

const root = new Parser((results) => {
  if (!results.ok && counts.fail === 0) counts.fail = 1;
  console.log(`${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped`);
  process.exit(counts.fail > 0 || counts.pass === 0 ? 1 : 0);
});
attach(root);
root.end(readFileSync(process.argv[2], 'utf8'));
