import { serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const logout: CommandDef = {
  path: ['logout'],
  summary: 'Remove the key and certificate of your kport login (commands run locally again)',
  examples: ['kport logout', 'kport logout --proxy kport.example.com:3080'],
  options: [{ flags: '--proxy <host:port>', description: "the server to log out of (default: the current profile's)" }],
  async run({ opts, ctx, session }) {
    const [{ kportHome, currentProfile, readProfile, profileName, removeCredential }, { parseProxy }] = await Promise.all([
      import('../../client/profile.ts'),
      import('../../client/login.ts'),
    ]);
    const home = kportHome(ctx.env);
    const profile = typeof opts.proxy === 'string' ? readProfile(home, profileName(parseProxy(opts.proxy))) : currentProfile(home);
    // The certificate is not revoked (it is short-lived): a copy of the key stays valid until it
    // expires, which is what `kport users lock` is for.
    const removed = profile ? removeCredential(profile) : false;
    const result = { proxy: profile?.proxy ?? (typeof opts.proxy === 'string' ? opts.proxy : null), user: profile?.user ?? null, removed };
    if (session.format !== 'text') return void ctx.stdout.write(serialize(result, session.format));
    if (!profile) return void ctx.stderr.write(`Not logged in${typeof opts.proxy === 'string' ? ` to ${opts.proxy}` : ''}: nothing to remove.\n`);
    if (!removed) return void ctx.stderr.write(`Already logged out of ${profile.proxy}: nothing to remove.\n`);
    ctx.stdout.write(
      `Logged out ${profile.user} from ${profile.proxy}: its key and certificate are gone, and commands run locally until the next kport login.\n`,
    );
  },
};
