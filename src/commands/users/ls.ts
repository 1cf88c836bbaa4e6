import { formatTime, renderTable, serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const usersLs: CommandDef = {
  path: ['users', 'ls'],
  summary: 'List people: name, roles, how they log in, locks',
  examples: ['kport users ls', 'kport users ls -o json'],
  async run({ ctx, session }) {
    const { usersService } = await import('../../client/users.ts');
    const users = (await (await usersService(session)).ls()).sort((a, b) => a.name.localeCompare(b.name));
    if (session.format !== 'text')
      return void ctx.stdout.write(
        serialize(
          users.map((u) => ({ name: u.name, roles: u.roles, auth: u.auth, locked: u.locked ?? null, created: u.created })),
          session.format,
        ),
      );
    if (users.length === 0 && ctx.stdoutIsTTY) return void ctx.stderr.write('No users yet: add one with `kport users add NAME --roles access`.\n');
    const locked = (l: (typeof users)[number]['locked']) =>
      l ? `locked${l.until ? ` until ${formatTime(l.until, ctx.stdoutIsTTY)}` : ''}${l.message ? `: ${l.message}` : ''}` : '';
    ctx.stdout.write(
      renderTable(
        ['Name', 'Roles', 'Auth', 'Locked', 'Created'],
        users.map((u) => [u.name, u.roles.join(','), u.auth, locked(u.locked), formatTime(u.created, ctx.stdoutIsTTY)]),
        { tty: ctx.stdoutIsTTY },
      ),
    );
  },
};
