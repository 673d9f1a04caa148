// The one-time first-admin token: while no user exists, a random token in the service log and in
// <stateDir>/setup-token (0600); POST /api/v1/auth/setup consumes it. Must not import routes.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { writeFileAtomic } from '../../wire/atomic-file';

export const SETUP_TOKEN_FILE = 'setup-token';

export class SetupToken {
  /** Null once a user exists (or while a setup request holds it). */
  private value: string | null = null;

  constructor(private readonly stateDir: string) {}

  private get path(): string {
    return join(this.stateDir, SETUP_TOKEN_FILE);
  }

  /** A new token when no user exists, else the file of an earlier one is removed. */
  issue(userCount: number, log: FastifyBaseLogger): void {
    if (userCount > 0) {
      rmSync(this.path, { force: true });
      return;
    }
    this.value = randomBytes(24).toString('base64url');
    writeFileAtomic(this.path, `${this.value}\n`, { mode: 0o600 });
    log.warn({ setupToken: this.value, file: this.path },
      'no user exists: create the first admin in the web UI with this one-time setup token, or with `gatekeeper user add NAME --role admin`');
  }

  get pending(): boolean {
    return this.value !== null;
  }

  matches(given: string): boolean {
    if (this.value === null) return false;
    const a = Buffer.from(given);
    const b = Buffer.from(this.value);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Takes the token away before an await, so a concurrent request finds none; `giveBack` if that request fails. */
  take(): string | null {
    const value = this.value;
    this.value = null;
    return value;
  }

  giveBack(value: string): void {
    this.value = value;
  }

  /** Setup is done: the file goes. */
  used(): void {
    rmSync(this.path, { force: true });
  }
}
