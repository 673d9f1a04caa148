// `gatekeeper mgmt` (the management service) and `gatekeeper user ...` (user administration on the
// box, which works whether or not the service runs: it edits the state directory directly, through
// the same user rules as the API, services/users.ts). Must not hold user rules of its own.
// The service itself (fastify, TLS, metrics, SIEM export) is loaded only when `mgmt` runs: every
// `gatekeeper run` registers these commands too, and loading it cost a restarting dataplane ~0.5 s
// (of ~2 s on a loaded 2-core box, test/fail-closed-restart.test.ts).

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { DEFAULT_SOCKET_PATH } from '../ipc/messages';
import { hashSecret, passwordProblem } from '../mgmt/auth/passwords';
import { USER_NAME_PATTERN } from '../mgmt/schemas';
import { UserRefused, UserService } from '../mgmt/services/users';
import { roles, type Role } from '../mgmt/auth/roles';
import { StateStore } from '../mgmt/state/store';
import { notifyReady, notifyStopping, startWatchdog } from '../sd-notify';

export const DEFAULT_STATE_DIR = '/var/lib/gatekeeper/mgmt';
export const DEFAULT_LISTEN = '0.0.0.0:8443';

export interface ListenAddress {
  host: string;
  port: number;
}

/** "HOST:PORT" or "[IPv6]:PORT". */
export function parseListen(text: string): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError('expected HOST:PORT, e.g. 0.0.0.0:8443 or [::1]:8443');
  }
  return { host: m[1], port };
}

export function registerMgmtCommands(program: Command): void {
  program
    .command('mgmt')
    .description('Run the management service: web UI, API, metrics and SIEM export; dataplanes connect over --socket.')
    .addOption(new Option('--listen <host:port>', 'address to serve on').argParser(parseListen).default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN))
    .option('--state-dir <dir>', 'policies, users, settings, audit and event logs', DEFAULT_STATE_DIR)
    .option('--socket <path>', 'Unix socket the dataplanes connect to', DEFAULT_SOCKET_PATH)
    .option('--http', 'serve plain HTTP instead of HTTPS (only for a lab on loopback)')
    .option('--initial-policy <file>', 'policy stored as version 1 when no policy is stored yet')
    .action(async (o: { listen: ListenAddress; stateDir: string; socket: string; http?: boolean; initialPolicy?: string }) => {
      await runMgmt(o);
    });

  const user = program.command('user').description('Manage the users of the management service (on the box).');
  const stateDir = () => new Option('--state-dir <dir>', 'management state directory').default(DEFAULT_STATE_DIR);
  const passwordFile = () => new Option('--password-file <file>', 'read the password from this file (else from stdin)');

  user
    .command('add')
    .description('Add a user; the password (at least 12 characters) comes from --password-file or stdin.')
    .argument('<name>')
    .addOption(new Option('--role <role>', 'role of the new user').choices(roles).makeOptionMandatory())
    .addOption(stateDir())
    .addOption(passwordFile())
    .action(async (name: string, o: { role: Role; stateDir: string; passwordFile?: string }) => {
      if (!new RegExp(USER_NAME_PATTERN).test(name)) fail(`invalid user name '${name}': letters, digits, '_', '.', '@', '-' (at most 64)`);
      const { store, users } = openUsers(o.stateDir);
      orFail(() => users.checkNameFree(name)); // before asking for the password
      const passwordHash = await hashSecret(await readNewPassword(o.passwordFile));
      orFail(() => users.add({ name, role: o.role, passwordHash, createdAt: new Date().toISOString(), lastLoginAt: null }));
      cliAudit(store, 'user.add', `${name} (${o.role})`);
      process.stdout.write(`user '${name}' added with role ${o.role}\n`);
    });

  user
    .command('list')
    .description('List the users.')
    .addOption(stateDir())
    .action((o: { stateDir: string }) => {
      for (const u of openUsers(o.stateDir).users.list()) {
        process.stdout.write(`${u.name}\t${u.role}\tcreated ${u.createdAt}\tlast login ${u.lastLoginAt ?? 'never'}\n`);
      }
    });

  user
    .command('remove')
    .description('Remove a user (not the last admin).')
    .argument('<name>')
    .addOption(stateDir())
    .action((name: string, o: { stateDir: string }) => {
      const { store, users } = openUsers(o.stateDir);
      orFail(() => users.remove(name));
      cliAudit(store, 'user.remove', name);
      process.stdout.write(`user '${name}' removed\n`);
    });

  user
    .command('passwd')
    .description("Set a user's password (from --password-file or stdin).")
    .argument('<name>')
    .addOption(stateDir())
    .addOption(passwordFile())
    .action(async (name: string, o: { stateDir: string; passwordFile?: string }) => {
      const { store, users } = openUsers(o.stateDir);
      orFail(() => users.mustExist(name)); // before asking for the password
      const passwordHash = await hashSecret(await readNewPassword(o.passwordFile));
      orFail(() => users.change(name, { passwordHash }));
      cliAudit(store, 'user.passwd', name);
      process.stdout.write(`password of '${name}' changed\n`);
    });
}

async function runMgmt(o: { listen: ListenAddress; stateDir: string; socket: string; http?: boolean; initialPolicy?: string }): Promise<void> {
  const log = pino({ name: 'gatekeeper-mgmt' });
  let initialPolicy: { text: string; file: string } | undefined;
  if (o.initialPolicy) {
    try {
      initialPolicy = { text: readFileSync(o.initialPolicy, 'utf8'), file: o.initialPolicy };
    } catch (err) {
      fail(`cannot read --initial-policy: ${(err as Error).message}`);
    }
  }
  const [{ createDataplaneHub }, { buildServer, packageVersion }, { EventExporter }, { INVENTORY_FILE, openInventory }] = await Promise.all([
    import('../mgmt/dataplanes/hub'), import('../mgmt/server'), import('../mgmt/siem/exporter'), import('../mgmt/inventory/inventory'),
  ]);
  let inventory;
  try {
    inventory = openInventory({ file: join(o.stateDir, INVENTORY_FILE), log });
  } catch (err) {
    log.error({ err }, 'management service failed to start: the asset inventory cannot be opened');
    process.exit(1);
  }
  // The hub feeds the inventory; the server reads it, and forwards its events with the hub's.
  const hub = createDataplaneHub({ socketPath: o.socket, log, inventory });
  const events = new EventExporter({ stateDir: o.stateDir, hostname: hostname(), version: packageVersion, log });
  let app;
  try {
    app = await buildServer({ stateDir: o.stateDir, http: Boolean(o.http), hub, events, log, initialPolicy, inventory });
    await hub.listen();
    await app.listen({ host: o.listen.host, port: o.listen.port });
  } catch (err) {
    log.error({ err }, 'management service failed to start');
    await Promise.allSettled([app?.close(), hub.close(), events.close()]);
    inventory.close();
    process.exit(1);
  }
  if (o.http && !['127.0.0.1', '::1', 'localhost'].includes(o.listen.host)) {
    log.warn({ listen: o.listen }, 'serving plain HTTP on a non-loopback address: passwords and sessions cross the network in clear');
  }
  notifyReady(`serving on ${o.listen.host}:${o.listen.port}, dataplane socket ${o.socket}`);
  const stopWatchdog = startWatchdog(() => true); // a running event loop is the health signal
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    notifyStopping();
    stopWatchdog();
    log.info({ signal }, 'management service stopping; dataplanes keep forwarding');
    await Promise.allSettled([app.close(), hub.close()]);
    // Last: what the hub took until it closed is written now, and its events still go out.
    inventory.close();
    await events.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** The state directory without crash recovery (the service may be running and writing to it), and the user rules over it. */
function openUsers(dir: string): { store: StateStore; users: UserService } {
  try {
    const store = StateStore.open(dir, { warn: (obj, msg) => process.stderr.write(`warning: ${msg} ${JSON.stringify(obj)}\n`) },
      { recover: false });
    return { store, users: new UserService(store) };
  } catch (err) {
    return fail(`cannot open the state directory ${dir}: ${(err as Error).message}`);
  }
}

/** Runs a user service call; a refusal by a user rule ends the command with its reason. */
function orFail<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (err instanceof UserRefused) fail(err.reason);
    throw err;
  }
}

function cliAudit(store: StateStore, action: string, detail: string): void {
  const user = process.env.SUDO_USER ?? process.env.USER ?? 'root';
  store.appendAudit({ time: new Date().toISOString(), user: `${user} (command line)`, from: 'local', action, detail });
}

/** A new password from a file or stdin (first line, without its line ending); refused when too short. */
async function readNewPassword(file: string | undefined): Promise<string> {
  let text: string;
  try {
    text = file ? readFileSync(file, 'utf8') : await readStdin();
  } catch (err) {
    return fail(`cannot read the password: ${(err as Error).message}`);
  }
  const password = text.split(/\r?\n/)[0];
  const problem = passwordProblem(password);
  if (problem) fail(problem);
  return password;
}

/** All of stdin; on a terminal one line, typed without echo. */
async function readStdin(): Promise<string> {
  const tty = process.stdin.isTTY;
  if (tty) {
    process.stderr.write('password: ');
    spawnSync('stty', ['-echo'], { stdio: 'inherit' });
  }
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of process.stdin) {
      chunks.push(chunk as Buffer);
      if (tty && (chunk as Buffer).includes(0x0a)) break;
    }
  } finally {
    if (tty) {
      spawnSync('stty', ['echo'], { stdio: 'inherit' });
      process.stderr.write('\n');
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

function fail(message: string): never {
  process.stderr.write(`gatekeeper: ${message}\n`);
  process.exit(2);
}
