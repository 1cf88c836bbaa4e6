import type { LabelSelector } from './labels.ts';
import type { Resource } from './resource.ts';
import type { RoleV7 } from '../roles/role.ts';

export const ROLE = 'role';
export const USER = 'user';

/** The flat spec kport stored before roles took Teleport's v7 shape; still read (src/roles/load.ts). */
export interface FlatRoleSpec {
  kubernetes_labels: LabelSelector;
  kubernetes_groups: string[];
  kubernetes_users: string[];
}

/** A stored role, in either shape: read it through readStoredRole. */
export type Role = Resource<RoleV7['spec'] | FlatRoleSpec>;
export type User = Resource<{ roles: string[] }>;
