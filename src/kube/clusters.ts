import type { Backend } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import { KUBE_CLUSTER, type KubeCluster } from '../resources/kube-cluster.ts';
import { checkLookupName, findKubeCluster } from '../resources/lookup.ts';
import { listResources } from '../resources/store.ts';
import type { KubeAccess } from '../roles/evaluate.ts';
import type { AccessChecker } from './access-checker.ts';

export interface AllowedCluster {
  cluster: KubeCluster;
  access: KubeAccess;
}

export interface ClusterAccess {
  allowed: AllowedCluster[];
  /** Every kube_cluster in the store, and those this kport serves: to explain an empty result. */
  total: KubeCluster[];
  served: KubeCluster[];
}

/** The clusters this kport serves and the person's roles allow; the others are not there as far as they can tell. */
export async function allowedClusters(
  backend: Backend,
  access: AccessChecker,
  isServed: (cluster: KubeCluster) => boolean = () => true,
): Promise<ClusterAccess> {
  const total = await listResources<KubeCluster>(backend, KUBE_CLUSTER);
  const served = total.filter(isServed);
  const allowed = served.flatMap((cluster) => {
    const a = access.forCluster(cluster);
    return a ? [{ cluster, access: a }] : [];
  });
  return { allowed, total, served };
}

/**
 * Why a person can reach no cluster, in one sentence with the next step, or undefined when they
 * can reach some. Local mode only: the person can read every kube_cluster anyway. Through a
 * server, a cluster you may not reach must look missing (Teleport's rule), so this is not used.
 */
export function whyNoneAllowed(access: AccessChecker, clusters: ClusterAccess, configSource: string | undefined): string | undefined {
  if (clusters.allowed.length > 0) return undefined;
  const where = configSource ?? 'kport.yaml';
  const n = (count: number) => `${count} kube_cluster${count === 1 ? '' : 's'} exist${count === 1 ? 's' : ''}`;
  if (clusters.total.length === 0) return 'No kube_cluster exists yet: run `kport discover run` to discover EKS clusters, or `kport create -f` a static one.';
  if (!access.defined)
    return `${n(clusters.total.length)}, but your kport user "${access.user}" is not defined: add it under users: in ${where} with its roles (see README#kubernetes-access), or pass --user.`;
  const undefinedRoles =
    access.undefinedRoles.length > 0
      ? ` (${access.undefinedRoles.map((r) => `"${r}"`).join(', ')} ${access.undefinedRoles.length === 1 ? 'is' : 'are'} not defined under roles:)`
      : '';
  if (access.roles.length === 0)
    return `${n(clusters.total.length)}, but your kport user "${access.user}" has no roles${undefinedRoles}: add some under users: in ${where} (see README#kubernetes-access).`;
  if (clusters.served.length === 0) return `${n(clusters.total.length)}, but kubernetes_service.resources in ${where} serves none of them: widen its labels.`;
  return `${n(clusters.served.length)}, none allowed by your roles ${access.roles.join(', ')}${undefinedRoles}: their kubernetes_labels match none of them (see \`kport get kube_cluster\` for the labels).`;
}

/** The full name, or the unambiguous discovered name, among the allowed clusters. */
export async function resolveAllowedCluster(
  backend: Backend,
  clusters: ClusterAccess,
  name: string,
  explain?: { access: AccessChecker; configSource: string | undefined },
): Promise<AllowedCluster> {
  checkLookupName('kube_cluster', name);
  const found = await findKubeCluster(
    backend,
    name,
    clusters.allowed.map((a) => a.cluster),
  );
  const match = found && clusters.allowed.find((a) => a.cluster.metadata.name === found.metadata.name);
  if (match) return match;
  // Local mode: the person can read every kube_cluster, so say why this one is out of reach.
  const exists = explain && (await findKubeCluster(backend, name, clusters.total));
  if (exists && explain) {
    const cluster = exists.metadata.name;
    const where = explain.configSource ?? 'kport.yaml';
    if (!clusters.served.includes(exists))
      throw new UserError(
        `kube_cluster "${cluster}" exists but this kport does not serve it: kubernetes_service.resources in ${where} matches none of its labels.`,
      );
    // The same words as `kube ls` uses for the same user (whyNoneAllowed).
    if (!explain.access.defined)
      throw new UserError(
        `kube_cluster "${cluster}" exists but your kport user "${explain.access.user}" is not defined: add it under users: in ${where} with its roles (see README#kubernetes-access), or pass --user.`,
      );
    const who =
      explain.access.roles.length > 0 ? `your roles (${explain.access.roles.join(', ')})` : `your kport user "${explain.access.user}" has no roles, so nothing`;
    throw new UserError(
      `kube_cluster "${cluster}" exists but ${who} ${explain.access.roles.length > 0 ? 'do not allow it' : 'is allowed'}: add a role whose kubernetes_labels match its labels (see \`kport get kube_cluster/${cluster}\`) under users: in ${where}.`,
    );
  }
  throw new UserError(`kube_cluster "${name}" not found: check \`kport kube ls\` for the clusters you can reach.`);
}
