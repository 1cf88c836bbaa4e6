import { KUBE_CLUSTER, LABEL, type KubeCluster } from '../resources/kube-cluster.ts';
import { labelKeyProblem, labelValueProblem, nameProblem } from '../resources/resource.ts';
import type { EksCluster } from './eks-fetcher.ts';

/** Tags that replace the generated name; Teleport's is honoured for people moving over. */
export const NAME_OVERRIDE_TAGS = ['KportKubernetesName', 'TeleportKubernetesName'];

/** `<name>-eks-<region>-<account>`, leaving out a part the EKS name already contains. */
export function discoveredClusterName(cluster: Pick<EksCluster, 'name' | 'region' | 'accountId' | 'tags'>): string {
  for (const tag of NAME_OVERRIDE_TAGS) {
    const override = cluster.tags[tag];
    if (override && !nameProblem(override)) return override;
  }
  const parts = [cluster.name];
  for (const part of ['eks', cluster.region, cluster.accountId]) if (!containsPart(cluster.name, part)) parts.push(part);
  return parts.join('-');
}

/** Whether `part` appears in `name` between separators ("prod-eks-x" has "eks"; "geeks" does not). */
function containsPart(name: string, part: string): boolean {
  const escaped = part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[-_.])${escaped}($|[-_.])`).test(name);
}

export function toKubeCluster(cluster: EksCluster, discoveryGroup: string): KubeCluster {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(cluster.tags)) if (!labelKeyProblem(k) && !labelValueProblem(k, v)) labels[k] = v;
  Object.assign(labels, {
    [LABEL.region]: cluster.region,
    [LABEL.accountId]: cluster.accountId,
    [LABEL.cloud]: 'AWS',
    [LABEL.origin]: 'cloud',
    [LABEL.discoveryType]: 'eks',
    [LABEL.discoveredName]: cluster.name,
    [LABEL.discoveryGroup]: discoveryGroup,
  });
  return {
    kind: KUBE_CLUSTER,
    version: 'v3',
    metadata: { name: discoveredClusterName(cluster), description: `AWS EKS cluster "${cluster.name}" in ${cluster.region}`, labels },
    spec: { aws: { name: cluster.name, region: cluster.region, account_id: cluster.accountId, arn: cluster.arn } },
  };
}
