import { formatTime, printable, serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const status: CommandDef = {
  path: ['status'],
  summary: 'Show your kport login (server, user, roles, expiry) and whether commands run locally or through the server',
  examples: ['kport status', 'kport status -o json'],
  async run({ ctx, session }) {
    const [{ kportHome, currentProfile, checkCredential }, { EXPIRED }] = await Promise.all([
      import('../../client/profile.ts'),
      import('../../client/person.ts'),
    ]);
    const where = await session.where();
    // Shown even when commands run locally (logged out, or -c given): what a login would resume.
    const profile = where.via === 'server' ? where.profile : currentProfile(kportHome(ctx.env));
    const expires = where.via === 'server' ? where.expires : profile?.credential ? checkCredential(profile.credential).expires : undefined;
    const expired = expires !== undefined && expires.getTime() <= ctx.now().getTime();
    const info = {
      mode: where.via,
      why: where.why,
      proxy: profile?.proxy ?? null,
      user: profile?.user ?? null,
      roles: profile?.roles ?? null,
      expires: expires?.toISOString() ?? null,
      expired,
      logged_in: Boolean(profile?.credential) && !expired,
    };
    // An expired login fails every command that runs through the server: so does its status.
    const code = where.via === 'server' && expired ? 4 : 0;
    if (session.format !== 'text') {
      ctx.stdout.write(serialize(info, session.format));
      return code;
    }
    const lines: Array<[string, string]> = [];
    if (profile) {
      lines.push(['Proxy', profile.proxy], ['User', printable(profile.user)], ['Roles', printable(profile.roles.join(', ') || 'none')]);
      if (!profile.credential) lines.push(['Valid until', 'logged out']);
      else if (expires) lines.push(['Valid until', `${formatTime(expires, ctx.stdoutIsTTY)}${expired ? ` (expired: ${EXPIRED})` : ''}`]);
    }
    const mode = where.via === 'server' ? `through the server at ${where.profile.proxy}: ${where.why}` : `locally: ${where.why}`;
    lines.push(['Commands', `run ${mode}`]);
    const width = Math.max(...lines.map(([k]) => k.length)) + 2;
    ctx.stdout.write(`${lines.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join('\n')}\n`);
    return code;
  },
};
