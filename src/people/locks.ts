// Locks are records of their own (Teleport's `lock` resource), not a part of the user: a lock
// outlives the user record it was set on, so a person removed with `kport users rm` and coming
// back (added again, or through the OIDC provider, whose logins recreate the record) is still
// locked until the lock ends or `kport users unlock` lifts it.
import type { Backend } from '../backend/backend.ts';
import { ApiError } from '../api/errors.ts';
import { nameProblem, resourceKey, type Resource } from '../resources/resource.ts';
import { LOCK, type Lock, type OidcSubject } from '../resources/lock.ts';
import { USER } from '../resources/role.ts';
import { getResource, listResources } from '../resources/store.ts';
import { audited, type Actor } from './actor.ts';

export { LOCK, type Lock, type OidcSubject };

const MAX_LOCK_MESSAGE = 256;

/** Names are unique whatever their case, so one lock holds for `Alice` and `alice`. */
export const lockKey = (user: string) => resourceKey(LOCK, user.toLowerCase());

/** The OIDC binding (issuer and subject) of a user record, when it has one. */
export function oidcSubjectOf(user: Resource | undefined): OidcSubject | undefined {
  const oidc = (user?.spec as { oidc?: Partial<OidcSubject> } | undefined)?.oidc;
  return typeof oidc?.issuer === 'string' && typeof oidc.subject === 'string' ? { issuer: oidc.issuer, subject: oidc.subject } : undefined;
}

const inForce = (lock: Lock | undefined, now: number): lock is Lock => !!lock && !(lock.metadata.expires && Date.parse(lock.metadata.expires) <= now);

/**
 * The lock in force at `now` on `user` (whatever the case of the name), or, given the subject an
 * OIDC login vouches for, on that person under any name. A lock with a TTL may outlive its expiry
 * in a store that sweeps late, so its own expiry is checked too. Every call checks by name (one
 * read); the subject costs a list of the locks, so it is for logins.
 */
export async function activeLock(backend: Backend, user: string, now: number, oidc?: OidcSubject): Promise<Lock | undefined> {
  const byName = await getResource<Lock>(backend, LOCK, user.toLowerCase());
  if (inForce(byName, now)) return byName;
  // A lock set before names were compared without case is stored under the name as it was typed.
  if (user !== user.toLowerCase()) {
    const legacy = await getResource<Lock>(backend, LOCK, user);
    if (inForce(legacy, now)) return legacy;
  }
  if (!oidc) return undefined;
  return (await listResources<Lock>(backend, LOCK)).find((l) => inForce(l, now) && l.spec.oidc?.issuer === oidc.issuer && l.spec.oidc.subject === oidc.subject);
}

function checkName(name: unknown): string {
  const problem = typeof name === 'string' ? nameProblem(name) : 'a user name is a string';
  if (problem) throw new ApiError('bad_request', `user name ${JSON.stringify(name)} is refused: ${problem}.`);
  return name as string;
}

/**
 * Locks `name` (for `ttlMs`, or until unlocked): the very next call of whoever holds that name is
 * refused, whatever certificate they hold. No user of that name need exist now: the lock waits
 * for one (an OIDC person whose record lapsed with their certificate, one removed and coming back).
 */
export async function lockUser(
  backend: Backend,
  input: { name: string; ttlMs?: number; message?: string },
  now: Date,
  actor?: Actor,
): Promise<{ until?: string; user_exists: boolean }> {
  const name = checkName(input.name);
  if (input.ttlMs !== undefined && !(Number.isFinite(input.ttlMs) && input.ttlMs >= 1000))
    throw new ApiError('bad_request', 'a lock lasts at least 1 s: pass --ttl 1h, or no --ttl to lock until kport users unlock.');
  if (
    input.message !== undefined &&
    (typeof input.message !== 'string' || input.message.length > MAX_LOCK_MESSAGE || /[\u0000-\u001f\u007f]/.test(input.message))
  ) {
    throw new ApiError('bad_request', `a lock message is one line of at most ${MAX_LOCK_MESSAGE} characters.`);
  }
  const user = await findUser(backend, name);
  const oidc = oidcSubjectOf(user);
  const until = input.ttlMs === undefined ? undefined : new Date(now.getTime() + input.ttlMs).toISOString();
  const lock: Lock = {
    kind: LOCK,
    version: 'v2',
    metadata: { name: name.toLowerCase(), ...(until && { expires: until }) },
    spec: {
      user: name,
      ...(oidc && { oidc }),
      created: now.toISOString(),
      ...(input.message && { message: input.message }),
      ...(actor?.user && { created_by: actor.user }),
    },
  };
  await backend.put(lockKey(name), JSON.stringify(lock), input.ttlMs === undefined ? {} : { ttlMs: input.ttlMs });
  await audited(actor, 'user.lock', `users lock ${name}${until ? ` until ${until}` : ''}`);
  return { ...(until && { until }), user_exists: user !== undefined };
}

/** The user record of `name` in any case: exact first (one read), then by listing (a lock is rare). */
async function findUser(backend: Backend, name: string): Promise<Resource | undefined> {
  return (await getResource(backend, USER, name)) ?? (await listResources(backend, USER)).find((u) => u.metadata.name.toLowerCase() === name.toLowerCase());
}

/** Lifts the lock on `name` (any case); false when none was in force. */
export async function unlockUser(backend: Backend, name: string, now: Date, actor?: Actor): Promise<boolean> {
  checkName(name);
  // Also a lock stored under the name as typed, before names were compared without case.
  const held = (await listResources<Lock>(backend, LOCK)).filter((l) => l.metadata.name.toLowerCase() === name.toLowerCase());
  let removed = false;
  for (const lock of held) if (await backend.delete(resourceKey(LOCK, lock.metadata.name))) removed = true;
  if (removed) await audited(actor, 'user.unlock', `users unlock ${name}`);
  return removed && held.some((l) => inForce(l, now.getTime()));
}

/** Every lock in force at `now`, whether or not its user exists. */
export async function listLocks(backend: Backend, now: Date): Promise<Lock[]> {
  return (await listResources<Lock>(backend, LOCK)).filter((l) => inForce(l, now.getTime()));
}
