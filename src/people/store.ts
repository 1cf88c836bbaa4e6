// Where the people service keeps what it knows (PEOPLE.md "Stored data"): the user records and
// locks as resources anyone with the right role may list, and secrets and invites under prefixes
// no person's call ever reaches (src/server/person-policy.ts).
import type { Backend, Item } from '../backend/backend.ts';
import type { Sealed } from '../pki/seal.ts';
import { resourceKey, type Resource } from '../resources/resource.ts';
import { USER } from '../resources/role.ts';
import { getResource } from '../resources/store.ts';

export const LOCK = 'lock';
export const USER_SECRETS = '/secrets/users/';
export const INVITES = '/invites/';

export type UserAuth = 'local' | 'oidc';
/** Who an OIDC user is at the provider: its `iss` and the `sub` it gave the person, which never changes (OIDC Core 5.7), unlike a name. */
export interface OidcSubject {
  issuer: string;
  subject: string;
}
/**
 * `uid` is random per user record: certificates carry it, so one issued to an earlier user of the
 * same name is refused. `oidc` binds an OIDC user to the account that first logged in as it.
 */
export type PersonUser = Resource<{ roles: string[]; auth?: UserAuth; created?: string; uid?: string; oidc?: OidcSubject }>;
export type Lock = Resource<{ message?: string; created: string }>;

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
export const lockKey = (user: string) => resourceKey(LOCK, user);

export function getUser(backend: Backend, name: string): Promise<PersonUser | undefined> {
  return getResource<PersonUser>(backend, USER, name);
}

export async function getSecrets(backend: Backend, user: string): Promise<{ secrets: UserSecrets; item: Item } | undefined> {
  const item = await backend.get(secretsKey(user));
  return item && { secrets: JSON.parse(item.value) as UserSecrets, item };
}

/** The user's lock when one is in force at `now` (a lock with a TTL may outlive its expiry in a store that sweeps late). */
export async function activeLock(backend: Backend, user: string, now: number): Promise<Lock | undefined> {
  const lock = await getResource<Lock>(backend, LOCK, user);
  if (!lock) return undefined;
  return lock.metadata.expires && Date.parse(lock.metadata.expires) <= now ? undefined : lock;
}

export const totpAad = (user: string) => `totp:${user}`;
