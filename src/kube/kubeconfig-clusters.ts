import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { AccessDeniedError, type Backend } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import { HEARTBEAT_LIMITS } from '../resources/heartbeat-limits.ts';
import { KUBE_CLUSTER, KUBECONFIG_ORIGIN, LABEL, registeredBy, registeringAgent, type KubeCluster } from '../resources/kube-cluster.ts';
import { nameProblem, resourceKey } from '../resources/resource.ts';
import { createResource, encodeResource, listResources } from '../resources/store.ts';
import { parseKubeconfigText, readStaticKubeconfig, type StaticKubeconfig } from '../resources/static-kubeconfig.ts';

/** The most clusters one kubeconfig_file may bring, as many as one kube_server heartbeat names (the server refuses more). */
export const MAX_KUBECONFIG_CLUSTERS = HEARTBEAT_LIMITS.clusters;

export interface KubeconfigContexts {
  /** Usable contexts by name: each one kube_cluster. */
  contexts: Map<string, StaticKubeconfig>;
  /** Contexts left out, each with why, for a warning. */
  skipped: string[];
}

/**
 * The contexts of a Kubernetes agent's kubeconfig_file (Teleport's key). A context that cannot be
 * used (an exec plugin, no https server, a name kport cannot give a kube_cluster) is left out with
 * the reason; a file that cannot be read at all is a UserError that names the key.
 */
export function readKubeconfigContexts(path: string): KubeconfigContexts {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(
      `kubernetes_service.kubeconfig_file ${path} cannot be read (${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}): correct the path or the file's permissions.`,
      2,
    );
  }
  let kc;
  try {
    kc = parseKubeconfigText(text);
  } catch (err) {
    throw new UserError(`kubernetes_service.kubeconfig_file ${path}: ${(err as Error).message}.`, 2);
  }
  const contexts = new Map<string, StaticKubeconfig>();
  const skipped: string[] = [];
  const names = (Array.isArray(kc.contexts) ? kc.contexts : []).map((c) => c?.name).filter((n): n is string => typeof n === 'string');
  for (const name of names) {
    const problem = nameProblem(name);
    if (problem) {
      skipped.push(`context "${JSON.stringify(name).slice(1, -1)}": it cannot name a kube_cluster (${problem}); rename the context`);
      continue;
    }
    if (contexts.has(name)) continue;
    if (contexts.size >= MAX_KUBECONFIG_CLUSTERS) {
      skipped.push(`context "${name}" and the rest: a kubeconfig_file brings at most ${MAX_KUBECONFIG_CLUSTERS} clusters`);
      break;
    }
    try {
      contexts.set(name, withAbsolutePaths(readStaticKubeconfig(kc, name, { files: true }), dirname(path)));
    } catch (err) {
      skipped.push(`context "${name}": ${(err as Error).message}`);
    }
  }
  return { contexts, skipped };
}

/** kubectl reads a kubeconfig's relative file paths from the file's own directory; so does the agent. */
function withAbsolutePaths(kc: StaticKubeconfig, base: string): StaticKubeconfig {
  const fix = (rec: Record<string, unknown>, keys: string[]) =>
    Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, keys.includes(k) && typeof v === 'string' && !isAbsolute(v) ? resolve(base, v) : v]));
  return { ...kc, cluster: fix(kc.cluster, ['certificate-authority']), user: fix(kc.user, ['client-certificate', 'client-key', 'token-file']) };
}

/**
 * The kube_cluster records of these contexts, as the agent registers them: named by the context,
 * labelled with kubernetes_service.labels, its origin and its host id; no spec.aws, no kubeconfig.
 */
export function kubeconfigClusterRecords(names: Iterable<string>, labels: Record<string, string>, hostId: string): KubeCluster[] {
  return [...names].sort().map((name) => ({
    kind: KUBE_CLUSTER,
    version: 'v3',
    metadata: { name, labels: { ...labels, [LABEL.origin]: KUBECONFIG_ORIGIN, [LABEL.agentHost]: hostId } },
    spec: {},
  }));
}

export interface SyncResult {
  created: string[];
  updated: string[];
  deleted: string[];
  /** Names another origin (discovery, `kport create`, another agent) holds: not registered, each with why. */
  conflicts: string[];
  /** Names another Kubernetes agent registered with the same labels: served here too, its record left alone. */
  shared: string[];
}

/**
 * Makes the store hold exactly `wanted` among this agent's own kubeconfig clusters: creates the
 * new, rewrites the changed, removes those whose context left the file. A name another origin holds
 * is never overwritten (the server refuses it too); it is reported, and that context not served,
 * unless another Kubernetes agent registered it with the same labels: then both serve it.
 */
export async function syncKubeconfigClusters(backend: Backend, hostId: string, wanted: KubeCluster[], now = Date.now()): Promise<SyncResult> {
  const stored = await listResources<KubeCluster>(backend, KUBE_CLUSTER);
  const byName = new Map(stored.map((c) => [c.metadata.name, c]));
  const result: SyncResult = { created: [], updated: [], deleted: [], conflicts: [], shared: [] };
  const want = new Set(wanted.map((c) => c.metadata.name));
  for (const cluster of wanted) {
    const name = cluster.metadata.name;
    const existing = byName.get(name);
    if (existing && !registeredBy(existing, hostId)) {
      // Several agents with one kubeconfig_file and the same labels serve its clusters together (Teleport's
      // high availability); different labels would give one name two sets of rules: a conflict.
      if (registeringAgent(existing) !== undefined && sameLabels(existing, cluster)) {
        result.shared.push(name);
        continue;
      }
      const fix =
        registeringAgent(existing) !== undefined
          ? 'rename the context, or give this agent the same kubernetes_service.labels to serve it with that agent'
          : 'rename the context';
      result.conflicts.push(
        `kube_cluster "${name}" already exists (${originText(existing)}), so context "${name}" of kubernetes_service.kubeconfig_file is not served: ${fix}`,
      );
      continue;
    }
    try {
      if (!existing) {
        if (await createResource(backend, cluster, now)) result.created.push(name);
      } else if (!sameRecord(existing, cluster)) {
        const written = await backend.compareAndSwap(resourceKey(KUBE_CLUSTER, name), encodeResource(cluster), existing.metadata.revision ?? 0);
        if (written) result.updated.push(name);
      }
    } catch (err) {
      if (err instanceof AccessDeniedError && err.code !== 'agent_removed') {
        result.conflicts.push(`kube_cluster "${name}": ${err.message}`);
        continue;
      }
      throw err;
    }
  }
  for (const cluster of stored) {
    const name = cluster.metadata.name;
    if (!registeredBy(cluster, hostId) || want.has(name)) continue;
    if (await backend.delete(resourceKey(KUBE_CLUSTER, name), cluster.metadata.revision)) result.deleted.push(name);
  }
  return result;
}

function originText(cluster: KubeCluster): string {
  const labels = cluster.metadata.labels ?? {};
  const origin = labels[LABEL.origin];
  if (origin === KUBECONFIG_ORIGIN) return `registered by Kubernetes agent ${labels[LABEL.agentHost] ?? 'unknown'} with other labels`;
  if (origin === 'cloud') return 'discovered from AWS';
  // Through the server an agent never sees a static cluster's kubeconfig: any other is static.
  return 'a static cluster created with kport create';
}

/** The labels people's roles match, without the registering agent's host id. */
function sameLabels(a: KubeCluster, b: KubeCluster): boolean {
  const shape = (c: KubeCluster) =>
    JSON.stringify(
      Object.entries(c.metadata.labels ?? {})
        .filter(([k]) => k !== LABEL.agentHost)
        .sort(),
    );
  return shape(a) === shape(b);
}

function sameRecord(a: KubeCluster, b: KubeCluster): boolean {
  const shape = (c: KubeCluster) =>
    JSON.stringify({ d: c.metadata.description ?? null, l: Object.entries(c.metadata.labels ?? {}).sort(), s: c.spec, e: c.metadata.expires ?? null });
  return shape(a) === shape(b);
}
