// kport's built-in roles, as Teleport's presets, and the names they keep for themselves.
import type { RoleV7 } from './role.ts';

const ALL_VERBS = ['list', 'read', 'create', 'update', 'delete'];

/**
 * Built-in roles, as Teleport's presets. `access` reaches every cluster (its labels '*': '*') as the
 * person's own name with no extra groups: which Kubernetes permissions that gives is the cluster's
 * RBAC to decide, as with any role whose kubernetes_users is empty. It has no rules: the clusters a
 * person sees follow from kubernetes_labels (RoleSet.kubeAccess), as in Teleport.
 */
export const BUILTIN_ROLES: readonly RoleV7[] = Object.freeze([
  {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'editor', description: 'Edit kport: tokens, users, roles, clusters and agents' },
    spec: {
      allow: {
        rules: [{ resources: ['token', 'user', 'role', 'kube_cluster', 'agent', 'lock', 'discovery_service', 'kube_server'], verbs: ALL_VERBS }],
      },
    },
  },
  {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'access', description: 'Reach the Kubernetes clusters, as yourself' },
    spec: { allow: { kubernetes_labels: { '*': '*' } } },
  },
  {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'auditor', description: 'Read the audit trail, session recordings and discovery status' },
    spec: { allow: { rules: [{ resources: ['audit', 'session', 'discovery_service'], verbs: ['list', 'read'] }] } },
  },
] satisfies RoleV7[]);

export const BUILTIN_ROLE_NAMES: readonly string[] = BUILTIN_ROLES.map((r) => r.metadata.name);

/**
 * The built-in role a name reads as, whatever its case: `Editor` next to `editor` in `kport get
 * role` or `users ls` reads as the built-in one, so neither roles nor users may take such a name.
 */
export function builtinRoleNamed(name: string): string | undefined {
  return BUILTIN_ROLE_NAMES.find((b) => b === name.toLowerCase());
}

/** The sentence refusing a role named like a built-in one; undefined for any other name. */
export function reservedRoleNameProblem(name: string): string | undefined {
  const builtin = builtinRoleNamed(name);
  if (!builtin) return undefined;
  return `${name} is a built-in kport role${name === builtin ? '' : ` (${builtin}, in another case)`} and cannot be redefined: give yours another name`;
}

/**
 * The sentence refusing a user named like a built-in role (`editor` beside the role editor in
 * `users ls` reads as a role). Names of other roles stay allowed: roles come and go after users do.
 */
export function reservedUserNameProblem(name: string): string | undefined {
  const builtin = builtinRoleNamed(name);
  return builtin && `${name} reads as the built-in role ${builtin}, so no user may be named so: pick another name`;
}
