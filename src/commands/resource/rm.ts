import { UserError, UsageError } from '../../core/errors.ts';
import { parseRef } from './registry.ts';
import { resourceKey } from '../../resources/resource.ts';
import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const rm: CommandDef = {
  path: ['rm'],
  summary: 'Delete a resource, such as kube_cluster/NAME',
  examples: ['kport rm kube_cluster/lab-cluster', 'kport rm role/dev'],
  args: ['<kind/name>'],
  async run({ args, ctx, session }) {
    const { kind, name } = parseRef(args[0]!);
    if (!name) throw new UsageError(`Name the resource to delete: kport rm ${kind.kind}/NAME.`);
    const backend = await session.backend();
    if (kind.kind === 'agent') {
      // An agent is more than its record: its heartbeats, its leadership and an audit event go with it.
      const { removeAgent } = await import('../agents/rm.ts');
      if (!(await removeAgent(session, name))) throw new UserError(`agent "${name}" not found: see \`kport get agent\` for what exists.`);
      return void ctx.stdout.write(`agent "${name}" has been deleted.\n`);
    }
    if (kind.kind === 'user') {
      // A person is more than their record: the claim on their name, their password, TOTP and invites go with it.
      const { usersService } = await import('../../client/users.ts');
      await (await usersService(session)).rm(name);
      return void ctx.stdout.write(`user "${printable(name)}" has been deleted.\n`);
    }
    const found = await kind.find(backend, name);
    if (!found || !(await backend.delete(resourceKey(kind.kind, found.metadata.name), found.metadata.revision))) {
      throw new UserError(`${kind.kind} "${name}" not found: see \`kport get ${kind.kind}\` for what exists.`);
    }
    ctx.stdout.write(`${kind.kind} "${printable(found.metadata.name)}" has been deleted.\n`);
  },
};
