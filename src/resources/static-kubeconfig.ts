// A kubeconfig as kport reads it: the file's shape, and a static kube_cluster's spec.kubeconfig
// (src/resources/kube-cluster.ts), which `create -f` checks (schemas.ts) and the proxy reaches
// (src/kube/upstream.ts).
import { parse } from 'yaml';

type Rec = Record<string, unknown>;

interface Named {
  name: string;
  [key: string]: unknown;
}

export interface KubeconfigFile {
  apiVersion?: string;
  kind?: string;
  clusters?: Named[];
  users?: Named[];
  contexts?: Array<Named & { context?: { cluster?: string; user?: string; namespace?: string } }>;
  'current-context'?: string;
  [key: string]: unknown;
}

/** The parts of a static cluster's kubeconfig (spec.kubeconfig) that the proxy uses: its current context's. */
export interface StaticKubeconfig {
  context: string;
  server: URL;
  cluster: Rec;
  user: Rec;
}

/** Parses a kubeconfig's text; throws one sentence when it is not a kubeconfig at all. */
export function parseKubeconfigText(text: string): KubeconfigFile {
  let kc: KubeconfigFile;
  try {
    kc = parse(text, { maxAliasCount: 100 }) as KubeconfigFile;
  } catch (err) {
    throw new Error(`its kubeconfig does not parse: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!kc || typeof kc !== 'object' || Array.isArray(kc)) throw new Error('its kubeconfig is not a YAML mapping with clusters, users and contexts');
  return kc;
}

/**
 * Reads a static cluster's kubeconfig (its current context, or `contextName`); throws one sentence
 * (without the cluster's name) when it cannot be used.
 */
export function readStaticKubeconfig(text: string | KubeconfigFile, contextName?: string): StaticKubeconfig {
  const kc = typeof text === 'string' ? parseKubeconfigText(text) : text;
  contextName ??= kc['current-context'] ?? kc.contexts?.[0]?.name;
  const context = Array.isArray(kc.contexts) ? kc.contexts.find((c) => c?.name === contextName)?.context : undefined;
  if (!context) throw new Error(`its kubeconfig has no context${contextName ? ` named "${contextName}"` : ''}`);
  const cluster = (Array.isArray(kc.clusters) ? kc.clusters.find((c) => c?.name === context.cluster)?.cluster : undefined) as Rec | undefined;
  const user = ((Array.isArray(kc.users) ? kc.users.find((u) => u?.name === context.user)?.user : undefined) ?? {}) as Rec;
  if (typeof cluster?.server !== 'string') throw new Error(`its kubeconfig has no server for context "${contextName}"`);
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new Error(`its kubeconfig's server "${cluster.server}" is not a URL`);
  }
  if (server.protocol !== 'https:') throw new Error(`its kubeconfig's server ${cluster.server} is not https://; kport reaches API servers over TLS only`);
  if (user.exec) throw new Error('exec credential plugins are not supported in a static kubeconfig; use a token or client certificate');
  return { context: String(contextName), server, cluster, user };
}

/** Why `kport create` must refuse this kubeconfig, or undefined. */
export function staticKubeconfigProblem(text: string): string | undefined {
  try {
    readStaticKubeconfig(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
