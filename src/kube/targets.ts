import type { AssumeRole } from '../aws/credentials.ts';
import type { KubernetesServiceConfig } from '../config/schema.ts';
import { matchLabels } from '../resources/labels.ts';
import { registeringAgent, type KubeCluster } from '../resources/kube-cluster.ts';
import { UserError } from '../core/errors.ts';
import type { Upstream } from './upstream.ts';

type Service = { enabled?: boolean; resources: KubernetesServiceConfig['resources'] } | undefined;

/** The first kubernetes_service.resources entry whose labels match the cluster. */
function servingEntry(service: Service, cluster: KubeCluster) {
  return service?.resources.find((r) => matchLabels(r.labels, cluster.metadata.labels ?? {}));
}

/**
 * Whether this kport serves the cluster: with kubernetes_service enabled, only clusters matching
 * one of its resources entries, as Teleport's Kubernetes service serves only what its resource
 * matchers select; without it (plain local use), every cluster.
 */
export function isServed(service: Service, cluster: KubeCluster): boolean {
  return !service?.enabled || servingEntry(service, cluster) !== undefined;
}

/** The identity the proxy uses for a cluster: the assume_role_arn of its resources entry, or the SDK chain's. */
export function proxyIdentity(service: Service, cluster: KubeCluster): AssumeRole | undefined {
  const entry = servingEntry(service, cluster);
  return entry?.assume_role_arn ? { roleArn: entry.assume_role_arn, externalId: entry.external_id } : undefined;
}

/** How the proxy reaches a cluster: a static cluster through its kubeconfig, an EKS cluster through an EKS connection. */
export async function upstreamFor(cluster: KubeCluster, opts: { service: Service; stsEndpoint?: string; localFiles?: boolean }): Promise<Upstream> {
  // Loaded here, not at the top: kube ls needs isServed, not the HTTP clients.
  const { eksUpstream, staticUpstream } = await import('./upstream.ts');
  if (cluster.spec.kubeconfig) return staticUpstream(cluster, { files: opts.localFiles === true });
  const agent = registeringAgent(cluster);
  if (!cluster.spec.aws)
    throw new UserError(
      `kube_cluster ${cluster.metadata.name} is served ${agent ? `by Kubernetes agent ${agent} from its own kubeconfig_file` : 'from a kubeconfig this kport does not hold'}: reach it through the kport server (kport login, then kport kube login ${cluster.metadata.name}).`,
    );
  const { connectEks } = await import('../aws/eks-connection.ts');
  const eks = await connectEks(cluster.spec.aws, { assume: proxyIdentity(opts.service, cluster), stsEndpoint: opts.stsEndpoint });
  return eksUpstream({ endpoint: eks.endpoint, caData: eks.caData, token: eks.token });
}
