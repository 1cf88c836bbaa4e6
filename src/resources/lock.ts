import type { Resource } from './resource.ts';

export const LOCK = 'lock';

/** The identity an OIDC provider vouches for: the same person whatever name their claims give. */
export interface OidcSubject {
  issuer: string;
  subject: string;
}

/**
 * A lock on a person (src/people/locks.ts). `user`: the name as it was given; `oidc`: the
 * provider's subject of the user record when the lock was set, so a lock can follow that person
 * under another name (activeLock's `oidc`).
 */
export type Lock = Resource<{ user?: string; oidc?: OidcSubject; message?: string; created: string; created_by?: string }>;
