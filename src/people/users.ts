import { randomUUID } from 'node:crypto';
import { ApiError } from '../api/errors.ts';
import type { Backend } from '../backend/backend.ts';
import type { RoleConfig } from '../config/schema.ts';
import { nameProblem, resourceKey } from '../resources/resource.ts';
import { USER } from '../resources/role.ts';
import { encodeResource, listResources } from '../resources/store.ts';
import { loadRoleDefinitions } from '../roles/load.ts';
import { reservedUserNameProblem } from '../resources/builtin-roles.ts';
import { audited, type Actor } from './actor.ts';
import { createInvite, dropInvites, inviteTtl } from './invites.ts';
import { listLocks } from './locks.ts';
import { createClaimed, dropNameClaim, nameHolder, sameNameProblem } from './names.ts';
import { getUser, secretsKey, type PersonUser, type UserAuth } from './store.ts';

export type { Actor } from './actor.ts';
export { lockUser, unlockUser } from './locks.ts';

const MAX_ROLES = 32;

function checkName(name: unknown): string {
  const problem = typeof name === 'string' ? nameProblem(name) : 'a user name is a string';
  if (problem) throw new ApiError('bad_request', `user name ${JSON.stringify(name)} is refused: ${problem}.`);
  return name as string;
}

/** Refuses unless every role exists (built-in, the config's `roles:`, or a role resource). */
export async function checkRoles(backend: Backend, roles: unknown, configRoles: RoleConfig[] = []): Promise<string[]> {
  if (!Array.isArray(roles) || roles.length === 0 || roles.length > MAX_ROLES || !roles.every((r) => typeof r === 'string')) {
    throw new ApiError('bad_request', `a user needs 1 to ${MAX_ROLES} roles: pass --roles editor,access,... (see kport get role).`);
  }
  const known = await loadRoleDefinitions(backend, configRoles);
  const missing = roles.filter((r) => !known.has(r));
  if (missing.length > 0)
    throw new ApiError(
      'unknown_role',
      `no role named ${missing.join(', ')}: create it first (kport create -f role.yaml) or use one of ${[...known.keys()].sort().join(', ')}.`,
    );
  return [...new Set(roles as string[])];
}

/** A local user and a one-time invite (default 1 h, at most 48 h) to set their password and TOTP with. */
export async function addUser(
  backend: Backend,
  input: { name: string; roles: string[]; inviteTtlMs?: number; configRoles?: RoleConfig[] },
  now: Date,
  actor?: Actor,
): Promise<{ user: string; invite: string; expires: string }> {
  const name = checkName(input.name);
  const reserved = reservedUserNameProblem(name);
  if (reserved) throw new ApiError('bad_request', `user name ${name} is refused: ${reserved}.`);
  const roles = await checkRoles(backend, input.roles, input.configRoles);
  const ttl = inviteTtl(input.inviteTtlMs);
  const user: PersonUser = { kind: USER, version: 'v2', metadata: { name }, spec: { roles, auth: 'local', created: now.toISOString(), uid: randomUUID() } };
  const exists = new ApiError('user_exists', `user ${name} already exists: remove it first (kport users rm ${name}) or pick another name.`);
  const holder = await nameHolder(backend, name);
  const held = holder.user?.metadata.name;
  if (held === name) throw exists;
  if (held)
    throw new ApiError(
      'user_exists',
      `user ${name} is refused: ${sameNameProblem(held)}: pick another name, or remove ${held} first (kport users rm ${held}).`,
    );
  // The record and the claim on its name in any case, or neither: of two adds of admin and Admin at once, one fails.
  if (!(await createClaimed(backend, holder, name, encodeResource(user)))) throw exists;
  const { invite, expires } = await createInvite(backend, name, ttl, now.getTime());
  await audited(actor, 'user.add', `users add ${name} --roles ${roles.join(',')}`);
  return { user: name, invite, expires };
}

export interface RoleChange {
  set?: string[];
  add?: string[];
  remove?: string[];
}

/**
 * Changes a user's roles and nothing else: their password, TOTP, uid (so their certificates) and
 * lock stay. Every call decides by the roles in the store, so the change counts at their next call,
 * and the server decides their open Kubernetes requests again at once (PersonRevocation).
 */
export async function updateUser(
  backend: Backend,
  input: { name: string; change: RoleChange; configRoles?: RoleConfig[] },
  now: Date,
  actor?: Actor,
): Promise<{ user: string; roles: string[] }> {
  const name = checkName(input.name);
  const { set, add = [], remove = [] } = input.change;
  const lists = [set, add, remove].filter((l) => l !== undefined);
  if (
    !lists.every((l) => Array.isArray(l) && l.every((r) => typeof r === 'string')) ||
    (set !== undefined && (add.length > 0 || remove.length > 0)) ||
    (set === undefined && add.length + remove.length === 0)
  ) {
    throw new ApiError(
      'bad_request',
      'pass --set-roles R,.. alone, or --add-roles and --remove-roles: for example kport users update alice --add-roles auditor.',
    );
  }
  // Compare-and-swap on the record read: two editors changing one user's roles at once both count.
  for (;;) {
    const user = await getUser(backend, name);
    if (!user || user.metadata.revision === undefined) throw new ApiError('no_such_user', `there is no user ${name}: see kport users ls.`);
    if (user.spec.auth === 'oidc') {
      throw new ApiError(
        'oidc_user',
        `${name} logs in through OIDC, whose login sets their roles from the provider's claims each time: change auth_service.authentication.claims_to_roles, or the person's groups at the provider.`,
      );
    }
    const wanted = set ?? [...user.spec.roles.filter((r) => !remove.includes(r)), ...add];
    if (wanted.length === 0)
      throw new ApiError('bad_request', `that would leave ${name} with no role: give them another (--add-roles), or remove the user (kport users rm ${name}).`);
    const roles = await checkRoles(backend, wanted, input.configRoles);
    const updated: PersonUser = { ...user, spec: { ...user.spec, roles } };
    const ttlMs = user.metadata.expires ? Math.max(1, Date.parse(user.metadata.expires) - now.getTime()) : undefined;
    if (await backend.compareAndSwap(resourceKey(USER, name), encodeResource(updated), user.metadata.revision, ttlMs === undefined ? {} : { ttlMs })) {
      await audited(actor, 'user.update', `users update ${name} --set-roles ${roles.join(',')} (was ${user.spec.roles.join(',')})`);
      return { user: name, roles };
    }
  }
}

/**
 * Teleport's `tctl users reset`: a new one-time invite; the password and TOTP are gone at once and
 * the user record gets a new uid, so every certificate issued before is refused at its next call.
 * Roles and lock stay.
 */
export async function resetUser(
  backend: Backend,
  input: { name: string; inviteTtlMs?: number },
  now: Date,
  actor?: Actor,
): Promise<{ user: string; invite: string; expires: string }> {
  const name = checkName(input.name);
  const ttl = inviteTtl(input.inviteTtlMs);
  for (;;) {
    const user = await getUser(backend, name);
    if (!user || user.metadata.revision === undefined) throw new ApiError('no_such_user', `there is no user ${name}: see kport users ls.`);
    if (user.spec.auth === 'oidc')
      throw new ApiError('oidc_user', `${name} logs in through OIDC and has no kport password to reset: to cut them off, kport users lock ${name}.`);
    const reset: PersonUser = { ...user, spec: { ...user.spec, uid: randomUUID() } };
    if (await backend.compareAndSwap(resourceKey(USER, name), encodeResource(reset), user.metadata.revision)) break;
  }
  await backend.delete(secretsKey(name));
  await dropInvites(backend, name);
  const { invite, expires } = await createInvite(backend, name, ttl, now.getTime());
  await audited(actor, 'user.reset', `users reset ${name}`);
  return { user: name, invite, expires };
}

export interface UserListing {
  name: string;
  roles: string[];
  auth: UserAuth;
  locked?: { until?: string; message?: string };
  created?: string;
}

export async function listUsers(backend: Backend, now: Date): Promise<UserListing[]> {
  const [users, locks] = await Promise.all([listResources<PersonUser>(backend, USER), listLocks(backend, now)]);
  const lockOf = new Map(locks.map((l) => [l.metadata.name.toLowerCase(), l]));
  return users
    .map((u) => {
      const lock = lockOf.get(u.metadata.name.toLowerCase());
      return {
        name: u.metadata.name,
        roles: u.spec.roles,
        auth: u.spec.auth ?? 'local',
        ...(lock && { locked: { ...(lock.metadata.expires && { until: lock.metadata.expires }), ...(lock.spec.message && { message: lock.spec.message }) } }),
        ...(u.spec.created && { created: u.spec.created }),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes the user, their secrets and invites: their next call is refused. Their lock stays (src/people/locks.ts). False when there was no such user. */
export async function removeUser(backend: Backend, name: string, actor?: Actor): Promise<boolean> {
  checkName(name);
  const removed = await backend.delete(resourceKey(USER, name));
  await dropNameClaim(backend, name);
  await backend.delete(secretsKey(name));
  await dropInvites(backend, name);
  if (removed) await audited(actor, 'user.remove', `users rm ${name}`);
  return removed;
}
