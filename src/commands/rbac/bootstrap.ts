import { UsageError, UserError } from '../../core/errors.ts';
import type { CommandDef } from '../command.ts';
import { TARGET_OPTIONS, resolveTarget } from './target.ts';

export const rbacBootstrap: CommandDef = {
  path: ['rbac', 'bootstrap'],
  summary: 'Create the ClusterRole, binding and IAM mapping the kport proxy needs, idempotently',
  examples: [
    'kport rbac bootstrap --context admin@prod --role-arn arn:aws:iam::222222222222:role/kport-proxy',
    'kport rbac bootstrap --cluster prod --role-arn arn:aws:iam::222222222222:role/kport-proxy --dry-run',
  ],
  options: [
    ...TARGET_OPTIONS,
    { flags: '--role-arn <arn>', description: 'the IAM role the kport proxy runs as' },
    { flags: '--group <group>', description: 'RBAC group to create and map the role into', default: 'kport' },
    { flags: '--existing-group <group>', description: 'map the role into an existing RBAC group instead' },
    { flags: '--system-masters', description: 'map the role into system:masters (cluster-admin; needs --yes)' },
    { flags: '--mode <mode>', description: 'how the role is granted', default: 'auto', choices: ['auto', 'configmap', 'access-entry'] },
    { flags: '--cluster-role <name>', description: 'name of the ClusterRole', default: 'kport' },
    { flags: '--binding <name>', description: 'name of the ClusterRoleBinding', default: 'kport' },
    { flags: '--dry-run', description: 'print a unified diff of every change and write nothing' },
    { flags: '--yes', description: 'answer yes to confirmations' },
  ],
  async run({ opts, ctx, session }) {
    if (typeof opts.roleArn !== 'string') throw new UsageError('--role-arn is required: the IAM role the kport proxy runs as.');
    const chosen = [opts.existingGroup !== undefined, Boolean(opts.systemMasters), opts.group !== 'kport'].filter(Boolean).length;
    if (chosen > 1) throw new UsageError('Pass only one of --group, --existing-group or --system-masters.');
    const { normalizeRoleArn } = await import('../../rbac/arn.ts');
    const arn = normalizeRoleArn(opts.roleArn);
    if (arn.note) ctx.logger.info(`Note: ${arn.note}.`);
    const group = opts.systemMasters ? 'system:masters' : typeof opts.existingGroup === 'string' ? opts.existingGroup : String(opts.group);
    if (opts.systemMasters) {
      ctx.logger.warn(
        `mapping ${arn.arn} into system:masters makes the kport proxy cluster-admin on this cluster; prefer the default group with its minimal ClusterRole.`,
      );
      if (!opts.yes && !opts.dryRun) await confirm(ctx, 'Map the role into system:masters?');
    }
    const target = await resolveTarget(opts, ctx, session);
    const mode = await pickMode(String(opts.mode), target);
    if (mode === 'access-entry' && opts.systemMasters) {
      throw new UsageError(
        'EKS access entries cannot grant system:masters: associate the AmazonEKSClusterAdminPolicy access policy instead, or use the default group.',
      );
    }

    const { bootstrap } = await import('../../rbac/bootstrap.ts');
    let entry: string | undefined;
    if (mode === 'access-entry') {
      if (opts.dryRun) entry = 'would create or update';
      else {
        const [{ EKSClient }, { ensureAccessEntry }] = await Promise.all([import('@aws-sdk/client-eks'), import('../../rbac/access-entry.ts')]);
        const eks = new EKSClient({ region: target.eks!.region, credentials: target.eks!.credentials });
        entry = await ensureAccessEntry(eks, { clusterName: target.eks!.name, principalArn: arn.arn, groups: [group] });
        eks.destroy();
      }
    }
    const steps = await bootstrap({
      kc: target.kc,
      names: { clusterRole: String(opts.clusterRole), binding: String(opts.binding) },
      group,
      manageRbac: !opts.systemMasters && opts.existingGroup === undefined,
      mapping: mode === 'configmap' ? { rolearn: arn.arn, username: 'kport', groups: [group] } : undefined,
      dryRun: Boolean(opts.dryRun),
      authRetryMs: entry === 'created' ? 60_000 : 0,
      log: (line) => ctx.logger.info(line),
    });
    if (opts.existingGroup !== undefined && !(await groupIsBound(target.kc, group))) {
      ctx.logger.warn(`no ClusterRoleBinding or RoleBinding references group "${group}": the proxy will be able to do nothing until one does.`);
    }
    const format = session.format;
    const { serialize, printableMessage } = await import('../../core/output.ts');
    if (format !== 'text') {
      ctx.stdout.write(
        serialize({ target: target.description, mode, role_arn: arn.arn, group, dry_run: Boolean(opts.dryRun), access_entry: entry ?? null, steps }, format),
      );
      return;
    }
    for (const s of steps) {
      // The diff shows what the cluster holds, which kport did not write.
      if (opts.dryRun) ctx.stdout.write(s.action === 'unchanged' ? `${s.object}: unchanged\n` : printableMessage(s.diff));
      else ctx.stdout.write(`${s.object}: ${s.action === 'create' ? 'created' : s.action === 'update' ? 'updated' : 'unchanged'}\n`);
    }
    if (entry) ctx.stdout.write(`EKS access entry for ${arn.arn} (groups ${group}): ${entry}\n`);
    if (opts.dryRun) ctx.stderr.write('Dry run: nothing was written.\n');
  },
};

async function pickMode(mode: string, target: Awaited<ReturnType<typeof resolveTarget>>): Promise<'configmap' | 'access-entry'> {
  if (mode === 'configmap') return 'configmap';
  if (!target.eks) {
    if (mode === 'access-entry')
      throw new UsageError('--mode access-entry needs --cluster NAME: access entries belong to an EKS cluster, not to a kubeconfig context.');
    return 'configmap';
  }
  if (mode === 'access-entry') return 'access-entry';
  const { authenticationMode, usesAccessEntries } = await import('../../rbac/access-entry.ts');
  return usesAccessEntries(authenticationMode({ accessConfig: { authenticationMode: target.eks.authenticationMode } })) ? 'access-entry' : 'configmap';
}

async function confirm(ctx: Parameters<CommandDef['run']>[0]['ctx'], question: string): Promise<void> {
  if (!ctx.stdinIsTTY) throw new UsageError(`${question} This needs a confirmation and there is no terminal to ask: pass --yes instead.`);
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: ctx.stderr });
  const answer = await rl.question(`${question} [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new UserError('Cancelled: nothing was written.');
}

async function groupIsBound(kc: import('@kubernetes/client-node').KubeConfig, group: string): Promise<boolean> {
  const { RbacAuthorizationV1Api } = await import('@kubernetes/client-node');
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const refs = (subjects?: Array<{ kind: string; name: string }>) => (subjects ?? []).some((s) => s.kind === 'Group' && s.name === group);
  const [cluster, namespaced] = await Promise.all([rbac.listClusterRoleBinding(), rbac.listRoleBindingForAllNamespaces()]);
  return cluster.items.some((b) => refs(b.subjects)) || namespaced.items.some((b) => refs(b.subjects));
}
