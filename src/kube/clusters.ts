import type { Backend } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import { KUBE_CLUSTER, type KubeCluster } from '../resources/kube-cluster.ts';
import { findKubeCluster } from '../resources/registry.ts';
import { listResources } from '../resources/store.ts';
import type { AccessChecker, KubeAccess } from './access.ts';

export interface AllowedCluster {
  cluster: KubeCluster;
  access: KubeAccess;
}

/** The clusters this kport serves and the person's roles allow; the others are not there as far as they can tell. */
export async function allowedClusters(backend: Backend, access: AccessChecker, served: (cluster: KubeCluster) => boolean = () => true): Promise<AllowedCluster[]> {
  const clusters = await listResources<KubeCluster>(backend, KUBE_CLUSTER);
  return clusters.flatMap((cluster) => {
    if (!served(cluster)) return [];
    const allowed = access.forCluster(cluster);
    return allowed ? [{ cluster, access: allowed }] : [];
  });
}

/** The full name, or the unambiguous discovered name, among the allowed clusters. */
export async function resolveAllowedCluster(backend: Backend, allowed: AllowedCluster[], name: string): Promise<AllowedCluster> {
  const found = await findKubeCluster(backend, name, allowed.map((a) => a.cluster));
  const match = found && allowed.find((a) => a.cluster.metadata.name === found.metadata.name);
  if (!match) throw new UserError(`kube_cluster "${name}" not found: check \`kport kube ls\` for the clusters you can reach.`);
  return match;
}
