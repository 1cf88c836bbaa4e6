import { z } from 'zod';
import { labelSelector } from '../config/schema.ts';
import { metadataSchema, type Resource } from './resource.ts';

export const ROLE = 'role';
export const USER = 'user';

export const roleSpecSchema = z.strictObject({
  kubernetes_labels: labelSelector.default({}),
  kubernetes_groups: z.array(z.string()).default([]),
  kubernetes_users: z.array(z.string()).default([]),
});

export const roleSchema = z.strictObject({
  kind: z.literal(ROLE),
  version: z.enum(['v1', 'v7']).default('v1'),
  metadata: metadataSchema,
  spec: roleSpecSchema,
});

export const userSchema = z.strictObject({
  kind: z.literal(USER),
  version: z.literal('v2').default('v2'),
  metadata: metadataSchema,
  spec: z.strictObject({ roles: z.array(z.string()).default([]) }),
});

export type RoleSpec = z.output<typeof roleSpecSchema>;
export type Role = Resource<RoleSpec>;
export type User = Resource<{ roles: string[] }>;
