// The management roles, least privileged first: the one definition the API schemas, the access
// check, the state and the CLI use.
// Imports nothing, so every layer of mgmt/ may use it.

export const roles = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof roles)[number];

/** Whether `actual` may do what `needed` may: roles are ordered, each includes those before it. */
export function hasRole(actual: Role, needed: Role): boolean {
  return roles.indexOf(actual) >= roles.indexOf(needed);
}
