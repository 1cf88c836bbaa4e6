import { parseDuration } from '../../core/duration.ts';
import { UsageError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const usersLock: CommandDef = {
  path: ['users', 'lock'],
  summary: 'Lock a person out at once, even with a valid certificate (until unlocked, or for --ttl); the lock outlives users rm',
  examples: ['kport users lock alice --ttl 1h --message "laptop stolen"', 'kport users lock alice'],
  args: ['<name>'],
  options: [
    { flags: '--ttl <duration>', description: 'how long the lock lasts (default: until kport users unlock)' },
    { flags: '--message <text>', description: 'why: shown to the person when a call is refused' },
  ],
  async run({ args, opts, ctx, session }) {
    const ttlMs = typeof opts.ttl === 'string' ? parseDuration(opts.ttl, '--ttl') : undefined;
    if (ttlMs !== undefined && ttlMs <= 0) throw new UsageError('--ttl must be longer than zero (or left out: locked until kport users unlock).');
    const { usersService } = await import('../../client/users.ts');
    const locked = await (await usersService(session)).lock(args[0]!, {
      ...(ttlMs !== undefined && { ttlMs }),
      ...(typeof opts.message === 'string' && { message: opts.message }),
    });
    const until = ttlMs !== undefined ? `until ${new Date(ctx.now().getTime() + ttlMs).toISOString().replace(/\.\d{3}Z$/, 'Z')}` : 'until kport users unlock';
    ctx.stdout.write(`User ${printable(args[0]!)} is locked ${until}: their next call is refused.\n`);
    if (locked.user_exists === false)
      ctx.logger.warn(
        `no user is named ${printable(args[0]!)} now: the lock holds for whoever logs in with that name (any case) while it lasts; see kport get lock.`,
      );
  },
};
