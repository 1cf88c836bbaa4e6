// The role and user kinds: a role in Teleport's v7 shape, which is what every role reads as
// (src/resources/role-check.ts), and the flat shape it is also written in.
import type { LabelSelector } from './labels.ts';
import type { Resource } from './resource.ts';

export const ROLE = 'role';
export const USER = 'user';

export interface RoleConditions {
  kubernetes_labels?: Record<string, string | string[]>;
  kubernetes_groups?: string[];
  kubernetes_users?: string[];
  rules?: { resources: string[]; verbs: string[] }[];
}

export interface RoleOptions {
  max_session_ttl?: string;
  /** exec and attach on the clusters this role allows must be recorded: unrecordable ones (SPDY) are refused. */
  require_session_recording?: boolean;
}

export interface RoleV7 {
  kind: 'role';
  version: 'v7';
  metadata: { name: string; description?: string; labels?: Record<string, string> };
  spec: { allow: RoleConditions; deny?: RoleConditions; options?: RoleOptions };
}

/** The flat spec kport stored before roles took Teleport's v7 shape; still read (src/roles/load.ts). */
export interface FlatRoleSpec {
  kubernetes_labels: LabelSelector;
  kubernetes_groups: string[];
  kubernetes_users: string[];
}

/** A role in the flat shape of the config's `roles:` (src/config/schema.ts), which reads as a v7 role's allow side. */
export interface FlatRole extends FlatRoleSpec {
  name: string;
}

/** A stored role, in either shape: read it through readStoredRole. */
export type Role = Resource<RoleV7['spec'] | FlatRoleSpec>;
export type User = Resource<{ roles: string[] }>;
