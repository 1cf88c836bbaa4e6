import { parseDuration } from '../../core/duration.ts';
import { UsageError } from '../../core/errors.ts';
import { printable, serialize } from '../../core/output.ts';
import type { InviteIssued, UsersService } from '../../client/users-service.ts';
import type { CommandDef, CommandInput } from '../command.ts';

/** An invite is a password reset waiting to happen: short by default, and never longer than a weekend. */
const DEFAULT_INVITE_TTL_MS = 3_600_000;
const MAX_INVITE_TTL_MS = 48 * 3_600_000;

export const usersAdd: CommandDef = {
  path: ['users', 'add'],
  summary: 'Add a person with roles and print their one-time invite',
  examples: ['kport users add alice --roles access', 'kport users add bob --roles editor,auditor --invite-ttl 24h'],
  args: ['<name>'],
  options: [
    { flags: '--roles <roles>', description: 'comma-separated roles, such as access or editor,auditor (each must exist)' },
    { flags: '--invite-ttl <duration>', description: 'how long the invite works (at most 48h)', default: '1h' },
  ],
  async run({ args, opts, ctx, session }) {
    const name = args[0]!;
    if (typeof opts.roles !== 'string') throw new UsageError(`--roles is required: for example kport users add ${name} --roles access.`);
    const roles = [
      ...new Set(
        opts.roles
          .split(',')
          .map((r) => r.trim())
          .filter(Boolean),
      ),
    ];
    if (roles.length === 0) throw new UsageError('--roles names no role: for example --roles access.');
    const ttlMs = inviteTtlOption(opts.inviteTtl);
    const { usersService } = await import('../../client/users.ts');
    const users = await usersService(session);
    const issued = await users.add(name, roles, ttlMs);
    await writeInvite({
      ctx,
      session,
      users,
      issued,
      json: { roles },
      headline: `User ${printable(issued.user)} added with role${roles.length === 1 ? '' : 's'} ${printable(roles.join(', '))}.`,
    });
  },
};

/** --invite-ttl as an invite's TTL in ms: undefined for the default (1h), which the service applies. */
export function inviteTtlOption(value: unknown): number | undefined {
  const ttlMs = parseDuration(String(value ?? '1h'), '--invite-ttl');
  if (ttlMs <= 0) throw new UsageError('--invite-ttl must be longer than zero.');
  if (ttlMs > MAX_INVITE_TTL_MS)
    throw new UsageError(
      `--invite-ttl ${String(value)} is longer than the 48 hours an invite may live: add the person when they can log in, or send a new invite later.`,
    );
  return ttlMs === DEFAULT_INVITE_TTL_MS ? undefined : ttlMs;
}

/** What `users add` and `users reset` print: the invite as the `kport login` line to send, or the JSON/YAML shape with it. */
export async function writeInvite(input: {
  ctx: CommandInput['ctx'];
  session: CommandInput['session'];
  users: UsersService;
  issued: InviteIssued;
  json: Record<string, unknown>;
  headline: string;
}): Promise<void> {
  const { ctx, session, users, issued } = input;
  const server = await users.server();
  // The code is not in the command: login asks for it, so it never sits in the process list (README "Logging in").
  const command = `kport login --proxy ${server?.proxy ?? 'HOST:PORT'}${server ? ` --ca-pin ${server.pin}` : ''} --invite`;
  if (session.format !== 'text') return void ctx.stdout.write(serialize({ ...issued, ...input.json, login_command: command }, session.format));
  ctx.stdout.write(
    [
      input.headline,
      `The one-time invite expires at ${issued.invite_expires.replace(/\.\d{3}Z$/, 'Z')}; send ${printable(issued.user)} the code and this command to run, which asks for it:`,
      '',
      `  ${command}`,
      `  invite code: ${issued.invite}`,
      '',
      'It sets a password and enrolls an authenticator app (TOTP). The invite is stored only as a hash.',
      '',
    ].join('\n'),
  );
}
