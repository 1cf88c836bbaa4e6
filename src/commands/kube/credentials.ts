import { UsageError } from '../../core/errors.ts';
import type { CommandDef } from '../command.ts';
import { USER_OPTION, personAccess } from './access.ts';

export const kubeCredentials: CommandDef = {
  path: ['kube', 'credentials'],
  summary: 'Print an ExecCredential with an EKS token for a cluster, as `aws eks get-token` does',
  examples: [
    'kport kube credentials prod',
  ],
  args: ['<cluster>'],
  options: [USER_OPTION],
  async run({ args, opts, ctx, session }) {
    const { config, backend, clusters, explain } = await personAccess(session, opts.user);
    const { resolveAllowedCluster } = await import('../../kube/clusters.ts');
    const { cluster } = await resolveAllowedCluster(backend, clusters, args[0]!, explain);
    const aws = cluster.spec.aws;
    if (!aws) throw new UsageError(`kube_cluster ${cluster.metadata.name} is not an EKS cluster: its kubeconfig holds its credentials.`);
    // Like `aws eks get-token`: a token needs only credentials, not DescribeCluster.
    const [{ proxyIdentity }, { credentialsToReach }, { createEksToken }] = await Promise.all([
      import('../../kube/targets.ts'),
      import('../../aws/credentials.ts'),
      import('../../aws/eks-token.ts'),
    ]);
    const credentials = await credentialsToReach(aws, proxyIdentity(config.kubernetes_service, cluster));
    const { token, expiresAt } = await createEksToken({ clusterName: aws.name, region: aws.region, credentials, stsEndpoint: ctx.env.AWS_ENDPOINT_URL_STS || ctx.env.AWS_ENDPOINT_URL || undefined });
    // client-go says which ExecCredential version it wants; v1beta1 when it does not.
    let apiVersion = 'client.authentication.k8s.io/v1beta1';
    try {
      apiVersion = JSON.parse(ctx.env.KUBERNETES_EXEC_INFO ?? '{}').apiVersion ?? apiVersion;
    } catch {}
    ctx.stdout.write(`${JSON.stringify({ kind: 'ExecCredential', apiVersion, spec: {}, status: { expirationTimestamp: expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'), token } })}\n`);
  },
};
