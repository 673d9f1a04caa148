// The shipped systemd files checked with systemd's own tools: `systemd-analyze verify` (and broken
// copies that it must reject), `systemd-analyze security` scores and capability sets, sysusers.d and
// tmpfiles.d applied to a scratch root; the dataplane, as image/install-system.sh installs it, run in
// a lab with exactly the user and capabilities its unit gives it; and, since systemd is not PID 1 on
// the test machines, both units installed by image/install-system.sh and run by a systemd booted in
// namespaces of its own (there, management's one capability, CAP_NET_RAW, opens the raw ICMP
// sockets of the liveness probes under the unit's hardening). A service user never runs the checkout, which may be where only root can
// read it (root's home is 0700 on Debian), only an installed copy.

import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, labAddresses as A, sleep } from '../appliance/lab/lab';
import { cliPath, dataplaneNodeFlags, projectRoot } from '../appliance/paths';
import type { DataplaneStats } from '../appliance/ipc/stats';

const unitDir = join(projectRoot, 'systemd');
const units = {
  mgmt: 'gatekeeper-mgmt.service',
  dataplane: 'gatekeeper-dataplane@.service',
} as const;
/** Where image/install-system.sh puts the project; the units name it. */
const installRoot = '/opt/gatekeeper';

const analyzeMissing = spawnSync('systemd-analyze', ['--version']).status === 0 ? false : 'needs systemd-analyze';

/** A scratch copy of the units, with an instance of the template, removed after the test. */
function unitCopy(t: Test): { dir: string; mgmt: string; dataplane: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gk-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(unitDir, units.mgmt), join(dir, units.mgmt));
  cpSync(join(unitDir, units.dataplane), join(dir, units.dataplane));
  symlinkSync(units.dataplane, join(dir, 'gatekeeper-dataplane@plc1.service'));
  return { dir, mgmt: join(dir, units.mgmt), dataplane: join(dir, 'gatekeeper-dataplane@plc1.service') };
}

/** verify exits 0 on settings it ignores (unknown keys, bad values), so any output is a failure too. */
function verify(file: string): { ok: boolean; output: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', cwd: tmpdir() });
  const output = `${r.stdout}${r.stderr}`.trim();
  return { ok: r.status === 0 && output === '', output };
}

/** The unit's [Service] settings, continuation lines joined, in file order. */
function settings(file: string): [string, string][] {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  return text.split('\n')
    .filter((line) => /^[A-Za-z]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim()]);
}

/** CapabilityBoundingSet= (or AmbientCapabilities=) as systemd combines its lines: an empty assignment resets the list. */
function boundingSet(file: string, setting: 'CapabilityBoundingSet' | 'AmbientCapabilities' = 'CapabilityBoundingSet'): string[] {
  let caps: string[] = [];
  for (const [key, value] of settings(file)) {
    if (key !== setting) continue;
    caps = value === '' ? [] : [...caps, ...value.split(/\s+/)];
  }
  return [...new Set(caps)].sort();
}

function execStart(file: string): string[] {
  const line = settings(file).find(([key]) => key === 'ExecStart');
  if (!line) throw new Error(`${file} has no ExecStart`);
  return line[1].split(/\s+/);
}

t.test('systemd-analyze verify', { skip: analyzeMissing }, async (t) => {
  const copy = unitCopy(t);
  for (const file of [copy.mgmt, copy.dataplane]) {
    const r = verify(file);
    t.ok(r.ok, `${file.split('/').pop()} verifies cleanly${r.output ? `:\n${r.output}` : ''}`);
  }

  t.test('broken copies are rejected', async (t) => {
    const breakages: [string, (text: string) => string][] = [
      ['misspelled key', (s) => s.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes')],
      ['bad value', (s) => s.replace('ProtectSystem=strict', 'ProtectSystem=stirct')],
      ['missing executable', (s) => s.replace('ExecStart=/usr/bin/node', 'ExecStart=/usr/bin/no-such-node')],
      ['relative executable', (s) => s.replace('ExecStart=/usr/bin/node', 'ExecStart=usr/bin/node')],
      ['misspelled section', (s) => s.replace('[Service]', '[Servic]')],
    ];
    for (const [what, breakIt] of breakages) {
      const broken = unitCopy(t);
      const text = readFileSync(broken.dataplane, 'utf8');
      const changed = breakIt(text);
      t.not(changed, text, `${what}: the copy differs`);
      rmSync(join(broken.dir, units.dataplane));
      writeFileSync(join(broken.dir, units.dataplane), changed);
      const r = verify(broken.dataplane);
      t.notOk(r.ok, `${what}: ${r.output.split('\n')[0]}`);
    }
  });
});

t.test('the CLI run as a command (/usr/local/bin/gatekeeper) starts node with the dataplane\'s flags', async (t) => {
  const shebang = readFileSync(cliPath, 'utf8').split('\n')[0];
  t.equal(shebang, `#!/usr/bin/env -S node ${dataplaneNodeFlags.join(' ')}`);
  // As the kernel runs it (dist/ is not executable before image/install-system.sh): env -S splits the line.
  const [interpreter, ...args] = shebang.slice(2).split(' ');
  const r = spawnSync(interpreter, [args[0], args.slice(1).join(' '), cliPath, '--help'], { encoding: 'utf8' });
  t.equal(r.status, 0, `it runs: ${r.stderr}`);
});

t.test('the command lines match the CLI', async (t) => {
  for (const [name, file] of Object.entries(units)) {
    const [node, ...rest] = execStart(join(unitDir, file));
    t.equal(node, '/usr/bin/node', `${name}: node at /usr/bin/node`);
    // The dataplane runs with its Node.js flags (paths.ts says why), management with none.
    const flags = name === 'dataplane' ? dataplaneNodeFlags : [];
    t.same(rest.slice(0, flags.length), flags, `${name}: node flags ${flags.join(' ') || '(none)'}`);
    const argv = [node, ...rest.slice(flags.length)];
    t.ok(argv[1].startsWith(`${installRoot}/`), `${name}: the CLI under ${installRoot}`);
    const built = join(projectRoot, argv[1].slice(installRoot.length + 1));
    t.equal(built, cliPath, `${name}: ${argv[1]} is the built CLI`);
    const command = argv[2];
    const help = spawnSync(process.execPath, [cliPath, command, '--help'], { encoding: 'utf8' });
    // commander answers an unknown command's --help with the general help: check whose help it is.
    t.match(help.stdout, new RegExp(`^Usage: gatekeeper ${command} `), `${name}: \`gatekeeper ${command}\` exists`);
    for (const option of argv.filter((a) => a.startsWith('--'))) {
      t.match(help.stdout, new RegExp(`${option}\\b`), `${name}: \`gatekeeper ${command}\` takes ${option}`);
    }
  }
});

t.test('systemd-analyze security', { skip: analyzeMissing }, async (t) => {
  const copy = unitCopy(t);
  const security = (file: string) => {
    const text = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', file], { encoding: 'utf8', cwd: tmpdir() });
    const json = spawnSync('systemd-analyze', ['security', '--offline=true', '--json=short', file], { encoding: 'utf8', cwd: tmpdir() });
    const score = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(text.stdout);
    const checks = JSON.parse(json.stdout) as { name: string; set: boolean; exposure: string | null }[];
    return { score: score ? Number(score[1]) : NaN, rating: score?.[2], checks };
  };

  const mgmt = security(copy.mgmt);
  const dataplane = security(copy.dataplane);
  t.comment(`exposure: ${units.mgmt} ${mgmt.score} ${mgmt.rating}, ${units.dataplane} ${dataplane.score} ${dataplane.rating} (0 best, 10 worst)`);
  t.ok(mgmt.score <= 2, `management exposure ${mgmt.score} <= 2`);
  t.ok(dataplane.score <= 3, `dataplane exposure ${dataplane.score} <= 3`);

  t.same(boundingSet(join(unitDir, units.mgmt)), ['CAP_NET_RAW'], 'management: CAP_NET_RAW only (liveness probes)');
  t.same(boundingSet(join(unitDir, units.mgmt), 'AmbientCapabilities'), ['CAP_NET_RAW'], 'management: and that one is what it is given');
  t.same(boundingSet(join(unitDir, units.dataplane)), ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_NET_RAW'],
    'dataplane: CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF (the kernel fast path) only');
  const capabilityChecks = (checks: typeof mgmt.checks) =>
    checks.filter((c) => c.name.startsWith('CapabilityBoundingSet=')).filter((c) => !c.set).map((c) => c.name).sort();
  t.same(capabilityChecks(mgmt.checks), ['CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)'],
    'systemd agrees: management keeps one networking capability');
  // Everything systemd-analyze finds open in management's unit, each for a reason the unit states:
  // a new entry here is a widening, and fails until it is argued for in the unit and added.
  const open = mgmt.checks.filter((c) => c.set === false).map((c) => c.name).sort();
  t.same(open, [
    'AmbientCapabilities=', // CAP_NET_RAW, for the liveness probes
    'CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)', // the same
    'DeviceAllow=', 'IPAddressDeny=', 'MemoryDenyWriteExecute=', 'NotifyAccess=', 'PrivateNetwork=',
    'PrivateUsers=', // CAP_NET_RAW must count in the host's network namespace
    'ProcSubset=', 'RestrictAddressFamilies=~AF_(INET|INET6)', 'RestrictAddressFamilies=~AF_NETLINK',
    'RestrictAddressFamilies=~AF_UNIX', 'RootDirectory=/RootImage=', 'SystemCallFilter=~@resources',
  ], 'management: nothing open beyond the argued list');
  const value = (key: string) => settings(join(unitDir, units.mgmt)).filter(([k]) => k === key).map(([, v]) => v);
  t.same(value('RestrictAddressFamilies'), ['AF_UNIX AF_INET AF_INET6 AF_NETLINK'], 'management: no AF_PACKET (no frame capture with CAP_NET_RAW)');
  t.same(value('SystemCallFilter'), ['@system-service', '~@privileged'], 'management: the same system call filter');
  t.same(capabilityChecks(dataplane.checks), [
    'CapabilityBoundingSet=~CAP_BPF', 'CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)', 'CapabilityBoundingSet=~CAP_NET_ADMIN',
  ], 'systemd agrees: the dataplane keeps only the networking capabilities and CAP_BPF');

  for (const [name, result] of [['management', mgmt], ['dataplane', dataplane]] as const) {
    const passed = (check: string) => result.checks.find((c) => c.name === check)?.set;
    for (const check of ['NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=', 'PrivateTmp=', 'PrivateDevices=',
      'User=/DynamicUser=', 'SystemCallArchitectures=', 'RestrictRealtime=']) {
      t.equal(passed(check), true, `${name}: ${check}`);
    }
    t.equal(passed('MemoryDenyWriteExecute='), false, `${name}: no MemoryDenyWriteExecute (V8 JIT)`);
  }
  t.equal(mgmt.checks.find((c) => c.name === 'SystemCallFilter=~@privileged')?.set, true, 'management: SystemCallFilter=~@privileged');
  // The dataplane's filter is ~@privileged but for bpf(2), the kernel fast path's one call: systemd
  // counts the group as open then.
  t.same(settings(join(unitDir, units.dataplane)).filter(([k]) => k === 'SystemCallFilter').map(([, v]) => v),
    ['@system-service', '~@privileged', 'bpf'], 'dataplane: @system-service without @privileged, but for bpf');
});

t.test('sysusers.d and tmpfiles.d applied to a scratch root', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gk-root-'));
  mkdirSync(join(root, 'etc'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const users = spawnSync('systemd-sysusers', [`--root=${root}`, join(unitDir, 'gatekeeper.sysusers')], { encoding: 'utf8' });
  t.equal(users.status, 0, `systemd-sysusers accepts the file${users.status ? `: ${users.stderr}` : ''}`);
  const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
  const uid = (user: string) => Number(new RegExp(`^${user}:x:(\\d+):`, 'm').exec(passwd)?.[1]);
  t.ok(uid('gatekeeper') > 0 && uid('gatekeeper-dataplane') > 0, 'both users created, neither root');
  for (const [name, file] of Object.entries(units)) {
    const user = settings(join(unitDir, file)).find(([key]) => key === 'User')?.[1] ?? '';
    t.ok(uid(user) > 0, `${name} runs as ${user}, a user sysusers creates`);
  }
  const group = readFileSync(join(root, 'etc/group'), 'utf8');
  t.match(group, /^gatekeeper:x:\d+:/m, 'the gatekeeper group for the management socket exists');

  const dirs = spawnSync('systemd-tmpfiles', [`--root=${root}`, '--create', join(unitDir, 'gatekeeper.tmpfiles')], { encoding: 'utf8' });
  t.equal(dirs.status, 0, `systemd-tmpfiles accepts the file${dirs.status ? `: ${dirs.stderr}` : ''}`);
  const run = spawnSync('stat', ['-c', '%u %a', join(root, 'run/gatekeeper')], { encoding: 'utf8' });
  t.equal(run.stdout.trim(), `${uid('gatekeeper')} 750`, '/run/gatekeeper owned by gatekeeper, 0750');
});

/** capabilities(7) numbers of the capabilities a unit may name here. */
const capabilityNumbers: Record<string, number> = { CAP_NET_ADMIN: 12, CAP_NET_RAW: 13, CAP_BPF: 39 };

/** `setpriv` arguments that give a process what the dataplane unit gives it (user, capabilities, no new privileges). */
function unitCredentials(caps: string[], uid: number): string[] {
  const names = caps.map((c) => c.replace(/^CAP_/, '').toLowerCase());
  const list = ['-all', ...names.map((n) => `+${n}`)].join(',');
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--no-new-privs',
    `--inh-caps=${list}`, `--ambient-caps=${list}`, `--bounding-set=${list}`];
}

/**
 * The CLI the dataplane unit runs, in a copy laid out by `DESTDIR=... image/install-system.sh` under
 * a directory every user may enter, as / is: the service user can read it wherever the checkout is.
 */
function stagedInstall(t: Test): string {
  const destdir = mkdtempSync(join(tmpdir(), 'gk-install-'));
  t.teardown(() => rmSync(destdir, { recursive: true, force: true }));
  chmodSync(destdir, 0o755);
  const r = spawnSync('bash', [join(projectRoot, 'image/install-system.sh')],
    { encoding: 'utf8', env: { ...process.env, DESTDIR: destdir } });
  t.equal(r.status, 0, `image/install-system.sh staged the application${r.status ? `:\n${r.stdout}${r.stderr}` : ''}`);
  return join(destdir, execStart(join(unitDir, units.dataplane))[1 + dataplaneNodeFlags.length]);
}

/** The policy both lab tests run: the client may ping the server, nothing else. */
const PING_POLICY = `version: 1
mode: enforce
default: deny
rules:
  - name: client-pings-server
    from: ${A.client4}
    to: ${A.server4}
    service: ping
    action: allow
`;

const labMissing = process.getuid?.() !== 0 ? 'needs root'
  : ['setpriv', 'ip', 'ethtool', 'ping'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

t.test('the dataplane forwards as an unprivileged user with only the unit\'s capabilities', { skip: labMissing }, async (t) => {
  const uid = 61_000 + Math.floor(Math.random() * 1000);
  const caps = boundingSet(join(unitDir, units.dataplane));
  const installedCli = stagedInstall(t);
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  // Like the unit's state directory: owned by the service user, under a directory it may only traverse.
  chmodSync(lab.dir, 0o711);
  const state = join(lab.dir, 'state');
  mkdirSync(state);
  chownSync(state, uid, uid);
  const policy = join(state, 'policy.yaml');
  writeFileSync(policy, PING_POLICY);
  chownSync(policy, uid, uid);

  // A clean environment, as systemd gives: tap's NODE_OPTIONS would make node write where this user may not.
  const start = (capabilities: string[], statsFile: string) => lab.spawn(lab.appliance, [
    'env', '-i', `PATH=${process.env.PATH}`, ...unitCredentials(capabilities, uid), process.execPath, ...dataplaneNodeFlags, installedCli, 'run', '--name', 'caps',
    '--inside', lab.insidePort, '--outside', lab.outsidePort, '--policy', policy, '--stats-file', statsFile]);

  t.test('without CAP_NET_ADMIN it refuses to start', async (t) => {
    const child = start(caps.filter((c) => c !== 'CAP_NET_ADMIN'), join(state, 'none.json'));
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    t.not(code, 0, `exit ${code}`);
    t.match(stderr, /Operation not permitted|EPERM/, `because a network change was refused: ${stderr.trim().split('\n').pop()}`);
  });

  t.test(`with ${caps.join(' ')} it forwards`, async (t) => {
    const statsFile = join(state, 'stats.json');
    const child = start(caps, statsFile);
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
    for (let i = 0; i < 150 && !existsSync(statsFile) && child.exitCode === null; i++) await sleep(100);
    t.ok(existsSync(statsFile), `started${existsSync(statsFile) ? '' : `: ${stderr}`}`);

    // The node process under `ip netns exec` and setpriv (both exec in place): its credentials.
    const pid = spawnSync('ip', ['netns', 'pids', lab.appliance], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
      .find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(installedCli));
    t.ok(pid, 'dataplane process found');
    const status = pid ? readFileSync(`/proc/${pid}/status`, 'utf8') : '';
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
    t.equal(field('Uid').split(/\s+/)[0], String(uid), 'runs as the unprivileged user');
    const expected = caps.reduce((mask, c) => mask | (1n << BigInt(capabilityNumbers[c])), 0n);
    t.equal(BigInt(`0x${field('CapEff')}`), expected, `effective capabilities are ${caps.join(' ')} only`);
    t.equal(BigInt(`0x${field('CapBnd')}`), expected, 'and so is the bounding set');
    t.equal(field('NoNewPrivs'), '1', 'no new privileges');
    const stats = JSON.parse(readFileSync(statsFile, 'utf8')) as DataplaneStats;
    t.equal(stats.fastPath?.state, 'on', `the kernel fast path is on with these capabilities ${stats.fastPath?.reason ?? ''}`);

    const ipv6 = lab.exec(lab.appliance, ['cat', `/proc/sys/net/ipv6/conf/${lab.insidePort}/disable_ipv6`]).stdout.trim();
    t.equal(ipv6, '1', 'it silenced IPv6 on its port (a sysctl write allowed by CAP_NET_ADMIN)');
    const ping = lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]);
    t.equal(ping.status, 0, `the client pings the server through it${ping.status ? `: ${ping.stdout}${ping.stderr}` : ''}`);
    const denied = lab.exec(lab.server, ['ping', '-c', '1', '-W', '1', A.client4]);
    t.not(denied.status, 0, 'and the policy still denies the other direction');
  });
});

// ---------------------------------------------------------------------------------------------
// The units under a real systemd: a systemd of its own (PID 1 of new PID, mount, cgroup and UTS
// namespaces) inside a lab's appliance namespace, with /etc, /var and /opt as overlays of the real
// ones, so image/install-system.sh runs for real and the host is left untouched.

interface BootedSystemd {
  /** Run a command in systemd's mount namespace (systemctl, journalctl, ...). */
  run(argv: string[], input?: string, timeoutMs?: number): { status: number | null; stdout: string; stderr: string };
  installLog(): string;
}

const bootMissing = process.getuid?.() !== 0 ? 'needs root'
  : !existsSync('/lib/systemd/systemd') ? 'needs /lib/systemd/systemd'
    : ['unshare', 'nsenter', 'ip', 'ethtool', 'ping'].find((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);

/** Cgroup hierarchies systemd manages: the named systemd one and the unified one (hybrid), or cgroup2 alone. */
function cgroupRoots(): string[] {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['/sys/fs/cgroup'];
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((dir) => existsSync(dir));
}

/** Remove a cgroup subtree, deepest first (each must be empty of processes). */
function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  spawnSync('find', [dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
}

const INIT_SCRIPT = `set -eu
scratch=$1 project=$2 target=$3
for dir in etc var opt; do
  mkdir -p "$scratch/$dir-upper" "$scratch/$dir-work"
  mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$scratch/$dir-upper,workdir=$scratch/$dir-work" "/$dir"
done
mount -t tmpfs tmpfs /run
mount -t proc proc /proc
(cd "$project" && bash image/install-system.sh) > "$scratch/install.log" 2>&1
# Test plumbing: a boot target that starts nothing, nothing that would reach beyond the namespaces.
printf '[Unit]\\nDescription=gatekeeper test boot\\n' > "/etc/systemd/system/$target"
for unit in systemd-udevd.service systemd-udev-trigger.service systemd-sysctl.service systemd-modules-load.service \\
    systemd-binfmt.service systemd-remount-fs.service network-online.target; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
# systemd's private /tmp directories go to a tmpfs that disappears with the namespace.
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
exec env -i container=gatekeeper-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \\
  /lib/systemd/systemd --system --unit="$target" --log-target=journal --log-level=notice --show-status=no
`;

async function bootSystemd(t: Test, netns: string): Promise<BootedSystemd> {
  const id = Math.random().toString(16).slice(2, 8);
  const scratch = mkdtempSync(join(tmpdir(), `gk-boot-${id}-`));
  const cgroups = cgroupRoots().map((root) => join(root, `gk-boot-${id}`));
  const target = `gk-boot-${id}.target`;
  writeFileSync(join(scratch, 'init.sh'), INIT_SCRIPT);
  // The launcher joins cgroups of its own first (before `ip netns exec` remounts /sys), so the new
  // cgroup namespace, and everything systemd creates, is rooted there.
  writeFileSync(join(scratch, 'launch.sh'), `set -eu
for cg in ${cgroups.join(' ')}; do mkdir -p "$cg"; echo $$ > "$cg/cgroup.procs"; done
exec ip netns exec ${netns} unshare --pid --fork --mount --cgroup --uts --ipc --propagation private \\
  sh "${scratch}/init.sh" "${scratch}" "${projectRoot}" "${target}"
`);
  const child = spawn('sh', [join(scratch, 'launch.sh')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let bootOutput = '';
  child.stdout?.on('data', (b: Buffer) => { bootOutput += b.toString(); });
  child.stderr?.on('data', (b: Buffer) => { bootOutput += b.toString(); });
  let systemdPid = 0;
  t.teardown(async () => {
    // Killing PID 1 of the namespace kills everything in it; the mounts go with it.
    if (systemdPid) spawnSync('kill', ['-9', String(systemdPid)]);
    child.kill('SIGKILL');
    for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
    for (let i = 0; i < 100 && cgroups.some((cg) => existsSync(cg)); i++) {
      cgroups.forEach(removeCgroup);
      if (cgroups.some((cg) => existsSync(cg))) await sleep(100);
    }
    for (let i = 0; i < 50; i++) {
      try {
        rmSync(scratch, { recursive: true, force: true });
        break;
      } catch {
        await sleep(100); // the overlays are unmounted once the last process of the namespace is gone
      }
    }
  });

  const run: BootedSystemd['run'] = (argv, input, timeoutMs = 60_000) => {
    const r = spawnSync('nsenter', ['-t', String(systemdPid), '-m', '-p', '--', ...argv],
      { encoding: 'utf8', input, timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline && child.exitCode === null) {
    const pid = spawnSync('pgrep', ['-f', `^/lib/systemd/systemd --system --unit=${target}`], { encoding: 'utf8' }).stdout.trim();
    if (pid) {
      systemdPid = Number(pid);
      if (run(['systemctl', 'show', '-p', 'Version', '--value']).status === 0) break;
    }
    await sleep(200);
  }
  const installLog = () => (existsSync(join(scratch, 'install.log')) ? readFileSync(join(scratch, 'install.log'), 'utf8') : '');
  if (!systemdPid || child.exitCode !== null) {
    throw new Error(`systemd did not come up (exit ${child.exitCode}):\n${bootOutput}\n${installLog()}`);
  }
  return { run, installLog };
}

t.test('the units under a real systemd', { skip: bootMissing }, async (t) => {
  const lab = new Lab();
  t.teardown(() => lab.destroy());
  lab.create();
  const systemd = await bootSystemd(t, lab.appliance);
  const run = systemd.run;
  const show = (unit: string, property: string) => run(['systemctl', 'show', '-p', property, '--value', unit]).stdout.trim();
  const journal = (unit: string) => run(['journalctl', '--no-pager', '-o', 'cat', '-n', '30', '-u', unit]).stdout;
  const dataplane = 'gatekeeper-dataplane@lab.service';
  const mgmt = 'gatekeeper-mgmt.service';

  t.match(systemd.installLog(), /Next steps/, 'image/install-system.sh installed (into the overlays)');
  t.equal(run(['id', '-u', 'gatekeeper']).status, 0, 'it created the gatekeeper user');
  t.equal(run(['stat', '-c', '%U:%G %a', '/run/gatekeeper']).stdout.trim(), 'gatekeeper:gatekeeper 750',
    'and /run/gatekeeper, through tmpfiles.d');

  // A pair, configured as docs/operations.md says.
  run(['sh', '-c', 'cat > /etc/gatekeeper/pairs/lab.env'], `INSIDE=${lab.insidePort}\nOUTSIDE=${lab.outsidePort}\n`);
  run(['sh', '-c', 'mkdir -p /var/lib/gatekeeper/pairs/lab && cat > /var/lib/gatekeeper/pairs/lab/policy.yaml'], PING_POLICY);
  // A short watchdog, so that a hung dataplane is seen within the test.
  run(['sh', '-c', 'mkdir -p /etc/systemd/system/gatekeeper-dataplane@lab.service.d && ' +
    'printf "[Service]\\nWatchdogSec=3s\\n" > /etc/systemd/system/gatekeeper-dataplane@lab.service.d/watchdog.conf && ' +
    'systemctl daemon-reload']);

  const mgmtStart = run(['systemctl', 'start', mgmt]);
  t.equal(mgmtStart.status, 0, `management started (READY=1)${mgmtStart.status ? `:\n${mgmtStart.stderr}${journal(mgmt)}` : ''}`);
  const [type, owner, mode] = run(['stat', '-c', '%F|%U:%G|%a', '/run/gatekeeper/mgmt.sock']).stdout.trim().split('|');
  t.same([type, owner], ['socket', 'gatekeeper:gatekeeper'], 'its socket is in /run/gatekeeper');
  t.equal(Number.parseInt(mode ?? '0', 8) & 0o067, 0o060, `open to the gatekeeper group only (mode ${mode})`);

  t.test('management runs with CAP_NET_RAW only, and its hardening lets it open raw ICMP sockets', async (t) => {
    const status = run(['cat', `/proc/${show(mgmt, 'MainPID')}/status`]).stdout;
    t.match(status, /^CapEff:\s*0000000000002000$/m, 'effective: CAP_NET_RAW only');
    t.match(status, /^CapBnd:\s*0000000000002000$/m, 'and so is the bounding set');
    t.notMatch(status, /^Uid:\s*0\s/m, 'not as root');
    // The unit's hardening (user, capabilities, namespaces, address families, system call filter)
    // on a oneshot service that opens what the liveness prober opens (inventory/liveness.ts).
    const startOnly = new Set(['Type', 'NotifyAccess', 'WatchdogSec', 'Restart', 'RestartSec', 'TimeoutStartSec', 'TimeoutStopSec',
      'Environment', 'EnvironmentFile', 'ExecStart', 'StateDirectory', 'StateDirectoryMode', 'ReadWritePaths', 'Description',
      'Documentation', 'Wants', 'After', 'StartLimitIntervalSec', 'WantedBy']);
    const hardening = settings(join(unitDir, units.mgmt)).filter(([key]) => !startOnly.has(key)).map(([key, value]) => `${key}=${value}`);
    const script = `const raw = require('${installRoot}/node_modules/raw-socket');` +
      ' try { raw.createSocket({ protocol: raw.Protocol.ICMP }).close();' +
      ' raw.createSocket({ addressFamily: raw.AddressFamily.IPv6, protocol: raw.Protocol.ICMPv6 }).close(); console.log(`opened`); }' +
      ' catch (e) { console.log(`refused: ` + e.message); }';
    const open = (name: string, extra: string[]) => {
      const unit = ['[Service]', 'Type=oneshot', `ExecStart=/usr/bin/node -e "${script}"`, 'StandardOutput=journal', ...hardening, ...extra].join('\n');
      run(['sh', '-c', `cat > /etc/systemd/system/${name}.service && systemctl daemon-reload`], `${unit}\n`);
      const started = run(['systemctl', 'start', `${name}.service`]);
      return { status: started.status, stderr: started.stderr, said: journal(`${name}.service`).trim().split('\n').filter((l) => /^(opened|refused)/.test(l)).pop() };
    };
    const opened = open('gk-rawcheck', []);
    t.equal(opened.said, 'opened', `raw ICMP and ICMPv6 sockets open under the unit's settings${opened.status ? `: ${opened.stderr}` : ''}`);
    const privateUsers = open('gk-rawcheck-private-users', ['PrivateUsers=yes']);
    t.equal(privateUsers.said, 'refused: Operation not permitted', 'with PrivateUsers=yes they would not (why the unit has no PrivateUsers=)');
  });

  const dpStart = run(['systemctl', 'start', dataplane]);
  t.equal(dpStart.status, 0, `the dataplane started (READY=1)${dpStart.status ? `:\n${dpStart.stderr}${journal(dataplane)}` : ''}`);
  t.not(show(dataplane, 'StatusText'), '', `it reports a status: "${show(dataplane, 'StatusText')}"`);
  const pid = Number(show(dataplane, 'MainPID'));
  if (!(pid > 0)) return; // not running: the failures above say why, and nothing below can be checked
  // MainPID is a PID of systemd's namespace: look at it from there.
  const status = run(['cat', `/proc/${pid}/status`]).stdout;
  t.match(status, /^CapEff:\s*0000008000003000$/m, 'it runs with CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF only');
  t.notMatch(status, /^Uid:\s*0\s/m, 'not as root');
  const unitStats = JSON.parse(run(['cat', '/run/gatekeeper/pairs/lab/stats.json']).stdout || '{}') as DataplaneStats;
  t.equal(unitStats.fastPath?.state, 'on', `its kernel fast path is on under the unit's sandbox ${unitStats.fastPath?.reason ?? ''}`);

  const connections = () => run(['journalctl', '--no-pager', '-o', 'cat', '-u', mgmt]).stdout.split('\n')
    .filter((line) => line.includes('dataplane connected') && line.includes('"pair":"lab"')).length;
  /** Wait until management has logged more connections of the pair than `before`. */
  const connected = async (before: number) => {
    for (let i = 0; i < 50; i++) {
      if (connections() > before) return true;
      await sleep(200);
    }
    return false;
  };
  t.ok(await connected(0), 'it reached management through the socket (group gatekeeper)');

  const ping = lab.exec(lab.client, ['ping', '-c', '3', '-i', '0.2', '-W', '2', A.server4]);
  t.equal(ping.status, 0, `the client pings the server through it${ping.status ? `:\n${ping.stdout}${journal(dataplane)}` : ''}`);

  t.test('restarting management does not interrupt forwarding', async (t) => {
    const pinging = lab.spawn(lab.client, ['ping', '-c', '20', '-i', '0.1', '-W', '1', A.server4]);
    let out = '';
    pinging.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
    await sleep(300);
    const before = connections();
    t.equal(run(['systemctl', 'restart', mgmt]).status, 0, 'management restarted');
    await new Promise((resolve) => pinging.on('exit', resolve));
    t.match(out, / 0% packet loss/, `no ping lost: ${/\d+% packet loss/.exec(out)?.[0]}`);
    t.equal(Number(show(dataplane, 'MainPID')), pid, 'the dataplane kept running');
    t.ok(await connected(before), 'and reconnected to the new management process');
  });

  t.test('reload keeps the process and its policy', async (t) => {
    t.equal(run(['systemctl', 'reload', dataplane]).status, 0, 'reloaded');
    await sleep(500);
    t.equal(show(dataplane, 'ActiveState'), 'active', 'still active');
    t.equal(Number(show(dataplane, 'MainPID')), pid, 'same process');
  });

  t.test('the watchdog keeps a healthy dataplane and restarts a hung one', async (t) => {
    await sleep(4000); // longer than WatchdogSec=3s: only pings keep it alive
    t.equal(Number(show(dataplane, 'MainPID')), pid, 'still the same process after more than WatchdogSec');
    run(['kill', '-STOP', String(pid)]); // hung: no event loop, no pings
    let restarted = false;
    for (let i = 0; i < 100 && !restarted; i++) {
      await sleep(100);
      const now = Number(show(dataplane, 'MainPID'));
      restarted = show(dataplane, 'ActiveState') === 'active' && now !== 0 && now !== pid;
    }
    t.ok(restarted, `restarted after the watchdog fired (NRestarts=${show(dataplane, 'NRestarts')})`);
    t.match(journal(dataplane), /Watchdog timeout/, 'the journal says why');
    const again = lab.exec(lab.client, ['ping', '-c', '2', '-i', '0.2', '-W', '2', A.server4]);
    t.equal(again.status, 0, 'and it forwards again');
  });
});
