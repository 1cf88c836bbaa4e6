import type { Session } from '../commands/session.ts';
import type { PersonClient } from './person.ts';

export interface UserSummary {
  name: string;
  roles: string[];
  auth: string;
  locked?: { until?: string; message?: string };
  created: string;
}

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

/** /v1/users with the person's certificate (docs/people.md); the server decides by their current roles. */
export function remoteUsers(person: PersonClient): UsersService {
  const call = <T>(body: Record<string, unknown>) => person.call<T>('/v1/users', body);
  return {
    add: (name, roles, inviteTtlMs) => call<InviteIssued>({ op: 'add', name, roles, ...(inviteTtlMs !== undefined && { invite_ttl_ms: inviteTtlMs }) }),
    ls: async () => (await call<{ users: UserSummary[] }>({ op: 'ls' })).users,
    rm: async (name) => void (await call({ op: 'rm', name })),
    update: (name, change) => call({ op: 'update', name, ...(change.set && { set_roles: change.set }), ...(change.add && { add_roles: change.add }), ...(change.remove && { remove_roles: change.remove }) }),
    reset: (name, inviteTtlMs) => call<InviteIssued>({ op: 'reset', name, ...(inviteTtlMs !== undefined && { invite_ttl_ms: inviteTtlMs }) }),
    lock: (name, opts) => call<{ user_exists?: boolean }>({ op: 'lock', name, ...(opts.ttlMs !== undefined && { ttl_ms: opts.ttlMs }), ...(opts.message !== undefined && { message: opts.message }) }),
    unlock: async (name) => void (await call({ op: 'unlock', name })),
    server: async () => ({ proxy: person.where.profile.proxy, pin: person.where.profile.ca_pin }),
  };
}

/** Through the server when commands run through one (Session.where), else the people service on the local store. */
export async function usersService(session: Session): Promise<UsersService> {
  const person = await session.person();
  if (person) return remoteUsers(person);
  const { localUsers } = await import('./users-local.ts');
  return localUsers(session);
}
