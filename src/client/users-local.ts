import { UserError } from '../core/errors.ts';
import type { Invocation } from './invocation.ts';
import type { UsersService } from './users-service.ts';

/**
 * `kport users ...` on the server host, with the server's config: the server's own people service
 * on the store, audited as the server host's OS user (src/server/events/host-audit.ts), from "local".
 */
export async function localUsers(session: Invocation): Promise<UsersService> {
  const [{ raw: backend, actor }, config, people] = await Promise.all([session.hostStore(), session.config(), import('../people/users.ts')]);
  const { ctx } = session;
  const invite = (issued: { user: string; invite: string; expires: string }) => ({ user: issued.user, invite: issued.invite, invite_expires: issued.expires });
  return {
    add: async (name, roles, inviteTtlMs) =>
      invite(await people.addUser(backend, { name, roles, ...(inviteTtlMs !== undefined && { inviteTtlMs }), configRoles: config.roles }, ctx.now(), actor)),
    ls: async () => (await people.listUsers(backend, ctx.now())).map((u) => ({ ...u, created: u.created ?? '' })),
    rm: async (name) => {
      if (!(await people.removeUser(backend, name, actor))) throw new UserError(`There is no user ${name}: see kport users ls.`);
    },
    update: (name, change) => people.updateUser(backend, { name, change, configRoles: config.roles }, ctx.now(), actor),
    reset: async (name, inviteTtlMs) => invite(await people.resetUser(backend, { name, ...(inviteTtlMs !== undefined && { inviteTtlMs }) }, ctx.now(), actor)),
    lock: (name, opts) => people.lockUser(backend, { name, ...opts }, ctx.now(), actor),
    unlock: async (name) => {
      if (!(await people.unlockUser(backend, name, ctx.now(), actor))) throw new UserError(`User ${name} is not locked: see kport get lock.`);
    },
    server: async () => {
      const { serverInfo } = await import('../tokens/server-info.ts');
      const info = await serverInfo(backend, config);
      return info && { proxy: info.address, pin: info.pin };
    },
  };
}
