import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const usersRm: CommandDef = {
  path: ['users', 'rm'],
  summary: 'Remove a person: their certificate stops working at their next call',
  examples: ['kport users rm alice'],
  args: ['<name>'],
  async run({ args, ctx, session }) {
    const { usersService } = await import('../../client/users.ts');
    await (await usersService(session)).rm(args[0]!);
    ctx.stdout.write(`User ${printable(args[0]!)} has been removed: their next call is refused.\n`);
  },
};
