// The management roles, least privileged first, and what each adds: the one definition the API
// schemas, the access check, the state, the CLI and (through GET /api/v1/meta) the web UI use.
// Imports nothing, so every layer of mgmt/ may use it.

export const roles = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof roles)[number];

/** What each role may do beyond the one before it (the UI's user form shows it). */
export const roleDescriptions: Record<Role, string> = {
  viewer: 'read only',
  operator: '+ apply policies, settings',
  admin: '+ users',
};

/** Whether `actual` may do what `needed` may: roles are ordered, each includes those before it. */
export function hasRole(actual: Role, needed: Role): boolean {
  return roles.indexOf(actual) >= roles.indexOf(needed);
}
