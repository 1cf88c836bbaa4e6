import { parseDuration } from '../../core/duration.ts';
import { UsageError } from '../../core/errors.ts';
import { serialize } from '../../core/output.ts';
import { parseLabelList } from '../../resources/labels.ts';
import { labelsProblems } from '../../resources/resource.ts';

const MAX_TOKEN_TTL_MS = 30 * 24 * 3_600_000;
import type { CommandDef } from '../command.ts';

/** What `tokens add` and `tokens ls` print for scripts: one shape (add adds the secret). */
export function tokenSummary(token: import('../../resources/token.ts').Token) {
  return { name: token.metadata.name, roles: token.spec.roles, labels: token.metadata.labels ?? null, expires: token.metadata.expires ?? null };
}

export const tokensAdd: CommandDef = {
  path: ['tokens', 'add'],
  summary: 'Create a join token for discovery and Kubernetes agents',
  examples: [
    'kport tokens add --type=discovery,kube --format=text > /tmp/token',
    'kport tokens add --type=discovery --ttl=1h --labels team=platform',
  ],
  options: [
    { flags: '--type <roles>', description: 'comma-separated roles the token grants, such as discovery,kube' },
    { flags: '--ttl <duration>', description: 'how long the token lives', default: '30m' },
    { flags: '--value <secret>', description: 'use this secret instead of a random one' },
    { flags: '--labels <k=v,..>', description: 'labels to attach to the token' },
  ],
  async run({ opts, ctx, session }) {
    if (typeof opts.type !== 'string') throw new UsageError('--type is required: for example --type=discovery,kube.');
    const { addToken, normalizeRoles } = await import('../../tokens/tokens.ts');
    const roles = normalizeRoles(opts.type);
    const ttlMs = parseDuration(String(opts.ttl ?? '30m'), '--ttl');
    if (ttlMs <= 0) throw new UsageError('--ttl must be longer than zero.');
    // An agent keeps its identity after joining, so a token only has to outlive the rollout.
    if (ttlMs > MAX_TOKEN_TTL_MS) throw new UsageError(`--ttl ${String(opts.ttl)} is longer than the 30 days a join token may live: agents keep their identity after joining, so make one per rollout.`);
    let labels: Record<string, string> | undefined;
    try {
      labels = typeof opts.labels === 'string' ? parseLabelList(opts.labels) : undefined;
    } catch (err) {
      throw new UsageError(`--labels: ${(err as Error).message}.`);
    }
    const labelProblems = labels ? labelsProblems(labels) : [];
    if (labelProblems.length > 0) throw new UsageError(`--labels: ${labelProblems.join('; ')}.`);
    const { secret, token } = await addToken(await session.backend(), {
      roles,
      ttlMs,
      value: typeof opts.value === 'string' ? opts.value : undefined,
      labels,
      now: ctx.now(),
    });
    // Like tctl: an explicit --format=text prints only the secret, for `> /tmp/token`.
    const format = session.format;
    if (format !== 'text') {
      ctx.stdout.write(serialize({ token: secret, ...tokenSummary(token) }, format));
      return;
    }
    if (session.globals.format !== undefined) {
      ctx.stdout.write(`${secret}\n`);
      return;
    }
    const minutes = Math.round(ttlMs / 60_000);
    ctx.stdout.write(
      [
        `The invite token: ${secret}`,
        `This token will expire in ${minutes} minute${minutes === 1 ? '' : 's'}. It is stored only as a hash, under the name ${token.metadata.name}.`,
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
