import { UsageError } from '../../core/errors.ts';
import { printable, serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

const roleList = (value: unknown, flag: string): string[] | undefined => {
  if (value === undefined) return undefined;
  const roles = [
    ...new Set(
      String(value)
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean),
    ),
  ];
  if (roles.length === 0) throw new UsageError(`${flag} names no role: for example ${flag} auditor.`);
  return roles;
};

export const usersUpdate: CommandDef = {
  path: ['users', 'update'],
  summary: "Change a person's roles: their next call, and their open sessions, are decided by the new ones",
  examples: [
    'kport users update alice --set-roles access,auditor',
    'kport users update alice --add-roles auditor',
    'kport users update alice --remove-roles editor',
  ],
  args: ['<name>'],
  options: [
    { flags: '--set-roles <roles>', description: 'replace the roles with these (comma-separated, each must exist)' },
    { flags: '--add-roles <roles>', description: 'add these roles (comma-separated, each must exist)' },
    { flags: '--remove-roles <roles>', description: 'take these roles away' },
  ],
  async run({ args, opts, ctx, session }) {
    const name = args[0]!;
    const set = roleList(opts.setRoles, '--set-roles');
    const add = roleList(opts.addRoles, '--add-roles');
    const remove = roleList(opts.removeRoles, '--remove-roles');
    if (set && (add || remove)) throw new UsageError('--set-roles replaces every role: pass it alone, or --add-roles and --remove-roles instead.');
    if (!set && !add && !remove) throw new UsageError(`Say what changes: kport users update ${name} --set-roles R,.. (or --add-roles / --remove-roles).`);
    const { usersService } = await import('../../client/users.ts');
    const updated = await (await usersService(session)).update(name, { ...(set && { set }), ...(add && { add }), ...(remove && { remove }) });
    if (session.format !== 'text') return void ctx.stdout.write(serialize(updated, session.format));
    ctx.stdout.write(
      `User ${printable(updated.user)} now has role${updated.roles.length === 1 ? '' : 's'} ${printable(updated.roles.join(', '))}: their next call, and what they hold open, are decided by ${updated.roles.length === 1 ? 'it' : 'them'}.\n`,
    );
  },
};
