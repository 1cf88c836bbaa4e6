import { z } from 'zod';

export const NAME_PATTERN = /^[a-zA-Z0-9._-]+$/;

export const metadataSchema = z.strictObject({
  name: z.string().regex(NAME_PATTERN, 'names may contain only letters, digits, ".", "_" and "-"'),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  expires: z.string().datetime({ offset: true }).optional(),
  revision: z.number().optional(),
});

export type Metadata = z.output<typeof metadataSchema>;

export interface Resource<Spec = unknown> {
  kind: string;
  version: string;
  metadata: Metadata;
  spec: Spec;
}

export function resourceKey(kind: string, name: string): string {
  return `/resources/${kind}/${name}`;
}

export function kindPrefix(kind: string): string {
  return `/resources/${kind}/`;
}
