import type { Backend } from '../backend/backend.ts';
import type { RoleConfig, UserConfig } from '../config/schema.ts';
import type { KubeCluster } from '../resources/kube-cluster.ts';
import { USER, type User } from '../resources/role.ts';
import { listResources } from '../resources/store.ts';
import { RoleSet, type KubeAccess } from '../roles/evaluate.ts';
import { loadRoleDefinitions } from '../roles/load.ts';

// Apart from access.ts (what a request may impersonate within a KubeAccess): the forwarder and the
// agents make that check without the store and the roles' loading this module reads.

export interface AccessChecker {
  user: string;
  /** Whether the user is defined at all (users: in the config, or a user resource). */
  defined: boolean;
  roles: string[];
  /** Role names the user is given that no role defines. */
  undefinedRoles: string[];
  /** undefined: the cluster is not allowed and must look exactly like a missing one. */
  forCluster(cluster: KubeCluster): KubeAccess | undefined;
}

/**
 * The person's roles, from `users:`/`roles:` in the config, user/role resources and the built-in
 * roles, and what they allow on a cluster (RoleSet.kubeAccess: the union over the roles whose
 * kubernetes_labels match it, minus what their deny sides take away).
 */
export async function accessFor(user: string, config: { roles: RoleConfig[]; users: UserConfig[] }, backend: Backend): Promise<AccessChecker> {
  const [definitions, userResources] = await Promise.all([loadRoleDefinitions(backend, config.roles), listResources<User>(backend, USER)]);
  const roleNames = new Set([
    ...config.users.filter((u) => u.name === user).flatMap((u) => u.roles),
    ...userResources.filter((u) => u.metadata.name === user).flatMap((u) => u.spec.roles),
  ]);
  const roles = [...roleNames].flatMap((name) => definitions.get(name) ?? []);
  const roleSet = new RoleSet(roles, user);
  return {
    user,
    defined: config.users.some((u) => u.name === user) || userResources.some((u) => u.metadata.name === user),
    roles: roles.map((r) => r.metadata.name),
    undefinedRoles: [...roleNames].filter((name) => !definitions.has(name)),
    forCluster: (cluster) => roleSet.kubeAccess(cluster.metadata.labels ?? {}),
  };
}
