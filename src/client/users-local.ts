import { userInfo } from 'node:os';
import { UserError } from '../core/errors.ts';
import { terminalSafeJson } from '../core/output.ts';
import type { Session } from '../core/session.ts';
import type { UsersService } from './users.ts';

/**
 * `kport users ...` on the server host, with the server's config: the server's own people service
 * on the store, audited as the server host's admin (the OS login name, from "local").
 */
export async function localUsers(session: Session): Promise<UsersService> {
  const [backend, config, people, { ServerAudit }] = await Promise.all([session.backend(), session.config(), import('../people/users.ts'), import('../server/audit.ts')]);
  const { ctx } = session;
  const audit = new ServerAudit(backend, { retentionMs: config.auth_service?.audit_retention, log: (line) => ctx.logger.debug(terminalSafeJson(line)), now: ctx.now });
  const actor = { audit, user: `${userInfo().username} (server host)`, remote_addr: 'local' };
  return {
    add: async (name, roles, inviteTtlMs) => {
      const added = await people.addUser(backend, { name, roles, ...(inviteTtlMs !== undefined && { inviteTtlMs }), configRoles: config.roles }, ctx.now(), actor);
      return { user: added.user, invite: added.invite, invite_expires: added.expires };
    },
    ls: async () => (await people.listUsers(backend, ctx.now())).map((u) => ({ ...u, created: u.created ?? '' })),
    rm: async (name) => {
      if (!(await people.removeUser(backend, name, actor))) throw new UserError(`There is no user ${name}: see kport users ls.`);
    },
    lock: async (name, opts) => void (await people.lockUser(backend, { name, ...opts }, ctx.now(), actor)),
    unlock: async (name) => {
      if (!(await people.unlockUser(backend, name, ctx.now(), actor))) throw new UserError(`User ${name} is not locked: see kport users ls.`);
    },
    server: async () => {
      const { serverInfo } = await import('../commands/tokens/add.ts');
      const info = await serverInfo(backend, config);
      return info && { proxy: info.address, pin: info.pin };
    },
  };
}
