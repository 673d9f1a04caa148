// JSON schema of the policy document (the YAML file after parsing) and its TypeScript shape.
// Structure only: names, addresses, services and cross-references are checked in model.ts.

/** A name or literal, or a list of them. */
export type Refs = string | string[];

export interface NamedSetDef {
  description?: string;
  members: Refs;
}

export interface RuleDoc {
  name: string;
  description?: string;
  from: Refs;
  to: Refs;
  service: Refs;
  action: 'allow' | 'deny' | 'reject';
  log?: boolean;
  enabled?: boolean;
  /** Modbus/TCP inspection of the rule's connections; its contents are checked by modbus-block.ts. */
  modbus?: Record<string, unknown>;
}

export interface PolicyDocument {
  version: 1;
  description?: string;
  mode?: 'enforce' | 'monitor';
  default?: 'deny' | 'allow';
  'default-log'?: boolean;
  groups?: Record<string, Refs | NamedSetDef>;
  services?: Record<string, Refs | NamedSetDef>;
  rules: RuleDoc[];
  l2?: { allow?: (string | number)[] };
  flows?: Record<string, string | number | boolean>;
}

/** Group and service names: a letter first, so that names never look like address literals. */
export const NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_.-]*$';
/** Durations: one or more number+unit pairs, e.g. 90s, 1h30m, 500ms. */
export const DURATION_PATTERN = '^([0-9]+(ms|s|m|h|d))+$';

/** flows: keys, their kind and the FlowSettings field each sets. */
export const FLOW_KEYS = {
  'max-flows': 'count',
  'tcp-established-idle': 'duration',
  'tcp-opening-idle': 'duration',
  'tcp-closing-idle': 'duration',
  'udp-idle': 'duration',
  'icmp-idle': 'duration',
  'other-idle': 'duration',
  'fragment-timeout': 'duration',
  'pickup-established': 'boolean',
} as const;

/**
 * The keys of a rule's `modbus:` block: the schema knows the keys (so a typo gets the same "did you
 * mean" as any other key), modbus-block.ts checks the values.
 */
export const MODBUS_KEYS = ['functions', 'units', 'addresses', 'max-length', 'on-violation'] as const;

const refs = { type: ['string', 'array'], items: { type: 'string' }, minItems: 1 };

const namedSet = {
  type: ['string', 'array', 'object'],
  items: { type: 'string' },
  minItems: 1,
  properties: { description: { type: 'string' }, members: refs },
  required: ['members'],
  additionalProperties: false,
};

const flowProperties = Object.fromEntries(
  Object.entries(FLOW_KEYS).map(([key, kind]) => [
    key,
    kind === 'count'
      ? { type: 'integer', minimum: 1 }
      : kind === 'boolean'
        ? { type: 'boolean' }
        : { type: 'string', pattern: DURATION_PATTERN },
  ]),
);

export const policySchema = {
  $id: 'https://gatekeeper.invalid/policy.schema.json',
  type: 'object',
  required: ['version', 'rules'],
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    description: { type: 'string' },
    mode: { enum: ['enforce', 'monitor'] },
    default: { enum: ['deny', 'allow'] },
    'default-log': { type: 'boolean' },
    groups: {
      type: ['object', 'null'],
      propertyNames: { pattern: NAME_PATTERN },
      additionalProperties: namedSet,
    },
    services: {
      type: ['object', 'null'],
      propertyNames: { pattern: NAME_PATTERN },
      additionalProperties: namedSet,
    },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'from', 'to', 'service', 'action'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1 },
          description: { type: 'string' },
          from: refs,
          to: refs,
          service: refs,
          action: { enum: ['allow', 'deny', 'reject'] },
          log: { type: 'boolean' },
          enabled: { type: 'boolean' },
          modbus: {
            type: 'object',
            required: ['functions'],
            additionalProperties: false,
            properties: Object.fromEntries(MODBUS_KEYS.map((key) => [key, {}])),
          },
        },
      },
    },
    l2: {
      type: 'object',
      additionalProperties: false,
      properties: { allow: { type: 'array', items: { type: ['string', 'integer'] } } },
    },
    flows: { type: 'object', additionalProperties: false, properties: flowProperties },
  },
} as const;
