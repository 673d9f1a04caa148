// Password (and metrics token) hashing with scrypt: per-secret random salt, parameters stored with
// the hash so they can be raised later without breaking existing users.
// Format: scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>
// Every hash and verification takes one of a few slots (at most MAX_CONCURRENT_HASHES run, at most
// MAX_WAITING_HASHES wait), so a flood of logins cannot pin the CPU, the memory or libuv's thread
// pool (which the disk writes need too): beyond that, HashBusy (503, retry in 1 s) at once.

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { HttpError } from '../http-error';

export const PASSWORD_MIN_LENGTH = 12;
const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;

/** One scrypt at these parameters takes 32 MiB and about 100 ms of a core: two at once on the 2-core box. */
export const MAX_CONCURRENT_HASHES = 2;
/** About 1 s of work at the rate above: a login waits at most that long for its turn. */
export const MAX_WAITING_HASHES = 16;
const BUSY_RETRY_S = 1;

/** Every hash slot is taken and the queue is full. */
export class HashBusy extends HttpError {
  constructor() {
    super(503, `too many password checks at once; try again in ${BUSY_RETRY_S} s`, undefined, BUSY_RETRY_S);
  }
}

let running = 0;
const waiting: (() => void)[] = [];

async function inHashSlot<T>(work: () => Promise<T>): Promise<T> {
  if (running < MAX_CONCURRENT_HASHES) {
    running++;
  } else if (waiting.length < MAX_WAITING_HASHES) {
    // The slot is handed over by the hash that ends (below), so `running` stays counted.
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else {
    throw new HashBusy();
  }
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function derive(secret: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem must exceed 128 * N * r bytes.
    scrypt(secret, salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

async function makeHash(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(secret, salt, N, R, P);
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Throws HashBusy when too many hashes are running and waiting. */
export function hashSecret(secret: string): Promise<string> {
  return inHashSlot(() => makeHash(secret));
}

/** False for a wrong secret and for a malformed stored hash; throws HashBusy like hashSecret. */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0) || n > 1 << 20) return false;
  const expected = Buffer.from(parts[5], 'base64');
  if (expected.length !== KEY_LENGTH) return false;
  const key = await inHashSlot(() => derive(secret, Buffer.from(parts[4], 'base64'), n, r, p));
  return timingSafeEqual(key, expected);
}

/** Why a new password is refused, or null when it is acceptable. */
export function passwordProblem(password: string): string | null {
  if (password.length < PASSWORD_MIN_LENGTH) return `password must be at least ${PASSWORD_MIN_LENGTH} characters`;
  return null;
}

/** A hash to verify against when the user does not exist, so timing does not reveal user names. */
let dummyHash: Promise<string> | undefined;
export function unknownUserHash(): Promise<string> {
  // Made once, outside the slots: a busy moment must not leave a refused promise here for good.
  dummyHash ??= makeHash(randomBytes(16).toString('hex'));
  return dummyHash;
}
