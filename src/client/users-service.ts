import type { UserSummary } from '../api/wire.ts';

// The one interface of `kport users ...` (docs/style.md 20); its two implementations are
// src/client/users.ts (through the server) and src/client/users-local.ts (on the server's host).

/** A change of a user's roles: `set` alone, or `add` and `remove`. */
export interface RoleChange {
  set?: string[];
  add?: string[];
  remove?: string[];
}

export interface InviteIssued {
  user: string;
  invite: string;
  invite_expires: string;
}

/**
 * What `kport users ...` asks of whoever keeps the people: the server through /v1/users with a
 * login profile, or the server's own people service on the store (on the server host).
 */
export interface UsersService {
  add(name: string, roles: string[], inviteTtlMs?: number): Promise<InviteIssued>;
  ls(): Promise<UserSummary[]>;
  rm(name: string): Promise<void>;
  /** The user's roles after the change. */
  update(name: string, change: RoleChange): Promise<{ user: string; roles: string[] }>;
  /** A new invite; the password, TOTP and every certificate of the user stop working. */
  reset(name: string, inviteTtlMs?: number): Promise<InviteIssued>;
  /** `user_exists` false: no user has that name now; the lock waits for one (undefined from a server that does not say). */
  lock(name: string, opts: { ttlMs?: number; message?: string }): Promise<{ user_exists?: boolean }>;
  unlock(name: string): Promise<void>;
  /** Where the person logs in and the CA pin to check: for the `kport login` line users add prints. */
  server(): Promise<{ proxy: string; pin: string } | undefined>;
}
