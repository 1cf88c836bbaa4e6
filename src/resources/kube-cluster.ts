import type { Resource } from './resource.ts';

export const KUBE_CLUSTER = 'kube_cluster';

/** Labels kport sets on what it discovers; `kport.internal/*` are hidden from people. */
export const LABEL = {
  region: 'region',
  accountId: 'account-id',
  cloud: 'kport.dev/cloud',
  origin: 'kport.dev/origin',
  discoveryType: 'kport.dev/discovery-type',
  discoveredName: 'kport.internal/discovered-name',
  discoveryGroup: 'kport.internal/discovery-group-name',
} as const;

export interface KubeClusterSpec {
  aws?: { name: string; region: string; account_id: string; arn?: string };
  /** A kubeconfig (YAML text) for a static, non-EKS cluster; its current context is used. */
  kubeconfig?: string;
}

export type KubeCluster = Resource<KubeClusterSpec>;

/** Discovered from the cloud by an agent of this discovery group: what that group's leader may write and delete. */
export function ownedBy(resource: { metadata?: { labels?: Record<string, string> } } | undefined, group: string): boolean {
  const labels = resource?.metadata?.labels ?? {};
  return labels[LABEL.origin] === 'cloud' && (labels[LABEL.discoveryGroup] ?? '') === group;
}

/** The short name people know a discovered cluster by (the EKS name). */
export function discoveredName(cluster: KubeCluster): string | undefined {
  return cluster.metadata.labels?.[LABEL.discoveredName];
}
