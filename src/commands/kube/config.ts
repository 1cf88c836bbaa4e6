import { UsageError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import { selfCommand } from '../../core/self.ts';
import type { CommandDef } from '../command.ts';
import { personAccess } from './access.ts';

export const kubeConfig: CommandDef = {
  path: ['kube', 'config'],
  summary: 'Write kubeconfig entries that reach clusters through the kport server you are logged in to (as `tsh kube login` does)',
  examples: ['kport kube config prod-eks-us-east-1-222222222222', 'kport kube config alpha beta --no-switch'],
  args: ['<clusters...>'],
  options: [{ flags: '--no-switch', description: 'keep the current context (default: switch to the first cluster named)' }],
  async run({ args, opts, ctx, session }) {
    const where = await session.where();
    if (where.via !== 'server') {
      throw new UsageError(
        `kport kube config writes entries that reach a kport server, and you are not logged in to one (${where.why}): run kport login --proxy HOST:PORT first, or use kport kube login for a local proxy.`,
      );
    }
    const { backend, clusters } = await personAccess(session, undefined);
    const [{ resolveAllowedCluster }, { writeServerKubeconfig }, { kubeconfigPaths }, { parseServerAddress }] = await Promise.all([
      import('../../kube/clusters.ts'),
      import('../../kube/server-kubeconfig.ts'),
      import('../../kube/kubeconfig.ts'),
      import('../../client/server-client.ts'),
    ]);
    // Every name first: a cluster the roles do not allow is "not found", and then nothing is written.
    const names: string[] = [];
    for (const name of args) names.push((await resolveAllowedCluster(backend, clusters, name)).cluster.metadata.name);
    const { profile } = where;
    const address = parseServerAddress(profile.proxy);
    const path = kubeconfigPaths(ctx.env)[0]!;
    const contexts = writeServerKubeconfig(
      path,
      { proxy: profile.proxy, host: address.host, port: address.port, ca: profile.ca },
      [...new Set(names)],
      selfCommand(),
      opts.switch !== false,
    );
    ctx.stdout.write(
      `Wrote ${contexts.length === 1 ? 'context' : 'contexts'} ${printable(contexts.join(', '))} to ${path}${opts.switch !== false ? `; the current context is now ${printable(contexts[0]!)}` : ''}.\n`,
    );
    ctx.stderr.write(
      `kubectl reaches ${contexts.length === 1 ? 'it' : 'them'} through ${profile.proxy} with your login (kport kube credentials), until it expires at ${where.expires.toISOString()}; then run kport login again.\n`,
    );
  },
};
