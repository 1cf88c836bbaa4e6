import { userInfo } from 'node:os';
import type { ReadStream } from 'node:tty';
import { UsageError, UserError } from '../../core/errors.ts';
import { printable, serialize } from '../../core/output.ts';
import type { CommandDef, CommandInput } from '../command.ts';

const ANSWERS = {
  login: 'the password on the first line and the TOTP code on the second',
  invite: 'the new password on the first line and the TOTP code from your authenticator app on the second',
  /** --invite asked for (or -): with --password-stdin its code comes first. */
  inviteFirst: 'the invite code on the first line, the new password on the second and the TOTP code from your authenticator app on the third',
};

export const login: CommandDef = {
  path: ['login'],
  summary: 'Log in to a kport server: a short-lived certificate, after which commands run through the server',
  examples: [
    'kport login --proxy kport.example.com:3080 --user alice',
    'kport login --proxy kport.example.com:3080 --ca-pin sha256:... --invite',
    'kport login --auth oidc --browser none',
  ],
  options: [
    { flags: '--proxy <host:port>', description: "the kport server (default: the current profile's)" },
    { flags: '--user <name>', description: "your kport user (default: the profile's, or your OS login name)" },
    {
      flags: '--invite [file]',
      description:
        'set a password and enroll TOTP with the one-time invite `kport users add` printed: asked for (with --password-stdin or -, the first line of stdin), or read from a file; a code given here is seen by other users in ps until kport hides it',
    },
    {
      flags: '--auth <type>',
      description: 'local (password and TOTP code) or oidc (your identity provider, in a browser)',
      default: 'local',
      choices: ['local', 'oidc'],
    },
    {
      flags: '--browser <mode>',
      description: 'oidc: none prints the login URL instead of opening a browser',
      default: 'default',
      choices: ['default', 'none'],
    },
    { flags: '--ca-pin <pin>', description: "sha256:... of the server's CA, as `kport server start` prints it (first login; default: trust on first use)" },
    { flags: '--password-stdin', description: 'read the password and the TOTP code from stdin, one a line' },
  ],
  async run(input) {
    const { opts, ctx } = input;
    const [{ kportHome, currentProfile }, login] = await Promise.all([import('../../client/profile.ts'), import('../../client/login.ts')]);
    const home = kportHome(ctx.env);
    const current = currentProfile(home);
    const proxy = typeof opts.proxy === 'string' ? opts.proxy : current?.proxy;
    if (!proxy) throw new UsageError("kport login needs the server's address: pass --proxy HOST:PORT (as `kport server start` prints it).");
    const address = login.parseProxy(proxy);
    const pin = typeof opts.caPin === 'string' ? login.checkPin(opts.caPin) : undefined;
    const oidc = opts.auth === 'oidc';
    const { inviteSource, readInvite, ARGV_WARNING } = await import('../../client/invite-input.ts');
    const inviteFlag = opts.invite as string | true | undefined;
    if (typeof inviteFlag === 'string' && inviteFlag.trim() === '')
      throw new UsageError('--invite is empty: run kport login --invite alone to be asked for the code `kport users add` printed.');
    // Out of the process list at once when the code itself was given; where it comes from otherwise.
    const source = inviteFlag === undefined ? undefined : inviteSource(inviteFlag === true ? true : inviteFlag.trim(), ctx.cwd);
    const invite = source !== undefined;
    if (oidc && invite)
      throw new UsageError('--invite sets a local password: drop --auth oidc (people who log in through the identity provider need no invite).');
    if (oidc && opts.passwordStdin)
      throw new UsageError('--password-stdin is for local logins: --auth oidc logs in through the identity provider in a browser.');
    // Asked before anything is sent: a script without a terminal learns what to pass at once.
    if (!oidc && !opts.passwordStdin && !ctx.stdinIsTTY) {
      throw new UsageError(
        `kport login needs a password and a TOTP code and there is no terminal to ask for them: pass --password-stdin and pipe ${!invite ? ANSWERS.login : source.from === 'ask' ? ANSWERS.inviteFirst : ANSWERS.invite}.`,
      );
    }
    if (source?.from === 'argv') ctx.logger.warn(ARGV_WARNING);
    const inviteCode =
      source &&
      (await readInvite(source, { stdin: process.stdin, stderr: ctx.stderr, passwordStdin: Boolean(opts.passwordStdin), warn: (m) => ctx.logger.warn(m) }));
    const sameServer = current?.proxy === `${address.host}:${address.port}` ? current : undefined;
    // A local login's answers are read before anything is sent: bad input costs no round trip.
    const user = typeof opts.user === 'string' && opts.user ? opts.user : (sameServer?.user ?? userInfo().username);
    const local =
      !oidc && !invite
        ? await answers(input, ANSWERS.login, [
            { question: `Password for ${printable(user)} at ${address.host}:${address.port}: `, hidden: true },
            { question: 'TOTP code: ', hidden: false },
          ])
        : undefined;
    const { routes } = await import('../../api/routes.ts');
    const { client, ca } = await login.anonymousClient(home, address, pin, (m) => ctx.logger.warn(m), ctx.signal);
    try {
      let answer: unknown;
      if (oidc) {
        const { key, csr } = await login.newKey('oidc');
        const { oidcLogin } = await import('../../client/oidc-login.ts');
        answer = await oidcLogin({
          post: (route, body) => login.loginCall(client, route, body),
          csr,
          browser: opts.browser === 'none' ? 'none' : 'default',
          say: (line) => ctx.stderr.write(`${line}\n`),
          signal: ctx.signal,
        });
        return done(input, login.saveLogin(home, address, answer, key, ca));
      }
      if (inviteCode !== undefined) {
        const invite = inviteCode;
        const begun = await login.loginCall(client, routes.inviteBegin, { invite });
        if (typeof opts.user === 'string' && opts.user !== begun.user)
          throw new UsageError(`The invite is for ${printable(begun.user)}, not ${printable(opts.user)}: drop --user, or ask for an invite of your own.`);
        await showEnrolment(input, begun);
        const [password, code] = await answers(input, ANSWERS.invite, [
          { question: `New password for ${begun.user}: `, hidden: true },
          { question: 'Repeat the new password: ', hidden: true, repeat: true },
          { question: 'TOTP code from your authenticator app: ', hidden: false },
        ]);
        const { key, csr } = await login.newKey(begun.user);
        answer = await login.loginCall(client, routes.inviteFinish, { invite, password, totp_code: code, csr });
        return done(input, login.saveLogin(home, address, answer, key, ca));
      }
      const [password, code] = local!;
      const { key, csr } = await login.newKey(user);
      answer = await login.loginCall(client, routes.localLogin, { user, password, totp_code: code, csr });
      return done(input, login.saveLogin(home, address, answer, key, ca));
    } finally {
      client.close();
    }
  },
};

interface Question {
  question: string;
  hidden: boolean;
  /** The answer must equal the one before (a new password typed twice). */
  repeat?: boolean;
}

/** The password and the code: from stdin (--password-stdin), or asked on the terminal. */
async function answers({ opts, ctx }: CommandInput, what: string, questions: Question[]): Promise<[string, string]> {
  let given: string[];
  if (opts.passwordStdin) {
    const { readStdinLines } = await import('../../client/prompt.ts');
    given = await readStdinLines(process.stdin, 2, what, ctx.signal);
  } else {
    const { ask } = await import('../../client/prompt.ts');
    given = [];
    for (const q of questions) {
      const answer = await ask(process.stdin as ReadStream, ctx.stderr, q.question, { hidden: q.hidden });
      if (q.repeat) {
        if (answer !== given.at(-1))
          throw new UsageError('The two passwords differ: run kport login --invite again (the invite still works until it is used or expires).');
        continue;
      }
      if (answer === '') throw new UsageError(`No answer to "${q.question.replace(/: $/, '')}": run kport login again.`);
      given.push(answer);
    }
  }
  const code = given[1]!.replace(/\s+/g, '');
  if (!/^\d{6,8}$/.test(code)) throw new UsageError('The TOTP code is the 6 digits your authenticator app shows now: run kport login again.');
  return [given[0]!, code];
}

/** The TOTP secret to enroll: its otpauth:// URI, a QR code of it, and the secret for typing in by hand. */
async function showEnrolment({ ctx }: CommandInput, begun: import('../../client/login.ts').InviteBegun): Promise<void> {
  if (typeof begun?.totp_uri !== 'string' || !begun.totp_uri.startsWith('otpauth://'))
    throw new UserError('The kport server answered the invite without a TOTP enrolment: check that it is a kport server of this version.');
  const qrcode = (await import('qrcode-terminal')).default;
  const qr = await new Promise<string>((resolve) => qrcode.generate(begun.totp_uri, { small: true }, resolve));
  ctx.stderr.write(
    [
      `Enroll a second factor for ${printable(begun.user)}: scan this QR code with an authenticator app (Google Authenticator, 1Password, ...),`,
      qr,
      `or add this URI to it: ${printable(begun.totp_uri)}`,
      `(secret for typing in by hand: ${printable(begun.totp_secret)})`,
      '',
    ].join('\n'),
  );
}

function done({ ctx, session }: CommandInput, profile: import('../../client/profile.ts').Profile): void {
  const info = { proxy: profile.proxy, user: profile.user, roles: profile.roles, expires: profile.expires, profile: profile.dir };
  if (session.format !== 'text') return void ctx.stdout.write(serialize(info, session.format));
  const roles = profile.roles.length > 0 ? profile.roles.join(', ') : 'none';
  ctx.stdout.write(
    `Logged in as ${printable(profile.user)} (roles: ${printable(roles)}) at ${profile.proxy} until ${profile.expires.replace(/\.\d{3}Z$/, 'Z')}\n`,
  );
}
