import { formatLabels, renderTable, serialize } from '../../core/output.ts';
import { UsageError } from '../../core/errors.ts';
import { LABEL, type KubeCluster } from '../../resources/kube-cluster.ts';
import { matchLabels } from '../../resources/labels.ts';
import type { CommandDef } from '../command.ts';
import { USER_OPTION, personAccess } from './access.ts';

const MAX_LABELS_WIDTH = 80;

export const kubeLs: CommandDef = {
  path: ['kube', 'ls'],
  summary: 'List the Kubernetes clusters your roles allow',
  examples: ['kport kube ls', 'kport kube ls env=prod --search payments -v'],
  args: ['[selectors...]'],
  options: [
    { flags: '--search <text>', description: 'only clusters whose name or labels contain this' },
    { flags: '-v, --verbose', description: 'show internal labels and untruncated columns' },
    { flags: '-q, --quiet', description: 'no header' },
    USER_OPTION,
  ],
  async run({ args, opts, ctx, session }) {
    const selector: Record<string, string> = {};
    for (const arg of args) {
      const eq = arg.indexOf('=');
      if (eq <= 0) throw new UsageError(`Invalid label selector "${arg}": use LABEL=VALUE.`);
      selector[arg.slice(0, eq)] = arg.slice(eq + 1);
    }
    const { allowed, access, clusters, config, server } = await personAccess(session, opts.user);
    const { currentContext } = await import('../../kube/kubeconfig.ts');
    const { contextName } = await import('../../kube/proxy-kubeconfig.ts');
    // As tsh marks the cluster its kubeconfig context points at: kport's own context (`kube login`)
    // or the one `aws eks update-kubeconfig` writes, named by the cluster's ARN.
    const current = currentContext(ctx.env);
    const isSelected = (c: KubeCluster) =>
      current !== undefined && (current === contextName(c.metadata.name) || (c.spec.aws !== undefined && current === eksContextName(c.spec.aws)));
    const search = typeof opts.search === 'string' ? opts.search.toLowerCase() : undefined;
    const rows = allowed
      .map((a) => a.cluster)
      .filter((c) => matchLabels(selector, c.metadata.labels ?? {}))
      .filter((c) => !search || `${c.metadata.name} ${formatLabels(c.metadata.labels)}`.toLowerCase().includes(search))
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    // Empty, and the person would be left guessing: say why (stderr; stdout stays data).
    if (rows.length === 0) {
      const { whyNoneAllowed } = await import('../../kube/clusters.ts');
      // Through a server, a cluster the roles do not allow looks missing (Teleport's rule): say only that.
      const why = server
        ? allowed.length === 0
          ? `Your roles (${access.roles.join(', ') || 'none'}) at ${server} allow no kube_cluster: ask an editor for a role whose kubernetes_labels match the clusters you need.`
          : undefined
        : whyNoneAllowed(access, clusters, config.source);
      if (why) ctx.logger.info(why);
      else
        ctx.logger.info(
          `None of the ${allowed.length} cluster${allowed.length === 1 ? '' : 's'} you can reach match${allowed.length === 1 ? 'es' : ''} ${[...args, ...(search ? [`--search ${String(opts.search)}`] : [])].join(' ')}.`,
        );
    }
    // Through a server: which of them an agent serves now (the rest answer "no agent serves" until one does).
    const served = server ? await (await session.person())?.servedClusters() : undefined;
    const format = session.format;
    if (format !== 'text') {
      const labels = (l: Record<string, string> | undefined) => (l && Object.keys(l).length > 0 ? l : null);
      return void ctx.stdout.write(
        serialize(
          rows.map((c) => ({
            kube_cluster_name: c.metadata.name,
            labels: labels(c.metadata.labels),
            selected: isSelected(c),
            ...(served && { served: served.has(c.metadata.name) }),
          })),
          format,
        ),
      );
    }
    const verbose = Boolean(opts.verbose);
    const table = rows.map((c) => {
      const shown = Object.fromEntries(
        Object.entries(c.metadata.labels ?? {}).filter(([k]) => verbose || (!k.startsWith('kport.internal/') && k !== LABEL.discoveredName)),
      );
      let labels = formatLabels(shown);
      // Long label lists are cut for people; a pipe gets them whole.
      if (!verbose && ctx.stdoutIsTTY && labels.length > MAX_LABELS_WIDTH) labels = `${labels.slice(0, MAX_LABELS_WIDTH - 3)}...`;
      const row = [c.metadata.name, labels, isSelected(c) ? '*' : ''];
      return served ? [...row, served.has(c.metadata.name) ? 'yes' : 'no agent'] : row;
    });
    const text = renderTable(['Kube Cluster Name', 'Labels', 'Selected', ...(served ? ['Served'] : [])], table, { tty: ctx.stdoutIsTTY, verbose });
    ctx.stdout.write(
      opts.quiet
        ? text
            .split('\n')
            .slice(ctx.stdoutIsTTY ? 2 : 1)
            .join('\n')
        : text,
    );
  },
};

/** `aws eks update-kubeconfig` names the context after the cluster's ARN. */
function eksContextName(aws: NonNullable<KubeCluster['spec']['aws']>): string {
  return aws.arn || `arn:aws:eks:${aws.region}:${aws.account_id}:cluster/${aws.name}`;
}
