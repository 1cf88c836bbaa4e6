import type { Resource } from './resource.ts';

export const TOKEN = 'token';

/**
 * A join token (v2). The secret is never stored: only a salted scrypt of it; the name is random,
 * so neither the name (shown in `tokens ls`, `agents ls`, the audit) nor the store lets anyone
 * check a guessed secret cheaply.
 */
export interface TokenSpec {
  roles: string[];
  /** `scrypt$N$r$p$<salt>$<hash>`, base64url, with a salt of its own. */
  verifier?: string;
  /** Made with `--value`: the secret carries no id, so joins check it by trying these tokens. */
  chosen?: boolean;
  /** hex SHA-256 of the secret, from kport before verifiers; such a token is named from it. */
  hash?: string;
  /** Joins left (`tokens add --uses N`); absent: reusable until it expires, as in Teleport. */
  uses_remaining?: number;
}

export type Token = Resource<TokenSpec>;
