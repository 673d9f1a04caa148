// What a policy load reports, without the loader: diagnostics (file:line:col), the failure shape, and
// the one read of a policy file. Kept apart from load.ts so that a process that only receives
// compiled policies (the dataplane's packet thread, see load-worker.ts) never loads the YAML parser,
// the schema validator or the compiler. Imports nothing from the policy language.

import { readFileSync } from 'node:fs';

export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: 'error' | 'warning';
}

export interface LoadFailure {
  ok: false;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** A load that failed as a whole (unreadable file, compiler crash), not at a line of the text. */
export function fileFailure(file: string, message: string): LoadFailure {
  return { ok: false, errors: [{ file, line: 1, col: 1, message, severity: 'error' }], warnings: [] };
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.severity === 'warning' ? 'warning: ' : ''}${d.message}`;
}

export function readPolicyFile(path: string): { ok: true; text: string } | LoadFailure {
  try {
    return { ok: true, text: readFileSync(path, 'utf8') };
  } catch (err) {
    return fileFailure(path, `cannot read policy: ${(err as Error).message}`);
  }
}
