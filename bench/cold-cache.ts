// Cold-cache probe: does this box keep a spinning thread's caches? One fixed piece of JS work is
// timed right after itself, after a spin of 0.1 to 10 ms on the same thread (the CPU never idles),
// and after a 10 ms spin during which the work ran every 50, 200 or 1000 µs. On a machine whose
// host leaves a busy vCPU alone every row is near the first; where it is not (the 2-core build VM:
// about 7x after 5 ms), a frame after a quiet gap runs cold even with busy polling, which is why
// the ports keep their path warm while they poll (port.ts WARM_MICROS). Prints ratios against the
// first row of the same run. Must not need root or a lab.
//
//   npm run bench:cold [-- --json]

/** About 20k objects (a few MB): the size of the dataplane's hot working set, give or take. */
const OBJECTS = 20_000;
const SAMPLES = 200;
const GAPS_US = [0, 100, 1000, 5000, 10_000];
const TOUCH_US = [50, 200, 1000];
const TOUCHED_GAP_US = 10_000;

interface Row {
  what: string;
  p50Us: number;
  p90Us: number;
  ratio: number;
}

const data = Array.from({ length: OBJECTS }, (_, i) => ({ a: i, b: String(i), c: [i, i + 1] }));

function work(): number {
  let sum = 0;
  for (let i = 0; i < data.length; i += 7) {
    const d = data[i];
    sum += d.a + d.b.length + d.c[1];
  }
  return sum;
}

const now = (): number => Number(process.hrtime.bigint());

/** Spins for `gapUs` (running the work every `touchUs` if > 0), then times one run of the work. */
function sample(gapUs: number, touchUs: number): number[] {
  const times: number[] = [];
  let sink = 0;
  for (let k = 0; k < SAMPLES; k++) {
    const end = now() + gapUs * 1000;
    let next = now() + touchUs * 1000;
    while (now() < end) {
      if (touchUs > 0 && now() >= next) {
        sink += work();
        next = now() + touchUs * 1000;
      }
    }
    const started = now();
    sink += work();
    times.push((now() - started) / 1000);
  }
  if (sink === -1) process.stdout.write(''); // keeps the work from being optimized away
  return times.sort((a, b) => a - b);
}

function main(): void {
  for (let i = 0; i < 20_000; i++) work(); // optimized before anything is timed
  const rows: Row[] = [];
  const add = (what: string, times: number[]) => {
    const p50 = times[Math.floor(times.length / 2)];
    rows.push({ what, p50Us: +p50.toFixed(1), p90Us: +times[Math.floor(times.length * 0.9)].toFixed(1),
      ratio: rows.length === 0 ? 1 : +(p50 / rows[0].p50Us).toFixed(2) });
  };
  for (const gap of GAPS_US) add(`after a ${gap} µs spin`, sample(gap, 0));
  for (const touch of TOUCH_US) add(`after a ${TOUCHED_GAP_US} µs spin, touched every ${touch} µs`, sample(TOUCHED_GAP_US, touch));
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ coldCache: { rows } }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`the same work (${OBJECTS} objects, ${SAMPLES} samples each), p50 and p90 µs, ratio to the first row:\n`);
  for (const r of rows) process.stdout.write(`  ${r.what.padEnd(48)} ${String(r.p50Us).padStart(7)} ${String(r.p90Us).padStart(7)}  ${r.ratio.toFixed(2)}x\n`);
}

main();
