import type { Resource } from './resource.ts';

export const TOKEN = 'token';

/** A join token (v2). Only the SHA-256 of the secret is stored; the name is derived from it. */
export interface TokenSpec {
  roles: string[];
  /** hex SHA-256 of the secret */
  hash: string;
  /** Joins left (`tokens add --uses N`); absent: reusable until it expires, as in Teleport. */
  uses_remaining?: number;
}

export type Token = Resource<TokenSpec>;
