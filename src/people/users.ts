import { randomUUID } from 'node:crypto';
import type { Backend } from '../backend/backend.ts';
import type { RoleConfig } from '../config/schema.ts';
import type { AuditEventSpec } from '../resources/audit-event.ts';
import { nameProblem, resourceKey } from '../resources/resource.ts';
import { USER } from '../resources/role.ts';
import { encodeResource, listResources } from '../resources/store.ts';
import { loadRoleDefinitions } from '../roles/load.ts';
import { reservedUserNameProblem } from '../roles/role.ts';
import { PeopleError } from './errors.ts';
import { createInvite, dropInvites, inviteTtl } from './invites.ts';
import { claimOp, dropNameClaim, nameHolder, sameNameProblem } from './names.ts';
import { LOCK, activeLock, lockKey, secretsKey, type Lock, type PersonUser, type UserAuth } from './store.ts';

/** Who changes the people of the cluster, for the audit trail: an editor's certificate at the server, or the admin on the server host. */
export interface Actor {
  audit?: { record(spec: Omit<AuditEventSpec, 'time'>): Promise<void> };
  user?: string;
  remote_addr?: string;
}

const MAX_ROLES = 32;
const MAX_LOCK_MESSAGE = 256;

async function audited(actor: Actor | undefined, type: string, action: string): Promise<void> {
  await actor?.audit?.record({ type, outcome: 'allowed', action, ...(actor.user && { user: actor.user }), ...(actor.remote_addr && { remote_addr: actor.remote_addr }) });
}

function checkName(name: unknown): string {
  const problem = typeof name === 'string' ? nameProblem(name) : 'a user name is a string';
  if (problem) throw new PeopleError(400, 'bad_request', `user name ${JSON.stringify(name)} is refused: ${problem}.`);
  return name as string;
}

/** Refuses unless every role exists (built-in, the config's `roles:`, or a role resource). */
export async function checkRoles(backend: Backend, roles: unknown, configRoles: RoleConfig[] = []): Promise<string[]> {
  if (!Array.isArray(roles) || roles.length === 0 || roles.length > MAX_ROLES || !roles.every((r) => typeof r === 'string')) {
    throw new PeopleError(400, 'bad_request', `a user needs 1 to ${MAX_ROLES} roles: pass --roles editor,access,... (see kport get role).`);
  }
  const known = await loadRoleDefinitions(backend, configRoles);
  const missing = roles.filter((r) => !known.has(r));
  if (missing.length > 0) throw new PeopleError(400, 'unknown_role', `no role named ${missing.join(', ')}: create it first (kport create -f role.yaml) or use one of ${[...known.keys()].sort().join(', ')}.`);
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
  if (reserved) throw new PeopleError(400, 'bad_request', `user name ${name} is refused: ${reserved}.`);
  const roles = await checkRoles(backend, input.roles, input.configRoles);
  const ttl = inviteTtl(input.inviteTtlMs);
  const user: PersonUser = { kind: USER, version: 'v2', metadata: { name }, spec: { roles, auth: 'local', created: now.toISOString(), uid: randomUUID() } };
  const exists = new PeopleError(409, 'user_exists', `user ${name} already exists: remove it first (kport users rm ${name}) or pick another name.`);
  const holder = await nameHolder(backend, name);
  const held = holder.user?.metadata.name;
  if (held === name) throw exists;
  if (held) throw new PeopleError(409, 'user_exists', `user ${name} is refused: ${sameNameProblem(held)}: pick another name, or remove ${held} first (kport users rm ${held}).`);
  // The record and the claim on its name in any case, or neither: of two adds of admin and Admin at once, one fails.
  if (!(await backend.transact([{ key: resourceKey(USER, name), revision: 0, value: encodeResource(user) }, claimOp(holder, name)]))) throw exists;
  const { invite, expires } = await createInvite(backend, name, ttl, now.getTime());
  await audited(actor, 'user.add', `users add ${name} --roles ${roles.join(',')}`);
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
  const [users, locks] = await Promise.all([listResources<PersonUser>(backend, USER), listResources<Lock>(backend, LOCK)]);
  const lockOf = new Map(locks.filter((l) => !l.metadata.expires || Date.parse(l.metadata.expires) > now.getTime()).map((l) => [l.metadata.name, l]));
  return users
    .map((u) => {
      const lock = lockOf.get(u.metadata.name);
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

/** Removes the user, their secrets, invites and lock: their next call is refused. False when there was no such user. */
export async function removeUser(backend: Backend, name: string, actor?: Actor): Promise<boolean> {
  checkName(name);
  const removed = await backend.delete(resourceKey(USER, name));
  await dropNameClaim(backend, name);
  await backend.delete(secretsKey(name));
  await backend.delete(lockKey(name));
  await dropInvites(backend, name);
  if (removed) await audited(actor, 'user.remove', `users rm ${name}`);
  return removed;
}

/** Locks the user (for `ttlMs`, or until unlocked): their very next call is refused, whatever certificate they hold. */
export async function lockUser(backend: Backend, input: { name: string; ttlMs?: number; message?: string }, now: Date, actor?: Actor): Promise<{ until?: string }> {
  const name = checkName(input.name);
  if (input.ttlMs !== undefined && !(Number.isFinite(input.ttlMs) && input.ttlMs >= 1000)) throw new PeopleError(400, 'bad_request', 'a lock lasts at least 1 s: pass --ttl 1h, or no --ttl to lock until kport users unlock.');
  if (input.message !== undefined && (typeof input.message !== 'string' || input.message.length > MAX_LOCK_MESSAGE || /[\u0000-\u001f\u007f]/.test(input.message))) {
    throw new PeopleError(400, 'bad_request', `a lock message is one line of at most ${MAX_LOCK_MESSAGE} characters.`);
  }
  if (!(await backend.get(resourceKey(USER, name)))) throw new PeopleError(404, 'no_such_user', `there is no user ${name}: see kport users ls.`);
  const until = input.ttlMs === undefined ? undefined : new Date(now.getTime() + input.ttlMs).toISOString();
  const lock: Lock = { kind: LOCK, version: 'v2', metadata: { name, ...(until && { expires: until }) }, spec: { created: now.toISOString(), ...(input.message && { message: input.message }) } };
  await backend.put(lockKey(name), JSON.stringify(lock), input.ttlMs === undefined ? {} : { ttlMs: input.ttlMs });
  await audited(actor, 'user.lock', `users lock ${name}${until ? ` until ${until}` : ''}`);
  return until ? { until } : {};
}

export async function unlockUser(backend: Backend, name: string, now: Date, actor?: Actor): Promise<boolean> {
  checkName(name);
  const was = await activeLock(backend, name, now.getTime());
  const removed = await backend.delete(lockKey(name));
  if (removed) await audited(actor, 'user.unlock', `users unlock ${name}`);
  return removed && was !== undefined;
}
