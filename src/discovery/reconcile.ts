import type { Backend, Fence } from '../backend/backend.ts';
import { sortKeys } from '../core/output.ts';
import { mapLimit } from './concurrency.ts';
import { KUBE_CLUSTER, ownedBy, type KubeCluster } from '../resources/kube-cluster.ts';
import { resourceKey } from '../resources/resource.ts';
import { decodeResource, encodeResource, listResources } from '../resources/store.ts';

export interface ReconcileInput {
  backend: Backend;
  discoveryGroup: string;
  /** What AWS holds now, from the scopes that were fetched successfully. */
  desired: KubeCluster[];
  /**
   * True only when this poll listed this account and region successfully (or knows no matcher asks
   * for it any more): a resource missing from `desired` is deleted only then. A failed or unreached
   * scope keeps its resources as they are.
   */
  mayDelete(accountId: string, region: string): boolean;
  /** The group leader's claim: every write is void once a successor holds the leadership key. */
  fence?: Fence;
}

export interface ReconcileResult {
  created: string[];
  updated: string[];
  deleted: string[];
  /** Names held by a static resource or another discovery group: left alone. */
  conflicts: string[];
}

const MAX_ATTEMPTS = 5;
const WRITE_CONCURRENCY = 8;

function sameContent(a: KubeCluster, b: KubeCluster): boolean {
  const strip = (r: KubeCluster) => JSON.stringify(sortKeys({ ...r, metadata: { ...r.metadata, revision: undefined } }));
  return strip(a) === strip(b);
}

/**
 * Makes the backend's kube_cluster resources of this group match `desired` with compare-and-swap
 * writes: creates, updates what changed, deletes what is gone, except where the fetch failed. A
 * resource of a failed scope, another group, or a static one is never touched.
 */
export async function reconcile(input: ReconcileInput): Promise<ReconcileResult> {
  const { backend, discoveryGroup: group } = input;
  const result: ReconcileResult = { created: [], updated: [], deleted: [], conflicts: [] };
  const current = new Map((await listResources<KubeCluster>(backend, KUBE_CLUSTER)).map((r) => [r.metadata.name, r]));
  const wanted = new Map(input.desired.map((r) => [r.metadata.name, r]));
  const fenced = input.fence ? { fence: input.fence } : {};

  // Keys are independent: several writes in flight, so a remote backend's round trips overlap.
  const outcomes = await mapLimit([...wanted], WRITE_CONCURRENCY, async ([name, desired]) => {
    const key = resourceKey(KUBE_CLUSTER, name);
    let existing = current.get(name);
    for (let attempt = 0; ; attempt++) {
      if (existing && !ownedBy(existing, group)) return 'conflict';
      if (existing && sameContent(existing, desired)) return 'same';
      const done = existing
        ? await backend.compareAndSwap(key, encodeResource(desired), existing.metadata.revision!, fenced)
        : await backend.create(key, encodeResource(desired), fenced);
      if (done) return existing ? 'updated' : 'created';
      // Another agent wrote first: look again and decide on what is there now.
      if (attempt + 1 >= MAX_ATTEMPTS) throw new Error(`kube_cluster ${name} kept changing under us; will retry next poll`);
      const item = await backend.get(key);
      existing = item && decodeResource<KubeCluster>(item);
    }
  });
  [...wanted.keys()].forEach((name, i) => {
    const outcome = outcomes[i];
    if (outcome === 'created' || outcome === 'updated') result[outcome].push(name);
    else if (outcome === 'conflict') result.conflicts.push(name);
  });

  for (const [name, existing] of current) {
    if (wanted.has(name) || !ownedBy(existing, group)) continue;
    const aws = existing.spec.aws;
    if (!aws || !input.mayDelete(aws.account_id, aws.region)) continue;
    // Deleting only at the revision we read: a concurrent re-create by another agent survives.
    if (await backend.delete(resourceKey(KUBE_CLUSTER, name), existing.metadata.revision, fenced)) result.deleted.push(name);
  }
  return result;
}
