// Finding a resource by the name a person typed: `get`, `rm`, `kube login` and `rbac` all do.
import type { Backend } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import { discoveredName, type KubeCluster } from './kube-cluster.ts';
import { kubeClusterKind } from './kinds.ts';
import { nameProblem } from './resource.ts';
import { readResource, readResources } from './store.ts';

/** Exact name first, then the discovered (EKS) name when exactly one cluster has it. */
export async function findKubeCluster(backend: Backend, name: string, clusters?: KubeCluster[]): Promise<KubeCluster | undefined> {
  const exact = clusters ? clusters.find((c) => c.metadata.name === name) : await readResource(backend, kubeClusterKind, name);
  if (exact) return exact;
  const all = clusters ?? (await readResources(backend, kubeClusterKind));
  const matches = all.filter((c) => discoveredName(c) === name);
  if (matches.length > 1) {
    throw new UserError(
      `"${name}" matches multiple auto-discovered Kubernetes clusters: ${matches.map((c) => c.metadata.name).join(', ')}. Use the full resource name.`,
    );
  }
  return matches[0];
}

/**
 * A name given to look something up that no resource can have (`kube_cluster/a b`): the input is
 * wrong (exit 2, as `users rm 'a b'` says), not something missing (1).
 */
export function checkLookupName(kind: string, name: string): void {
  const problem = nameProblem(name);
  if (problem) throw new UserError(`${kind} "${name}" cannot be a name: ${problem}.`, 2);
}
