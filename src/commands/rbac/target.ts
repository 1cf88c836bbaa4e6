import { CredentialsError, ExternalError, UsageError, UserError } from '../../core/errors.ts';
import type { AssumeRole } from '../../aws/credentials.ts';
import type { LoadedConfig } from '../../config/load.ts';
import type { KubeCluster } from '../../resources/kube-cluster.ts';
import type { Context } from '../../core/context.ts';
import type { Session } from '../session.ts';

export const TARGET_OPTIONS = [
  { flags: '--context <ctx>', description: 'kubeconfig context of the target cluster (KUBECONFIG honoured)' },
  { flags: '--cluster <name>', description: 'a discovered EKS kube_cluster, reached with your AWS credentials' },
];

export interface Target {
  kc: import('@kubernetes/client-node').KubeConfig;
  description: string;
  eks?: { name: string; region: string; authenticationMode?: string; credentials: import('@smithy/types').AwsCredentialIdentityProvider };
}

/** --context (a kubeconfig context) or --cluster (a discovered EKS kube_cluster, reached in its own account). */
export async function resolveTarget(opts: Record<string, unknown>, ctx: Context, session: Session): Promise<Target> {
  const context = typeof opts.context === 'string' ? opts.context : undefined;
  const clusterName = typeof opts.cluster === 'string' ? opts.cluster : undefined;
  if (Boolean(context) === Boolean(clusterName))
    throw new UsageError('Pass exactly one of --context CTX (a kubeconfig context) or --cluster NAME (a discovered cluster).');
  if (context) {
    const { kubeConfigFor } = await import('../../kube/kubeconfig.ts');
    return { kc: await kubeConfigFor(ctx.env, context), description: `context ${context}` };
  }
  const { findKubeCluster, checkLookupName } = await import('../../resources/lookup.ts');
  checkLookupName('kube_cluster', clusterName!);
  const cluster = await findKubeCluster(await session.backend(), clusterName!);
  if (!cluster) throw new UserError(`kube_cluster "${clusterName}" not found: see \`kport get kube_cluster\`.`);
  const aws = cluster.spec.aws;
  if (!aws) throw new UsageError(`kube_cluster ${cluster.metadata.name} is not an EKS cluster: use --context for it.`);
  const [{ connectEks }, { KubeConfig }] = await Promise.all([import('../../aws/eks-connection.ts'), import('@kubernetes/client-node')]);
  // The caller's own AWS identity (rbac bootstrap is run by a cluster admin, not by the proxy); a
  // cluster of another account is only reachable through a role kport's config assumes there.
  const { assume, as } = await identityFor(cluster, aws, await session.config());
  let eks: Awaited<ReturnType<typeof connectEks>>;
  try {
    eks = await connectEks(aws, { assume, stsEndpoint: ctx.env.AWS_ENDPOINT_URL_STS || ctx.env.AWS_ENDPOINT_URL || undefined });
  } catch (err) {
    if (err instanceof Error) err.message = `${err.message.replace(/\.$/, '')} (account ${aws.account_id}, as ${as}).`;
    throw err;
  }
  const { token } = await eks.token();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: cluster.metadata.name, server: eks.endpoint, caData: eks.caData }],
    users: [{ name: 'kport', token }],
    contexts: [{ name: cluster.metadata.name, cluster: cluster.metadata.name, user: 'kport' }],
    currentContext: cluster.metadata.name,
  });
  return {
    kc,
    description: `EKS cluster ${aws.name} (${aws.region}, ${aws.account_id})`,
    eks: { name: aws.name, region: aws.region, authenticationMode: eks.authenticationMode, credentials: eks.credentials },
  };
}

/** Who reaches the cluster's account: the caller when it is their own, else the role the config assumes there. */
async function identityFor(
  cluster: KubeCluster,
  aws: NonNullable<KubeCluster['spec']['aws']>,
  config: LoadedConfig,
): Promise<{ assume?: AssumeRole; as: string }> {
  const [{ credentialsFor }, { callerIdentity }, { classifyAwsError }, { roleForAccount }] = await Promise.all([
    import('../../aws/credentials.ts'),
    import('../../aws/account.ts'),
    import('../../aws/errors.ts'),
    import('../../rbac/cluster-identity.ts'),
  ]);
  let own: string;
  try {
    own = (await callerIdentity(await credentialsFor(undefined, aws.region), aws.region)).accountId;
  } catch (err) {
    const failure = classifyAwsError(err);
    if (failure.kind === 'credentials')
      throw new CredentialsError(
        'sts:GetCallerIdentity',
        `AWS rejected your credentials: ${failure.message.replace(/\.$/, '')}; kube_cluster ${cluster.metadata.name} is in account ${aws.account_id}.`,
        { cause: err },
      );
    throw new ExternalError('sts:GetCallerIdentity', `Cannot tell which AWS account your credentials belong to: ${failure.message.replace(/\.$/, '')}.`, 1, {
      cause: err,
    });
  }
  if (own === aws.account_id) return { as: 'your AWS credentials' };
  const role = roleForAccount(config, cluster);
  if (role) return { assume: role.assume, as: `${role.assume.roleArn} from ${role.from}` };
  throw new UsageError(
    `kube_cluster ${cluster.metadata.name} is in AWS account ${aws.account_id}, your AWS credentials are account ${own}, and no assume_role_arn in ${config.source ?? 'the configuration'} (kubernetes_service.resources or discovery_service.aws) is a role in ${aws.account_id}: add one, or use --context with a kubeconfig for the cluster.`,
  );
}
