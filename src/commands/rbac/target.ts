import { UsageError, UserError } from '../../core/errors.ts';
import type { Context } from '../../core/context.ts';
import type { Session } from '../../core/session.ts';

export const TARGET_OPTIONS = [
  { flags: '--context <ctx>', description: 'kubeconfig context of the target cluster (KUBECONFIG honoured)' },
  { flags: '--cluster <name>', description: 'a discovered EKS kube_cluster, reached with your AWS credentials' },
];

export interface Target {
  kc: import('@kubernetes/client-node').KubeConfig;
  description: string;
  eks?: { name: string; region: string; authenticationMode?: string; credentials: import('@smithy/types').AwsCredentialIdentityProvider };
}

/** --context (a kubeconfig context) or --cluster (a discovered EKS kube_cluster, reached with the caller's AWS identity). */
export async function resolveTarget(opts: Record<string, unknown>, ctx: Context, session: Session): Promise<Target> {
  const context = typeof opts.context === 'string' ? opts.context : undefined;
  const clusterName = typeof opts.cluster === 'string' ? opts.cluster : undefined;
  if (Boolean(context) === Boolean(clusterName)) throw new UsageError('Pass exactly one of --context CTX (a kubeconfig context) or --cluster NAME (a discovered cluster).');
  if (context) {
    const { kubeConfigFor } = await import('../../kube/kubeconfig.ts');
    return { kc: await kubeConfigFor(ctx.env, context), description: `context ${context}` };
  }
  const { findKubeCluster } = await import('../../resources/registry.ts');
  const cluster = await findKubeCluster(await session.backend(), clusterName!);
  if (!cluster) throw new UserError(`kube_cluster "${clusterName}" not found: see \`kport get kube_cluster\`.`);
  const aws = cluster.spec.aws;
  if (!aws) throw new UsageError(`kube_cluster ${cluster.metadata.name} is not an EKS cluster: use --context for it.`);
  const [{ connectEks }, { KubeConfig }] = await Promise.all([import('../../aws/eks-connection.ts'), import('@kubernetes/client-node')]);
  // The caller's own AWS identity: rbac bootstrap is run by a cluster admin, not by the proxy.
  const eks = await connectEks(aws, { stsEndpoint: ctx.env.AWS_ENDPOINT_URL_STS || ctx.env.AWS_ENDPOINT_URL || undefined });
  const { token } = await eks.token();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: cluster.metadata.name, server: eks.endpoint, caData: eks.caData }],
    users: [{ name: 'kport', token }],
    contexts: [{ name: cluster.metadata.name, cluster: cluster.metadata.name, user: 'kport' }],
    currentContext: cluster.metadata.name,
  });
  return { kc, description: `EKS cluster ${aws.name} (${aws.region}, ${aws.account_id})`, eks: { name: aws.name, region: aws.region, authenticationMode: eks.authenticationMode, credentials: eks.credentials } };
}
