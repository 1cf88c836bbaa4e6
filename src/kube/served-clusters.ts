import { statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { expandHome } from '../config/load.ts';
import type { Backend } from '../backend/backend.ts';
import type { KubernetesServiceConfig } from '../config/schema.ts';
import { KUBE_CLUSTER, registeringAgent, type KubeCluster } from '../resources/kube-cluster.ts';
import { getResource, listResources } from '../resources/store.ts';
import { kubeconfigClusterRecords, readKubeconfigContexts, syncKubeconfigClusters, type KubeconfigContexts } from './kubeconfig-clusters.ts';
import { isServed, upstreamFor } from './targets.ts';
import { kubeconfigUpstream, type Upstream } from './upstream.ts';

export interface ServedClustersOptions {
  backend: Backend;
  hostId: string;
  service: KubernetesServiceConfig;
  /** kubernetes_service.kubeconfig_file, resolved to an absolute path. */
  kubeconfigFile?: string;
  stsEndpoint?: string;
  warn: (message: string) => void;
  now?: () => Date;
}

/**
 * The clusters one Kubernetes service serves (an agent, or the server's in-process service):
 * the contexts of its own kubeconfig_file, each registered as a kube_cluster through `backend`,
 * and the kube_clusters its kubernetes_service.resources select that it can reach itself (EKS with
 * its own AWS identity; a static cluster's kubeconfig only where the store shows it, the server).
 * `refresh()` re-reads the file when it changed, registers, and takes a fresh look at the store;
 * `names()` is what the heartbeat says; `upstream(name)` how a request for one of them goes out.
 */
export class ServedClusters {
  readonly #opts: ServedClustersOptions;
  #file?: { mtimeMs: number; size: number; contexts: KubeconfigContexts['contexts'] };
  /** Own contexts whose name no other origin holds: served. */
  #own = new Set<string>();
  /** Other kube_clusters this service serves, as the store last showed them. */
  #records = new Map<string, KubeCluster>();
  readonly #upstreams = new Map<string, { key: string; source: object; upstream: Promise<Upstream> }>();
  readonly #warned = new Set<string>();

  /** Reads the kubeconfig_file now: a file that cannot be used stops the service at start (UserError, exit 2). */
  constructor(opts: ServedClustersOptions) {
    this.#opts = opts;
    this.#readFile();
  }

  /** Re-reads the kubeconfig_file when it changed, brings its clusters' records up to date, and reads which clusters are served. */
  async refresh(): Promise<void> {
    const { backend, hostId, service } = this.#opts;
    const contexts = this.#readFile();
    if (contexts) {
      const wanted = kubeconfigClusterRecords(contexts.keys(), service.labels ?? {}, hostId);
      const result = await syncKubeconfigClusters(backend, hostId, wanted, (this.#opts.now?.() ?? new Date()).getTime());
      for (const conflict of result.conflicts) this.#warnOnce(conflict);
      const refused = new Set(result.conflicts.map((c) => /^kube_cluster "([^"]+)"/.exec(c)?.[1]));
      this.#own = new Set([...contexts.keys()].filter((name) => !refused.has(name)));
    }
    const stored = await listResources<KubeCluster>(backend, KUBE_CLUSTER);
    this.#records = new Map(stored.filter((c) => this.#servesRecord(c)).map((c) => [c.metadata.name, c]));
    // Clusters no longer served keep no connection pools.
    for (const name of this.#upstreams.keys()) if (!this.#own.has(name) && !this.#records.has(name)) this.#upstreams.delete(name);
  }

  /** Calls `onChange` when the kubeconfig_file changes (its stat, looked at every 2 s), until `signal`. */
  watchFile(onChange: () => void, signal: AbortSignal): void {
    const path = this.#opts.kubeconfigFile;
    if (!path || signal.aborted) return;
    const listener = (now: Stats, before: Stats) => (now.mtimeMs !== before.mtimeMs || now.size !== before.size ? onChange() : undefined);
    watchFile(path, { interval: 2000, persistent: false }, listener);
    signal.addEventListener('abort', () => unwatchFile(path, listener), { once: true });
  }

  /** The served cluster names, for the kube_server heartbeat. */
  names(): string[] {
    return [...new Set([...this.#own, ...this.#records.keys()])].sort();
  }

  /**
   * How to reach a served cluster, or undefined when this service does not serve it. Cached per
   * cluster (connection pools, an EKS endpoint) until its record or context changes; a cluster
   * created since the last refresh is looked up in the store once.
   */
  async upstream(name: string): Promise<Upstream | undefined> {
    const context = this.#own.has(name) ? this.#file?.contexts.get(name) : undefined;
    if (context)
      return this.#cached(
        name,
        context,
        () => `context:${JSON.stringify(context)}`,
        async () => kubeconfigUpstream(context),
      );
    let record = this.#records.get(name);
    if (!record) {
      const found = await getResource<KubeCluster>(this.#opts.backend, KUBE_CLUSTER, name);
      if (!found || !this.#servesRecord(found)) return undefined;
      record = found;
    }
    const cluster = record;
    const key = () => `record:${JSON.stringify([cluster.spec, cluster.metadata.labels ?? {}])}`;
    return this.#cached(name, cluster, key, () => upstreamFor(cluster, { service: this.#opts.service, stsEndpoint: this.#opts.stsEndpoint }));
  }

  /** `source` is the context or record as held now: the same object is the same key, without serialising it on every request. */
  #cached(name: string, source: object, keyOf: () => string, make: () => Promise<Upstream>): Promise<Upstream> {
    const held = this.#upstreams.get(name);
    if (held?.source === source) return held.upstream;
    const key = keyOf();
    if (held?.key === key) {
      held.source = source;
      return held.upstream;
    }
    const upstream = make();
    this.#upstreams.set(name, { key, source, upstream });
    // A failure (AWS unreachable) is tried again by the next request, not remembered.
    upstream.catch(() => this.#upstreams.get(name)?.upstream === upstream && this.#upstreams.delete(name));
    return upstream;
  }

  /** A stored cluster this service reaches itself: selected by its resources, never another agent's kubeconfig_file cluster, and with a way in. */
  #servesRecord(cluster: KubeCluster): boolean {
    if (registeringAgent(cluster) !== undefined) return false;
    if (!cluster.spec.aws && !cluster.spec.kubeconfig) return false;
    return this.#opts.service.resources.length > 0 && isServed(this.#opts.service, cluster);
  }

  /** The file's contexts, read again only when its size or mtime changed; undefined without a kubeconfig_file. */
  #readFile(): KubeconfigContexts['contexts'] | undefined {
    const path = this.#opts.kubeconfigFile;
    if (!path) return undefined;
    let stat;
    try {
      stat = statSync(path);
    } catch {
      stat = undefined;
    }
    if (this.#file && stat && stat.mtimeMs === this.#file.mtimeMs && stat.size === this.#file.size) return this.#file.contexts;
    // A file that became unreadable keeps what was served: a half-written file is not "every context removed".
    if (this.#file && !stat) return this.#file.contexts;
    let read: KubeconfigContexts;
    try {
      read = readKubeconfigContexts(path);
    } catch (err) {
      // At start a bad file stops the service; later (a file being rewritten) what was served stays.
      if (!this.#file) throw err;
      this.#warnOnce(`${(err as Error).message.replace(/\.$/, '')}; kport keeps serving its clusters as they were`);
      return this.#file.contexts;
    }
    const { contexts, skipped } = read;
    for (const why of skipped) this.#warnOnce(`kubernetes_service.kubeconfig_file ${path}: ${why}; that context is not served`);
    this.#file = { mtimeMs: stat?.mtimeMs ?? 0, size: stat?.size ?? 0, contexts };
    return contexts;
  }

  #warnOnce(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#opts.warn(message);
  }
}

/** The ServedClusters of a kubernetes_service config: its kubeconfig_file read as kubectl would name it (`~`, relative to `cwd`). */
export function servedClustersOf(
  input: Omit<ServedClustersOptions, 'kubeconfigFile' | 'stsEndpoint'> & { cwd: string; env: NodeJS.ProcessEnv },
): ServedClusters {
  const file = input.service.kubeconfig_file;
  return new ServedClusters({
    ...input,
    ...(file && { kubeconfigFile: resolve(input.cwd, expandHome(file, input.env)) }),
    stsEndpoint: input.env.AWS_ENDPOINT_URL_STS || input.env.AWS_ENDPOINT_URL || undefined,
  });
}
