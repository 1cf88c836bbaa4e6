import type { Backend } from '../backend/backend.ts';
import { ROLE, type FlatRole, type RoleV7 } from '../resources/role.ts';
import type { Resource } from '../resources/resource.ts';
import { listResources } from '../resources/store.ts';
import { BUILTIN_ROLES } from '../resources/builtin-roles.ts';
import { checkRole } from '../resources/role-check.ts';

/**
 * Every role kport knows by name: the built-in ones, role resources in the store (either shape),
 * and the config's `roles:` (flat), which win over resources of the same name as they always have.
 * Built-in names always mean the built-in role: `create -f` and the config refuse them, and a
 * stored one (written before they were built in) is passed over.
 */
export async function loadRoleDefinitions(backend: Backend, configRoles: FlatRole[]): Promise<Map<string, RoleV7>> {
  return roleDefinitions(await listResources<Resource>(backend, ROLE), configRoles);
}

/** loadRoleDefinitions from role resources already read. */
export function roleDefinitions(stored: Resource[], configRoles: FlatRole[]): Map<string, RoleV7> {
  const definitions = new Map<string, RoleV7>();
  for (const r of stored) definitions.set(r.metadata.name, readStoredRole(r));
  for (const r of configRoles) definitions.set(r.name, fromConfig(r));
  for (const r of BUILTIN_ROLES) definitions.set(r.metadata.name, r);
  return definitions;
}

export function fromConfig(r: FlatRole): RoleV7 {
  return checkRole(r).role ?? unreadable(r.name);
}

/** Stored roles were checked when written; one that no longer reads (edited in the store by hand) denies everything rather than losing its deny side. */
export function readStoredRole(stored: Resource): RoleV7 {
  const { revision: _revision, ...metadata } = stored.metadata;
  return checkRole({ kind: stored.kind, version: stored.version, metadata, spec: stored.spec }).role ?? unreadable(stored.metadata.name);
}

function unreadable(name: string): RoleV7 {
  const everything = { kubernetes_labels: { '*': '*' }, kubernetes_groups: ['*'], kubernetes_users: ['*'], rules: [{ resources: ['*'], verbs: ['*'] }] };
  return {
    kind: 'role',
    version: 'v7',
    metadata: { name, description: 'unreadable role: denies everything until it is written again with kport create -f --force' },
    spec: { allow: {}, deny: everything },
  };
}
