export const NAME_PATTERN = /^[a-zA-Z0-9._-]+$/;

export interface Metadata {
  name: string;
  description?: string;
  labels?: Record<string, string>;
  expires?: string;
  revision?: number;
}

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
