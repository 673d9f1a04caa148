// JSON schemas of the learn routes (routes/learn.ts): bodies refuse unknown fields, responses are the
// shapes of learn/types.ts. Each carries its accepted type (Infer) like ../schemas.ts, whose helpers
// it uses. Declarations only.

import { arr, bool, int, nullable, num, obj, oneOf, responses, str, typed, type Infer } from '../schemas';
import type { Decision, LearnStatus, Proposal, ReviewResult } from './types';

/** Shortest and longest learning period: a minute (tests, a quick look) to 90 days. */
export const DURATION_MIN_MS = 60_000;
export const DURATION_MAX_MS = 90 * 24 * 3_600_000;

const pair = typed<string>({ type: 'string', minLength: 1, maxLength: 64 });
const mode = oneOf(['monitor', 'enforce'] as const);
/** A group or rule name as the policy language allows it (propose.ts isPolicyName says the same, plus "any"). */
const name = typed<string>({ type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_.-]*$', maxLength: 64 });

export const startBody = obj({ pair, durationMs: typed<number>({ type: 'integer', minimum: DURATION_MIN_MS, maximum: DURATION_MAX_MS }), mode });
export type StartBody = Infer<typeof startBody>;
export const stopBody = obj({ pair });
export type StopBody = Infer<typeof stopBody>;
export const proposeBody = obj({ pair, hours: typed<number>({ type: 'integer', minimum: 1, maximum: 24 * 90, default: 24 }) }, ['hours']);
export type ProposeBody = Infer<typeof proposeBody>;

const decision = obj({ kind: oneOf(['group', 'rule'] as const), id: typed<string>({ type: 'string', minLength: 1, maxLength: 32 }), accept: bool, rename: name },
  ['rename']);
export const reviewBody = obj({ pair, proposalId: typed<string>({ type: 'string', minLength: 1, maxLength: 64 }),
  decisions: arr(decision, { maxItems: 100_000 }) });
export type ReviewBody = Infer<typeof reviewBody>;

const status = obj({ pair: str, state: oneOf(['idle', 'learning', 'done'] as const), mode: nullable(mode), startedAt: nullable(num),
  endsAt: nullable(num), author: nullable(str), assets: int, conversations: int });

const functionItem = typed<string | number>({ anyOf: [{ type: 'string' }, { type: 'integer' }] });
const group = obj({ id: str, name: str, namedFrom: str, members: arr(str), assets: arr(int) });
const rule = obj({ id: str, name: str, from: str, to: str, services: arr(str), modbus: obj({ functions: arr(functionItem), units: arr(int) }),
  flows: int, firstSeen: num, lastSeen: num, description: str }, ['modbus']);
const proposal = obj({
  id: str, pair: str, createdAt: num, groups: arr(group), rules: arr(rule), text: str, errors: arr(str),
  coverage: obj({ hours: int, conversations: int, allowed: int, share: num,
    leftOut: arr(obj({ client: str, server: str, service: str, reason: str, flows: int, code: str })), leftOutOmitted: int }),
});
const reviewResult = obj({ text: str, diff: str, notes: arr(str) });

export const statusListResponse = responses({ 200: obj({ pairs: arr(status) }) });
export const statusResponse = responses({ 200: status });
export const proposalResponse = responses({ 200: proposal });
export const reviewResponse = responses({ 200: reviewResult });

// The schemas and the contract's types must not drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const inStep: [Same<Infer<typeof status>, LearnStatus>, Same<Infer<typeof reviewResult>, ReviewResult>,
  Same<Infer<typeof proposal>, Proposal>, Same<Infer<typeof decision>, Decision>] = [true, true, true, true];
void inStep;
