import { routes, type RequestOf, type ResponseOf, type Routes } from '../api/routes.ts';
import type { Invocation } from './invocation.ts';
import { notKportServer } from './server-client.ts';
import type { PersonClient } from './person.ts';
import type { UsersService } from './users-service.ts';

/** /v1/users with the person's certificate (docs/people.md); the server decides by their current roles. */
export function remoteUsers(person: PersonClient): UsersService {
  const call = (body: RequestOf<Routes['users']>) => person.call(routes.users, body);
  /** The fields this op answers with; a server that leaves one out is no kport server of this version. */
  const needs = <K extends keyof ResponseOf<Routes['users']>>(answer: ResponseOf<Routes['users']>, ...keys: K[]) => {
    const missing = keys.filter((k) => answer[k] === undefined);
    if (missing.length > 0) throw notKportServer(person.client.address, `it answered ${routes.users.path} without ${missing.join(', ')}`);
    return answer as ResponseOf<Routes['users']> & { [P in K]-?: NonNullable<ResponseOf<Routes['users']>[P]> };
  };
  return {
    add: async (name, roles, inviteTtlMs) =>
      needs(await call({ op: 'add', name, roles, ...(inviteTtlMs !== undefined && { invite_ttl_ms: inviteTtlMs }) }), 'user', 'invite', 'invite_expires'),
    ls: async () => needs(await call({ op: 'ls' }), 'users').users,
    rm: async (name) => void (await call({ op: 'rm', name })),
    update: async (name, change) =>
      needs(
        await call({
          op: 'update',
          name,
          ...(change.set && { set_roles: change.set }),
          ...(change.add && { add_roles: change.add }),
          ...(change.remove && { remove_roles: change.remove }),
        }),
        'user',
        'roles',
      ),
    reset: async (name, inviteTtlMs) =>
      needs(await call({ op: 'reset', name, ...(inviteTtlMs !== undefined && { invite_ttl_ms: inviteTtlMs }) }), 'user', 'invite', 'invite_expires'),
    lock: async (name, opts) =>
      call({ op: 'lock', name, ...(opts.ttlMs !== undefined && { ttl_ms: opts.ttlMs }), ...(opts.message !== undefined && { message: opts.message }) }),
    unlock: async (name) => void (await call({ op: 'unlock', name })),
    server: async () => ({ proxy: person.where.profile.proxy, pin: person.where.profile.ca_pin }),
  };
}

/** Through the server when commands run through one (Session.where), else the people service on the local store. */
export async function usersService(session: Invocation): Promise<UsersService> {
  const person = await session.person();
  if (person) return remoteUsers(person);
  const { localUsers } = await import('./users-local.ts');
  return localUsers(session);
}
