// Severity in each output: the syslog PRI (RFC 5424 §6.2.1), CEF's 0-10 scale and pino's levels.

import { severityNames } from '../../ipc/events';
import type { Severity } from '../../ipc/events';

/** Every event is sent with facility local0 (16): the facility SIEM inputs usually route on. */
export const facility = 16;

/** Numeric syslog severity: 0 emergency … 7 debug. Unknown names count as "notice". */
export function severityCode(severity: Severity): number {
  const code = severityNames.indexOf(severity);
  return code < 0 ? 5 : code;
}

/** PRI = facility * 8 + severity. */
export function priority(severity: Severity): number {
  return facility * 8 + severityCode(severity);
}

/** CEF severity 0-10 (10 most severe), indexed by syslog severity. */
const cefBySyslog = [10, 9, 8, 7, 6, 4, 3, 1] as const;

export function cefSeverity(severity: Severity): number {
  return cefBySyslog[severityCode(severity)];
}

/** True when `severity` is at least as severe as `least` (the target's minSeverity). */
export function atLeast(severity: Severity, least: Severity): boolean {
  return severityCode(severity) <= severityCode(least);
}

export type PinoLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug';

const pinoBySyslog: readonly PinoLevel[] = ['fatal', 'fatal', 'fatal', 'error', 'warn', 'info', 'info', 'debug'];

export function pinoLevel(severity: Severity): PinoLevel {
  return pinoBySyslog[severityCode(severity)];
}
