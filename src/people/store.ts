// Where the people service keeps what it knows (docs/people.md "Stored data"): the user records and
// locks as resources anyone with the right role may list, and secrets and invites under prefixes
// no person's call ever reaches (src/server/auth/gate.ts).
import type { Backend, Item } from '../backend/backend.ts';
import type { Sealed } from '../pki/seal.ts';
import type { Resource } from '../resources/resource.ts';
import { USER } from '../resources/role.ts';
import { getResource } from '../resources/store.ts';

import type { OidcSubject } from './locks.ts';
export { LOCK, activeLock, lockKey, type Lock, type OidcSubject } from './locks.ts';

export const USER_SECRETS = '/secrets/users/';
export const INVITES = '/invites/';

export type UserAuth = 'local' | 'oidc';
/**
 * `uid` is random per user record: certificates carry it, so one issued to an earlier user of the
 * same name is refused. `oidc` binds an OIDC user to the account that first logged in as it.
 */
export type PersonUser = Resource<{ roles: string[]; auth?: UserAuth; created?: string; uid?: string; oidc?: OidcSubject }>;

/** What a local user logs in with: never in a resource, never in clear. */
export interface UserSecrets {
  /** scrypt verifier (src/people/passwords.ts). */
  password: string;
  /** The TOTP secret, sealed with the server's seal key, bound to the user's name. */
  totp: Sealed;
  /** The time step of the last code accepted: a code counts once. */
  totp_last_step?: number;
}

/** A pending invite, at INVITES + sha256(code): the code itself is known only to whoever was given it. */
export interface Invite {
  user: string;
  expires: string;
  /** Made at invite/begin and kept until finish, so a second begin shows the same secret. */
  totp?: Sealed;
}

export const secretsKey = (user: string) => `${USER_SECRETS}${user}`;

export function getUser(backend: Backend, name: string): Promise<PersonUser | undefined> {
  return getResource<PersonUser>(backend, USER, name);
}

export async function getSecrets(backend: Backend, user: string): Promise<{ secrets: UserSecrets; item: Item } | undefined> {
  const item = await backend.get(secretsKey(user));
  return item && { secrets: JSON.parse(item.value) as UserSecrets, item };
}

export const totpAad = (user: string) => `totp:${user}`;
