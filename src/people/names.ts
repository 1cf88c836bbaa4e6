// User names are unique whatever their case: `admin`, `Admin` and `ADMIN` would be three people
// in the store but one in the audit trail, a lock or a conversation. Each new user record is
// written in one transaction with a claim on its folded name, so two records that differ only in
// case cannot be created even at the same moment; stores from before the claims are searched too.
import type { Backend, Item } from '../backend/backend.ts';
import { resourceKey } from '../resources/resource.ts';
import { USER } from '../resources/role.ts';
import { listResources } from '../resources/store.ts';
import { getUser, type PersonUser } from './store.ts';

/** Where the claims live, out of every person's reach (the gate, src/server/auth/gate.ts, reaches only the kinds of src/resources/kinds.ts). */
export const USER_NAMES = '/names/users/';

/** The form two names share when they differ only in case (names are ASCII: resource.ts NAME_PATTERN). */
export function foldName(name: string): string {
  return name.toLowerCase();
}

export const nameClaimKey = (name: string) => `${USER_NAMES}${foldName(name)}`;

/** Who holds a name whatever its case: the record (absent when none), the claim (to write at its revision), and any other records of the same folded name a store from before the claims keeps. */
export interface NameHolder {
  user?: PersonUser;
  claim?: Item;
  others: string[];
}

/**
 * The user holding `name` in any case. Through its claim when there is one; otherwise (a name
 * first used before the claims, or never) by listing the users, the exact name first.
 */
export async function nameHolder(backend: Backend, name: string): Promise<NameHolder> {
  const claim = await backend.get(nameClaimKey(name));
  if (claim) {
    const user = await getUser(backend, claim.value);
    if (user) return { user, claim, others: [] };
  }
  const folded = foldName(name);
  const same = (await listResources<PersonUser>(backend, USER)).filter((u) => foldName(u.metadata.name) === folded);
  const user = same.find((u) => u.metadata.name === name) ?? same[0];
  return { ...(user && { user }), ...(claim && { claim }), others: same.filter((u) => u !== user).map((u) => u.metadata.name) };
}

/** The claim's write in the transaction that creates or renews `name`'s record: at the revision read, with the record's TTL. */
export function claimOp(holder: NameHolder, name: string, ttlMs?: number) {
  return { key: nameClaimKey(name), revision: holder.claim?.revision ?? 0, value: name, ...(ttlMs !== undefined && { ttlMs }) };
}

/** Creates `name`'s record (`value`) with the claim on its name, or neither: false when one was taken meanwhile. */
export function createClaimed(backend: Backend, holder: NameHolder, name: string, value: string): Promise<boolean> {
  return backend.transact([{ key: resourceKey(USER, name), revision: 0, value }, claimOp(holder, name)]);
}

/** Drops `name`'s claim with its record, unless it names another record (a store from before the claims may hold both admin and Admin). */
export async function dropNameClaim(backend: Backend, name: string): Promise<void> {
  const claim = await backend.get(nameClaimKey(name));
  if (claim && claim.value === name) await backend.delete(claim.key, claim.revision);
}

/** The refusal's sentence for a name another record holds in another case. */
export function sameNameProblem(holder: string): string {
  return `a user named ${holder} exists, and user names differ in more than case`;
}
