import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { hideArgvValue } from '../../core/argv-secret.ts';
import { UsageError } from '../../core/errors.ts';
import { serialize, type Format } from '../../core/output.ts';
import { notATokenAlone } from '../../join/token-text.ts';
import type { DiscoveryReporting } from '../../service/discovery.ts';
import type { CommandDef, CommandInput } from '../command.ts';

export const discoverRun: CommandDef = {
  path: ['discover', 'run'],
  localStore: true,
  summary: 'Run the discovery engine in the foreground: find EKS clusters and keep kube_cluster resources true',
  examples: ['kport discover run -c kport.yaml', 'kport discover run --once --token /tmp/token'],
  options: [
    { flags: '--once', description: 'run one poll and exit: non-zero when a fetch failed, a signal stopped it, or the server stayed unreachable for 30 s' },
    {
      flags: '--token <file>',
      description:
        'file holding the join token, or - to read it from stdin; a token given itself is hidden from ps once read (default: teleport.join_params.token_name)',
    },
  ],
  async run(input) {
    const { opts, session } = input;
    const config = await session.config();
    // A Kubernetes agent alone (no discovery) serves through a server, so it needs one.
    const kubeAgent = Boolean(config.kubernetes_service?.enabled && config.teleport.proxy_server);
    if (!config.discovery_service?.enabled && !kubeAgent) {
      throw new UsageError(
        `discovery_service is not enabled in ${config.source ?? 'the configuration'}: set discovery_service.enabled: yes (or, for a Kubernetes agent, kubernetes_service.enabled: yes and teleport.proxy_server).`,
      );
    }
    if (!config.discovery_service?.enabled && opts.once)
      throw new UsageError('--once runs one discovery poll, and discovery_service is not enabled: run a Kubernetes agent without --once.');
    const roles = [...(config.discovery_service?.enabled ? ['discovery'] : []), ...(config.kubernetes_service?.enabled ? ['kube'] : [])];
    const tokenSource = String(opts.token ?? config.teleport.join_params?.token_name ?? config.teleport.auth_token ?? '');
    if (typeof opts.token === 'string') hideTokenArgument(opts.token, input.ctx.cwd, (m) => input.ctx.logger.warn(m));
    const { lockDataDir } = await import('../../join/data-dir-lock.ts');
    const unlock = lockDataDir(config.dataDir);
    try {
      return await runLocked(input, roles, tokenSource);
    } finally {
      unlock();
    }
  },
};

/** The agent, once it holds the data dir (service/agent.ts), reported: the dashboard or lines, and a --once poll's result. */
async function runLocked({ opts, ctx, session }: CommandInput, roles: string[], tokenSource: string): Promise<number | undefined> {
  const config = await session.config();
  // stdin can be read once; the join may ask again (a retry after an outage).
  const fromStdin = tokenSource === '-' ? readToken('-', ctx.cwd, roles) : undefined;
  const token = () => fromStdin ?? readToken(tokenSource, ctx.cwd, roles);
  const { runAgentProcess } = await import('../../service/agent.ts');
  return runAgentProcess({
    config,
    ctx,
    roles,
    token,
    once: Boolean(opts.once),
    reporting: discoveryReporting(ctx, session.format),
    backend: () => session.backend(),
  });
}

/** How `discover run` (and the server's in-process discovery) shows a discovery agent. */
export function discoveryReporting(ctx: CommandInput['ctx'], format: Format): DiscoveryReporting {
  return {
    open: async (group) => (await import('../../ui/discovery-report.ts')).discoveryReporter(ctx, format, group),
    polled: (last) =>
      void ctx.stdout.write(
        format === 'text'
          ? `Discovered ${plural(last.seen, 'EKS cluster')}: ${last.created} created, ${last.updated} updated, ${last.deleted} deleted.\n`
          : serialize({ seen: last.seen, created: last.created, updated: last.updated, deleted: last.deleted, failures: last.failures }, format),
      ),
  };
}

/** The contents of the file that holds the token, stdin's for `-`, or the token itself. */
function readToken(value: string, cwd: string, roles: string[]): string {
  const type = `--type=${roles.join(',')}`;
  if (!value)
    throw new UsageError(
      `No join token: pass --token FILE (or - for stdin) or set teleport.join_params.token_name (create one with \`kport tokens add ${type}\`).`,
    );
  // Only the token, as `tokens add --format=text` prints it: a file of its other formats is said to be one before anything is sent.
  const alone = (text: string, what: string, file: string) => {
    const problem = notATokenAlone(text);
    if (problem)
      throw new UsageError(`${what} holds ${problem}: write only the token, with \`(umask 077; kport tokens add ${type} --format=text > ${file})\`.`);
    return text;
  };
  if (value === '-') {
    const text = readFileSync(0, 'utf8').trim();
    if (!text) throw new UsageError(`--token - read no token from stdin: pipe one in, such as \`kport discover run --token - < FILE\`.`);
    return alone(text, 'What --token - read from stdin', 'FILE');
  }
  const path = resolve(cwd, value);
  if (existsSync(path)) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (err) {
      throw new UsageError(
        `Cannot read the token file ${path}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}.`,
      );
    }
    if (!text)
      throw new UsageError(`The token file ${path} is empty: write a token into it with \`(umask 077; kport tokens add ${type} --format=text > ${value})\`.`);
    return alone(text, `The token file ${path}`, value);
  }
  if (value.includes('/'))
    throw new UsageError(`Token file ${value} does not exist: create it with \`(umask 077; kport tokens add ${type} --format=text > ${value})\`.`);
  return value;
}

/** A token given as a value on the command line is hidden from `ps` at once (argv-secret.ts), and the agent says it was seen. */
function hideTokenArgument(value: string, cwd: string, warn: (message: string) => void): void {
  if (value === '-' || existsSync(resolve(cwd, value))) return;
  if (!hideArgvValue('--token', value)) return;
  warn(
    'the join token was given on the command line: kport hid it from the process list now, but other users could see it until then and your shell history keeps it; prefer --token FILE or --token - (stdin).',
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
