// Imported first by the `gatekeeper` command: for `run` it starts the policy compiler's worker at
// once (policy/load-worker.ts), so the worker starts up while this thread loads the dataplane's
// modules; a restarting dataplane forwards sooner. Must not load anything else, and nothing for any
// other command.

import { prewarmWorker } from '../policy/load-worker';

if (process.argv[2] === 'run') prewarmWorker();
