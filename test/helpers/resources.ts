// Resources as tests write them: the same records in many files, built once.

/** A kube_cluster for an EKS cluster in account 222222222222, labelled `labels` (what `kport create -f` takes). */
export function eksCluster(name: string, labels: Record<string, string>) {
  return { kind: 'kube_cluster', version: 'v3', metadata: { name, labels }, spec: { aws: { name, region: 'us-east-1', account_id: '222222222222' } } };
}

/**
 * A kube_cluster as a discovery agent of `group` records it (origin cloud, its group's label), as the
 * JSON it writes to the store; `metadata` is laid over the usual description and labels.
 */
export function cloudClusterJson(name: string, group: string, metadata: Record<string, unknown> = {}): string {
  return JSON.stringify({
    kind: 'kube_cluster',
    version: 'v3',
    metadata: {
      name,
      description: `AWS EKS cluster "${name}" in us-east-1`,
      ...metadata,
      labels: { 'kport.dev/origin': 'cloud', 'kport.internal/discovery-group-name': group, region: 'us-east-1', ...(metadata.labels as object) },
    },
    spec: { aws: { name, region: 'us-east-1', account_id: '123456789012', arn: `arn:aws:eks:us-east-1:123456789012:cluster/${name}` } },
  });
}
