// The user rules live in one service (services/users.ts) that both the API and `gatekeeper user`
// use: the last admin can be neither removed nor demoted, names are unique, nobody removes
// themselves. Checked on the service, then through the route and through the command line, which
// must refuse with the service's own reason.

import t from 'tap';
import { hashSecret } from '../appliance/mgmt/auth/passwords';
import { UserRefused, UserService } from '../appliance/mgmt/services/users';
import { StateStore } from '../appliance/mgmt/state/store';
import { runCli, seedUsers, startTestServer, tempStateDir } from './lib/mgmt-fixture';

const now = new Date().toISOString();
const record = async (name: string, role: 'admin' | 'operator' | 'viewer') =>
  ({ name, role, passwordHash: await hashSecret(`${name}-password-1`), createdAt: now, lastLoginAt: null });

/** The reason a service call is refused with. */
function refusal(call: () => unknown): string {
  try {
    call();
  } catch (err) {
    if (err instanceof UserRefused) return err.reason;
    throw err;
  }
  throw new Error('not refused');
}

t.test('the service: last admin, unique names, not yourself', async (t) => {
  const store = StateStore.open(tempStateDir(t), { warn: () => undefined });
  const users = new UserService(store);
  users.add(await record('root', 'admin'));
  users.add(await record('olga', 'operator'));
  t.equal(refusal(() => users.remove('root')), "'root' is the last admin");
  t.equal(refusal(() => users.change('root', { role: 'viewer' })), "'root' is the last admin and cannot be demoted");
  t.equal(refusal(() => users.add({ ...store.user('olga')! })), "user 'olga' already exists");
  t.equal(refusal(() => users.remove('olga', 'olga')), 'you cannot remove yourself');
  t.equal(refusal(() => users.remove('nobody')), "no user 'nobody'");
  users.change('olga', { role: 'admin' });
  t.equal(users.remove('root').name, 'root', 'with a second admin, the first can go');
  t.same(users.list().map((u) => u.name), ['olga']);
});

t.test('the route and the command line refuse with the service reason', async (t) => {
  // One admin (alice) and others: removing or demoting alice is refused everywhere.
  const s = await startTestServer(t);
  const reason = refusal(() => new UserService(StateStore.open(s.stateDir, { warn: () => undefined }, { recover: false })).remove('alice'));
  t.equal(reason, "'alice' is the last admin");

  await seedUsers(s.stateDir, [{ name: 'alice', role: 'admin', password: 'alice-password-1' }, { name: 'bob', role: 'admin', password: 'bob-password-123' }]);
  const bob = await s.login('bob', 'bob-password-123');
  t.equal((await s.call(bob, 'DELETE', '/api/v1/users/alice')).status, 204, 'two admins: one may go');
  const viaApi = await s.call(bob, 'PATCH', '/api/v1/users/bob', { role: 'viewer' });
  t.equal(viaApi.status, 409);
  t.same(viaApi.json, { error: "role: 'bob' is the last admin and cannot be demoted" });

  const viaCli = runCli(['user', 'remove', 'bob', '--state-dir', s.stateDir]);
  t.equal(viaCli.status, 2);
  t.equal(viaCli.stderr, "gatekeeper: 'bob' is the last admin\n", 'the CLI prints the service reason');
  const taken = runCli(['user', 'add', 'bob', '--role', 'viewer', '--state-dir', s.stateDir], 'another-password-1\n');
  t.equal(taken.stderr, "gatekeeper: user 'bob' already exists\n");
  t.same(StateStore.open(s.stateDir, { warn: () => undefined }, { recover: false }).users().map((u) => u.name), ['bob']);
});
