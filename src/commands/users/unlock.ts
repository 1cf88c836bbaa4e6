import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const usersUnlock: CommandDef = {
  path: ['users', 'unlock'],
  summary: 'Lift a lock set with kport users lock (kport get lock lists them)',
  examples: ['kport users unlock alice'],
  args: ['<name>'],
  async run({ args, ctx, session }) {
    const { usersService } = await import('../../client/users.ts');
    await (await usersService(session)).unlock(args[0]!);
    ctx.stdout.write(`User ${printable(args[0]!)} is unlocked.\n`);
  },
};
