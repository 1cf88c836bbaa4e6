import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessDeniedError, type Backend } from '../backend/backend.ts';
import type { KubernetesServiceConfig } from '../config/schema.ts';
import { KUBE_CLUSTER, type KubeCluster } from '../resources/kube-cluster.ts';
import { KUBE_SERVER, type KubeServer } from '../resources/kube-server.ts';
import { kindPrefix } from '../resources/resource.ts';
import { heartbeatClusters, safeHostname } from '../resources/heartbeat-limits.ts';
import { listResources, upsertResource } from '../resources/store.ts';
import { isServed } from './targets.ts';
import type { ServedClusters } from './served-clusters.ts';

export const KUBE_SERVER_HEARTBEAT_MS = 30_000;
/** A poll writes many clusters at once: one heartbeat half a second after the first change. */
const CHANGE_SETTLE_MS = 500;

/**
 * The Kubernetes service's heartbeat: the kube_cluster names this host's kubernetes_service.resources
 * select, in `kube_server/<host id>` with a TTL of three intervals; written every interval and soon
 * after the inventory changes (a watch on kube_cluster). A store hiccup is retried next time; a
 * refusal (the agent was removed) ends it with the error.
 */
export async function runKubeServerHeartbeat(opts: {
  backend: Backend;
  hostId: string;
  service: KubernetesServiceConfig;
  signal: AbortSignal;
  intervalMs?: number;
  now?: () => Date;
  served?: ServedClusters;
  onBeat?: (clusters: string[]) => void;
}): Promise<void> {
  const interval = opts.intervalMs ?? KUBE_SERVER_HEARTBEAT_MS;
  const now = opts.now ?? (() => new Date());
  const started = now().toISOString();
  const host = safeHostname(hostname());
  let changed: (() => void) | undefined;
  void watchClusters(opts.backend, opts.signal, () => changed?.());
  opts.served?.watchFile(() => changed?.(), opts.signal);
  while (!opts.signal.aborted) {
    try {
      // With its ServedClusters (kubeconfig_file contexts registered, clusters it can reach), what that serves.
      await opts.served?.refresh();
      const clusters = opts.served
        ? opts.served.names()
        : (await listResources<KubeCluster>(opts.backend, KUBE_CLUSTER)).filter((c) => isServed(opts.service, c)).map((c) => c.metadata.name);
      const at = now();
      const beat: KubeServer = {
        kind: KUBE_SERVER,
        version: 'v1',
        metadata: { name: opts.hostId, description: `kport kubernetes service on ${host}`, expires: new Date(at.getTime() + 3 * interval).toISOString() },
        spec: { host_id: opts.hostId, hostname: host, clusters: heartbeatClusters(clusters), started, last_heartbeat: at.toISOString() },
      };
      await upsertResource(opts.backend, beat, at.getTime());
      opts.onBeat?.(beat.spec.clusters);
    } catch (err) {
      if (err instanceof AccessDeniedError) throw err;
    }
    const wait = new AbortController();
    changed = () => setTimeout(() => wait.abort(), CHANGE_SETTLE_MS).unref();
    await sleep(interval, undefined, { signal: AbortSignal.any([opts.signal, wait.signal]) }).catch(() => undefined);
    changed = undefined;
  }
}

/** Calls `onChange` on every kube_cluster change; a broken watch (a server restart) is opened again. */
async function watchClusters(backend: Backend, signal: AbortSignal, onChange: () => void): Promise<void> {
  while (!signal.aborted) {
    try {
      for await (const _event of backend.watch(kindPrefix(KUBE_CLUSTER), signal)) onChange();
    } catch {}
    await sleep(2000, undefined, { signal }).catch(() => undefined);
  }
}
