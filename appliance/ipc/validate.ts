// The one validator of what crosses the management socket, used at both ends: management checks
// what a dataplane sends (mgmt/dataplanes/ipc-server.ts, and each event of a batch in hub.ts), a
// dataplane checks what management sends (dataplane/mgmt-link.ts). The framing only guarantees a
// JSON object with a string `type`, and the rest of each side trusts the fields it reads, so every
// message is checked here, against schemas.ts, before anything uses it. Checks only: no I/O, and no
// state but the compiled validators.

import Ajv, { type ValidateFunction } from 'ajv';
import type { GatekeeperEvent } from './events';
import { dataplaneEventSchema, dataplaneMessageSchemas, managementMessageSchemas, MAX_EVENT_BYTES } from './schemas';

/** Who sent the message: each side accepts only the other side's message types. */
export type Sender = 'dataplane' | 'management';

// strictNumbers: JSON.parse reads 1e999 as Infinity, which is no count.
const ajv = new Ajv({ strict: true, strictNumbers: true, allErrors: false });

const schemas: Record<Sender, ReadonlyMap<string, object>> = {
  dataplane: new Map(Object.entries(dataplaneMessageSchemas)),
  management: new Map(Object.entries(managementMessageSchemas)),
};

/**
 * Validators are compiled on first use: each side only ever meets the other side's types. Compiling
 * them all at start-up took 300 ms on this busy box; a dataplane's six now take about 100 ms in all,
 * most of it the first (loading ajv itself is another 130–190 ms).
 */
const compiled = new Map<object, ValidateFunction>();

function validatorOf(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/**
 * Compile every validator for what `from` sends now, not at the first message: management does it
 * at start, so a dataplane's first stats are not held up by a compile (status would show the pair
 * connected with no counters meanwhile).
 */
export function prepareValidators(from: Sender): void {
  for (const schema of schemas[from].values()) validatorOf(schema);
  if (from === 'dataplane') validatorOf(dataplaneEventSchema);
}

/**
 * Null when `raw` is a well-formed message from `from`, else what is wrong with it ("unknown message
 * type ..." or "malformed <type> message"). Events inside an `events` message are checked one by one
 * by the caller (isDataplaneEvent: a bad event is skipped, not fatal).
 */
export function messageProblem(raw: unknown, from: Sender): string | null {
  const type = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as { type?: unknown }).type : undefined;
  const schema = typeof type === 'string' ? schemas[from].get(type) : undefined;
  if (schema === undefined) return `unknown message type ${JSON.stringify(type)}`;
  return validatorOf(schema)(raw) ? null : `malformed ${type} message`;
}

/**
 * A dataplane event management keeps (dataplaneEventSchema), with a readable time and at most
 * MAX_EVENT_BYTES as JSON.
 */
export function isDataplaneEvent(e: unknown): e is GatekeeperEvent {
  return (
    validatorOf(dataplaneEventSchema)(e) &&
    !Number.isNaN(Date.parse((e as { time: string }).time)) &&
    Buffer.byteLength(JSON.stringify(e)) <= MAX_EVENT_BYTES
  );
}
