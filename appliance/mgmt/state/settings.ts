// The stored settings (settings.json): syslog targets, metrics token hash, session timeout, liveness
// probes. The syslog target is defined here, where it is kept; the SIEM export (siem/) is configured
// with it; so are the liveness settings the prober (inventory/liveness.ts) reads on every round.
// Must not import siem/, inventory/ or routes/ (state sits below them).

import type { EventType, Severity } from '../../ipc/events';

export type SyslogFormat = 'rfc5424' | 'rfc3164' | 'cef';
/** How lines travel: RELP is the one with acknowledgements (no loss, no duplicates across outages). */
export const SYSLOG_TRANSPORTS = ['udp', 'tcp', 'tls', 'relp'] as const;
export type SyslogTransport = (typeof SYSLOG_TRANSPORTS)[number];

export interface SyslogTlsOptions {
  /** PEM CA bundle that must have signed the receiver's certificate (system CAs when absent). */
  ca?: string;
  /** PEM client certificate and key, for receivers that require one. */
  cert?: string;
  key?: string;
  /** Name to verify in the receiver's certificate (defaults to host). */
  serverName?: string;
}

export interface SyslogTarget {
  /** Unique, used in the UI, in status and in "send a test message". */
  name: string;
  enabled: boolean;
  host: string;
  port: number;
  transport: SyslogTransport;
  format: SyslogFormat;
  /** Least severe level sent (e.g. "info" sends info and everything more severe). */
  minSeverity: Severity;
  /** Event types sent; empty = all. */
  types: EventType[];
  tls?: SyslogTlsOptions;
}

/** Overrides for the assets of one policy group; what is absent comes from the global settings. */
export interface LivenessGroupSettings {
  enabled: boolean;
  intervalSeconds?: number;
  timeoutMs?: number;
  downAfter?: number;
}

/**
 * ICMP/ICMPv6 echo probes of the inventory's assets. Nothing is probed unless `enabled` (the master
 * switch) is on AND one of the asset's addresses is in a policy group listed in `groups` with
 * `enabled: true`: groups not listed are never probed.
 */
export interface LivenessSettings {
  enabled: boolean;
  /** Time between two probes of one asset. */
  intervalSeconds: number;
  /** How long to wait for the echo reply; must be shorter than the interval. */
  timeoutMs: number;
  /** Consecutive unanswered probes before an asset is down (the first answer brings it up). */
  downAfter: number;
  /** For all assets together, so a large inventory never floods the plant network. */
  maxProbesPerSecond: number;
  groups: Record<string, LivenessGroupSettings>;
}

export const DEFAULT_LIVENESS: LivenessSettings = {
  enabled: false, intervalSeconds: 60, timeoutMs: 1000, downAfter: 3, maxProbesPerSecond: 10, groups: {},
};

/** Bounds the schema (mgmt/schemas.ts) enforces; here so the route and the docs agree. */
export const LIVENESS_LIMITS = {
  intervalSeconds: { minimum: 1, maximum: 86_400 },
  timeoutMs: { minimum: 50, maximum: 60_000 },
  downAfter: { minimum: 1, maximum: 100 },
  maxProbesPerSecond: { minimum: 1, maximum: 1000 },
  groups: 256,
} as const;

export interface Settings {
  syslog: { targets: SyslogTarget[] };
  /** auth/passwords.ts format, null when no metrics token is set. */
  metricsTokenHash: string | null;
  sessionTimeoutMin: number;
  /** Absent in a settings.json written before liveness probes existed: DEFAULT_LIVENESS. */
  liveness?: LivenessSettings;
}

export function livenessSettings(settings: Settings): LivenessSettings {
  return settings.liveness ?? DEFAULT_LIVENESS;
}

/** What a group's assets get: its overrides over the global values. */
export function effectiveLiveness(l: LivenessSettings, group: LivenessGroupSettings): { intervalSeconds: number; timeoutMs: number; downAfter: number } {
  return { intervalSeconds: group.intervalSeconds ?? l.intervalSeconds, timeoutMs: group.timeoutMs ?? l.timeoutMs, downAfter: group.downAfter ?? l.downAfter };
}

/** Rules across fields the schema cannot express; empty when the settings are consistent. */
export function livenessProblems(l: LivenessSettings): string[] {
  const problems: string[] = [];
  const check = (where: string, e: ReturnType<typeof effectiveLiveness>) => {
    if (e.timeoutMs >= e.intervalSeconds * 1000) {
      problems.push(`${where}: timeoutMs (${e.timeoutMs}) must be shorter than the interval (${e.intervalSeconds} s)`);
    }
  };
  check('liveness', effectiveLiveness(l, { enabled: true }));
  for (const [name, group] of Object.entries(l.groups)) check(`groups.${name}`, effectiveLiveness(l, group));
  return problems;
}

export const DEFAULT_SESSION_TIMEOUT_MIN = 30;
