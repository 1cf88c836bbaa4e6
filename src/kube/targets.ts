import type { KubernetesServiceConfig } from '../config/schema.ts';
import { matchLabels } from '../resources/labels.ts';
import type { KubeCluster } from '../resources/kube-cluster.ts';
import { eksUpstream, staticUpstream, type Upstream } from './upstream.ts';

/**
 * How the proxy reaches a cluster: a static cluster through its kubeconfig, an EKS cluster with
 * DescribeCluster and an EKS token, signed with the default AWS credentials or the
 * assume_role_arn of the first kubernetes_service.resources entry whose labels match.
 */
export async function upstreamFor(cluster: KubeCluster, opts: { resources: KubernetesServiceConfig['resources']; stsEndpoint?: string }): Promise<Upstream> {
  if (cluster.spec.kubeconfig) return staticUpstream(cluster);
  const aws = cluster.spec.aws!;
  const entry = opts.resources.find((r) => matchLabels(r.labels, cluster.metadata.labels ?? {}));
  const [{ credentialsFor }, { describeEksEndpoint }, { createEksToken }] = await Promise.all([
    import('../aws/credentials.ts'),
    import('../aws/eks-cluster.ts'),
    import('../aws/eks-token.ts'),
  ]);
  const credentials = await credentialsFor(entry?.assume_role_arn ? { roleArn: entry.assume_role_arn, externalId: entry.external_id } : undefined, aws.region);
  const endpoint = await describeEksEndpoint(aws.name, aws.region, credentials);
  return eksUpstream({
    endpoint: endpoint.endpoint,
    caData: endpoint.caData,
    token: () => createEksToken({ clusterName: aws.name, region: aws.region, credentials, stsEndpoint: opts.stsEndpoint }),
  });
}
