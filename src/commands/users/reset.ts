import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';
import { inviteTtlOption, writeInvite } from './add.ts';

export const usersReset: CommandDef = {
  path: ['users', 'reset'],
  summary: "Reset a person's password and authenticator: a new invite, and their certificates stop working",
  examples: ['kport users reset alice', 'kport users reset alice --invite-ttl 24h'],
  args: ['<name>'],
  options: [{ flags: '--invite-ttl <duration>', description: 'how long the invite works (at most 48h)', default: '1h' }],
  async run({ args, opts, ctx, session }) {
    const ttlMs = inviteTtlOption(opts.inviteTtl);
    const { usersService } = await import('../../client/users.ts');
    const users = await usersService(session);
    const issued = await users.reset(args[0]!, ttlMs);
    const headline = `User ${printable(issued.user)} has been reset: their password and authenticator are cleared, and every certificate they hold is refused from their next call.`;
    await writeInvite({ ctx, session, users, issued, json: {}, headline });
  },
};
