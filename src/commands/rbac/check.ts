import { UserError } from '../../core/errors.ts';
import type { CommandDef } from '../command.ts';
import { TARGET_OPTIONS, resolveTarget } from './target.ts';

export const rbacCheck: CommandDef = {
  path: ['rbac', 'check'],
  summary: 'Check, with access reviews, that the proxy identity has every permission it needs',
  examples: ['kport rbac check --context admin@prod', 'kport rbac check --cluster prod --as-role-arn arn:aws:iam::222222222222:role/kport-proxy'],
  options: [...TARGET_OPTIONS, { flags: '--as-role-arn <arn>', description: 'check the user and groups aws-auth maps this IAM role to, instead of yourself' }],
  async run({ opts, ctx, session }) {
    const target = await resolveTarget(opts, ctx, session);
    const { checkPermissions, describePermission } = await import('../../rbac/check.ts');
    let as: { user: string; groups: string[] } | undefined;
    if (typeof opts.asRoleArn === 'string') as = await mappedIdentity(target.kc, opts.asRoleArn);
    const results = await checkPermissions(target.kc, as);
    const format = session.format;
    if (format !== 'text') {
      const { serialize } = await import('../../core/output.ts');
      ctx.stdout.write(serialize({ target: target.description, identity: as ?? null, permissions: results }, format));
    } else {
      for (const r of results) ctx.stdout.write(`${r.allowed ? '✓' : '✗'} ${describePermission(r)}\n`);
    }
    const missing = results.filter((r) => !r.allowed);
    if (missing.length > 0) {
      const fix = `kport rbac bootstrap ${target.eks ? `--cluster ${String(opts.cluster)}` : `--context ${String(opts.context)}`} --role-arn <the proxy's IAM role>`;
      throw new UserError(`The proxy identity lacks ${missing.map(describePermission).join(', ')}: run \`${fix}\` as a cluster admin.`);
    }
  },
};

async function mappedIdentity(kc: import('@kubernetes/client-node').KubeConfig, roleArn: string): Promise<{ user: string; groups: string[] }> {
  const [{ CoreV1Api }, { readMapRoles }, { normalizeRoleArn, sameArn }, { kubeError }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../../rbac/aws-auth.ts'),
    import('../../rbac/arn.ts'),
    import('../../rbac/kube-errors.ts'),
  ]);
  const arn = normalizeRoleArn(roleArn).arn;
  const cm = await kc
    .makeApiClient(CoreV1Api)
    .readNamespacedConfigMap({ name: 'aws-auth', namespace: 'kube-system' })
    .catch((err) => {
      throw kubeError('read ConfigMap kube-system/aws-auth', err);
    });
  const entry = readMapRoles(cm.data?.mapRoles)
    .filter((e) => sameArn(e.rolearn, arn))
    .at(-1);
  if (!entry) throw new UserError(`${arn} is not in kube-system/aws-auth mapRoles: run \`kport rbac bootstrap --role-arn ${arn}\` first.`);
  return { user: entry.username, groups: [...entry.groups, 'system:authenticated'] };
}
