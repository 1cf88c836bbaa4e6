import { parseDuration } from '../../core/duration.ts';
import { hideArgvValue } from '../../core/argv-secret.ts';
import { UsageError } from '../../core/errors.ts';
import { serialize } from '../../core/output.ts';
import { parseLabelList } from '../../resources/labels.ts';
import { labelsProblems } from '../../resources/resource.ts';
import { MAX_TOKEN_TTL_MS, MAX_TOKEN_USES } from '../../tokens/tokens.ts';
import type { CommandDef } from '../command.ts';

/** What `tokens add` and `tokens ls` print for scripts: one shape (add adds the secret). */
export function tokenSummary(token: import('../../resources/token.ts').Token) {
  return {
    name: token.metadata.name,
    roles: token.spec.roles,
    labels: token.metadata.labels ?? null,
    expires: token.metadata.expires ?? null,
    uses_remaining: token.spec.uses_remaining ?? null,
  };
}

export const tokensAdd: CommandDef = {
  path: ['tokens', 'add'],
  summary: 'Create a join token for discovery and Kubernetes agents',
  examples: [
    'kport tokens add --type=discovery,kube --format=text > /tmp/token',
    'kport tokens add --type=discovery --ttl=1h --labels team=platform',
    'kport tokens add --type=kube --value - --format=text < ./secret > /tmp/token',
  ],
  options: [
    { flags: '--type <roles>', description: 'comma-separated roles the token grants, such as discovery,kube' },
    { flags: '--ttl <duration>', description: 'how long the token lives', default: '30m' },
    {
      flags: '--value <secret>',
      description:
        'use this secret instead of a random one; - reads it from the first line of stdin (a value given here is seen by other users in ps until kport hides it)',
    },
    { flags: '--labels <k=v,..>', description: 'labels to attach to the token' },
    { flags: '--uses <n>', description: 'how many agents may join with it (default: any number until it expires)' },
  ],
  async run({ opts, ctx, session }) {
    if (typeof opts.type !== 'string') throw new UsageError('--type is required: for example --type=discovery,kube.');
    const value = typeof opts.value === 'string' ? await tokenValue(opts.value, (m) => ctx.logger.warn(m)) : undefined;
    const { addToken, normalizeRoles, rolesText } = await import('../../tokens/tokens.ts');
    const roles = normalizeRoles(opts.type);
    const ttlMs = parseDuration(String(opts.ttl ?? '30m'), '--ttl');
    if (ttlMs <= 0) throw new UsageError('--ttl must be longer than zero.');
    // An agent keeps its identity after joining, so a token only has to outlive the rollout.
    if (ttlMs > MAX_TOKEN_TTL_MS)
      throw new UsageError(
        `--ttl ${String(opts.ttl)} is longer than the 30 days a join token may live: agents keep their identity after joining, so make one per rollout.`,
      );
    let labels: Record<string, string> | undefined;
    try {
      labels = typeof opts.labels === 'string' ? parseLabelList(opts.labels) : undefined;
    } catch (err) {
      throw new UsageError(`--labels: ${(err as Error).message}.`);
    }
    let uses: number | undefined;
    if (opts.uses !== undefined) {
      uses = Number(opts.uses);
      if (!Number.isInteger(uses) || uses < 1 || uses > MAX_TOKEN_USES)
        throw new UsageError(`--uses ${String(opts.uses)} is not a whole number from 1 to ${MAX_TOKEN_USES}.`);
    }
    const labelProblems = labels ? labelsProblems(labels) : [];
    if (labelProblems.length > 0) throw new UsageError(`--labels: ${labelProblems.join('; ')}.`);
    const backend = await session.backend();
    // Everything that can fail comes before the token is made: a failure must not leave a live token nobody saw.
    const server = await joinTarget(session, backend);
    const { secret, token } = await addToken(backend, {
      roles,
      ttlMs,
      value,
      labels,
      uses,
      now: ctx.now(),
    });
    // Like tctl: an explicit --format=text prints only the secret, for `> /tmp/token`.
    const format = session.format;
    if (format !== 'text') {
      ctx.stdout.write(serialize({ token: secret, ...tokenSummary(token), ...(server && { ca_pin: server.pin, proxy_server: server.address }) }, format));
      return;
    }
    const minutes = Math.round(ttlMs / 60_000);
    const grants = `It lets agents join with role${roles.length === 1 ? '' : 's'} ${rolesText(roles)}`;
    if (session.globals.format !== undefined) {
      // stdout is the secret alone (for `> file`); what it grants goes to stderr, so it is still said.
      ctx.stdout.write(`${secret}\n`);
      ctx.stderr.write(`Token ${token.metadata.name}: ${grants[0]!.toLowerCase()}${grants.slice(1)}, for ${minutes} minute${minutes === 1 ? '' : 's'}.\n`);
      return;
    }
    const expiry = `${grants}. It will expire in ${minutes} minute${minutes === 1 ? '' : 's'}${uses ? ` or after ${uses} join${uses === 1 ? '' : 's'}` : ''}. It is stored only as a salted hash, under the name ${token.metadata.name}.`;
    if (server) {
      // As `tctl tokens add` prints it: the pin the agent checks on first contact, and where to join.
      ctx.stdout.write(
        [
          `The invite token: ${secret}`,
          expiry,
          '',
          'Save it on the agent machine and start the agent with this in its kport.yaml:',
          `  (umask 077; echo ${secret} > /var/lib/kport/token)`,
          `  teleport: {proxy_server: ${server.address}, ca_pin: "${server.pin}", join_params: {method: token, token_name: /var/lib/kport/token}}`,
          '',
          `CA pin: ${server.pin}`,
          '',
        ].join('\n'),
      );
      return;
    }
    ctx.stdout.write(
      [
        `The invite token: ${secret}`,
        expiry,
        '',
        'Save it to a file and start a discovery agent with it:',
        `  (umask 077; echo ${secret} > /tmp/token)`,
        '  kport discover run -c kport.yaml --token /tmp/token',
        '',
        'or set teleport.join_params.token_name: /tmp/token in kport.yaml.',
        '',
      ].join('\n'),
    );
  },
};

/**
 * The server agents join with this token: through a server, the one the login profile trusts (its
 * pin was checked at login; the CA in the store is the server's alone to read) at the profile's
 * address; locally, the one recorded in the store, at the config's address.
 */
async function joinTarget(
  session: import('../session.ts').Session,
  backend: import('../../backend/backend.ts').Backend,
): Promise<{ pin: string; address: string } | undefined> {
  const where = await session.where();
  if (where.via === 'server') return { pin: where.profile.ca_pin, address: where.profile.proxy };
  const { serverInfo } = await import('../../tokens/server-info.ts');
  return serverInfo(backend, await session.config());
}

/**
 * The secret of --value: from stdin with `-`, else the argument, hidden from the process list at
 * once (argv-secret.ts): anyone who reads it there could join an agent with it.
 */
async function tokenValue(given: string, warn: (message: string) => void): Promise<string> {
  if (given !== '-') {
    if (hideArgvValue('--value', given))
      warn(
        "the token's secret was given on the command line: kport hid it from the process list now, but other users could see it until then and your shell history keeps it; prefer --value - with the secret on stdin.",
      );
    return given;
  }
  if (process.stdin.isTTY) throw new UsageError('--value - reads the secret from stdin, which is a terminal: pipe it in (kport tokens add --value - < FILE).');
  const { readStdinLine } = await import('../../client/invite-input.ts');
  const line = (await readStdinLine(process.stdin)).trim();
  if (!line) throw new UsageError('--value - read nothing from stdin: pipe the secret on its first line.');
  return line;
}
