// The user rules, in one place for the API (routes/users.ts, routes/auth.ts) and the command line
// (`gatekeeper user ...`, cli/mgmt-commands.ts): names are unique; the last admin can be neither
// removed nor demoted, and nobody removes themselves, so the appliance always keeps someone who can
// manage it. Every method checks and saves with no await in between (callers hash passwords
// first), so concurrent requests cannot both pass a check. Sessions and the audit trail are the
// callers' business.

import { HttpError } from '../http-error';
import type { Role } from '../auth/roles';
import type { StateStore, UserRecord } from '../state/store';

/** A rule refused the change. `reason` reads on its own (the CLI prints it); the API message names the field. */
export class UserRefused extends HttpError {
  constructor(statusCode: number, readonly reason: string, field?: string) {
    super(statusCode, field ? `${field}: ${reason}` : reason);
  }
}

export class UserService {
  constructor(private readonly store: StateStore) {}

  list(): readonly UserRecord[] {
    return this.store.users();
  }

  get(name: string): UserRecord | undefined {
    return this.store.user(name);
  }

  mustExist(name: string): UserRecord {
    const user = this.store.user(name);
    if (!user) throw new UserRefused(404, `no user '${name}'`);
    return user;
  }

  checkNameFree(name: string): void {
    if (this.store.user(name)) throw new UserRefused(409, `user '${name}' already exists`, 'name');
  }

  add(user: UserRecord): void {
    this.checkNameFree(user.name);
    this.store.saveUsers([...this.store.users(), user]);
  }

  /** The first admin, only while no user exists (`gatekeeper user add` may have created one meanwhile). */
  addFirst(user: UserRecord): void {
    if (this.store.users().length > 0) throw new UserRefused(409, 'setup is already done');
    this.store.saveUsers([user]);
  }

  change(name: string, change: { role?: Role; passwordHash?: string; lastLoginAt?: string }): { before: UserRecord; after: UserRecord } {
    const before = this.mustExist(name);
    if (change.role && change.role !== 'admin' && before.role === 'admin' && this.admins() === 1) {
      throw new UserRefused(409, `'${name}' is the last admin and cannot be demoted`, 'role');
    }
    const after: UserRecord = { ...before, ...definedOnly(change) };
    this.store.saveUsers(this.store.users().map((u) => (u.name === name ? after : u)));
    return { before, after };
  }

  /** `by`: the user asking, who may not remove themselves (absent on the command line). */
  remove(name: string, by?: string): UserRecord {
    const user = this.mustExist(name);
    if (user.name === by) throw new UserRefused(409, 'you cannot remove yourself');
    if (user.role === 'admin' && this.admins() === 1) throw new UserRefused(409, `'${name}' is the last admin`);
    this.store.saveUsers(this.store.users().filter((u) => u.name !== name));
    return user;
  }

  private admins(): number {
    return this.store.users().filter((u) => u.role === 'admin').length;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
