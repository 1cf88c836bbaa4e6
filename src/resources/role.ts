import type { LabelSelector } from './labels.ts';
import type { Resource } from './resource.ts';

export const ROLE = 'role';
export const USER = 'user';

export interface RoleSpec {
  kubernetes_labels: LabelSelector;
  kubernetes_groups: string[];
  kubernetes_users: string[];
}

export type Role = Resource<RoleSpec>;
export type User = Resource<{ roles: string[] }>;
