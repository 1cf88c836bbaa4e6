// A kubeconfig as kport reads it: the file's shape, and a static kube_cluster's spec.kubeconfig
// (src/resources/kube-cluster.ts), which `create -f` checks (schemas.ts) and the proxy reaches
// (src/kube/upstream.ts).
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
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

/** The entries that name a file (kubectl reads them from disk): a cluster's and a user's (`tokenFile` is client-go's own spelling). */
const FILE_ENTRIES = { cluster: ['certificate-authority'], user: ['client-certificate', 'client-key', 'token-file', 'tokenFile'] } as const;
/** Entries kport's proxy does not act on: refused rather than silently sent without them. */
const UNUSED_ENTRIES = { cluster: ['proxy-url'], user: ['auth-provider', 'as', 'as-uid', 'as-groups', 'as-user-extra'] } as const;

/**
 * Reads a static cluster's kubeconfig (its current context, or `contextName`); throws one sentence
 * (without the cluster's name) when it cannot be used. A stored kubeconfig (spec.kubeconfig) carries
 * its credentials inline: a file it named would be read on whichever machine serves the cluster,
 * the server's own keys included, so it is refused unless `files` says the kubeconfig is the
 * serving host's own file (a Kubernetes agent's kubeconfig_file, its operator's).
 */
export function readStaticKubeconfig(text: string | KubeconfigFile, contextName?: string, opts: { files?: boolean } = {}): StaticKubeconfig {
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
  const unused = [
    ...UNUSED_ENTRIES.cluster.filter((k) => cluster[k] !== undefined).map((k) => `cluster.${k}`),
    ...UNUSED_ENTRIES.user.filter((k) => user[k] !== undefined).map((k) => `user.${k}`),
  ];
  if (unused.length > 0)
    throw new Error(
      `its kubeconfig uses ${unused.join(', ')}, which kport's proxy does not: reach the API server directly with a token or a client certificate`,
    );
  if (!opts.files) {
    const named = [
      ...FILE_ENTRIES.cluster.filter((k) => cluster[k] !== undefined).map((k) => `cluster.${k}`),
      ...FILE_ENTRIES.user.filter((k) => user[k] !== undefined).map((k) => `user.${k}`),
    ];
    if (named.length > 0)
      throw new Error(
        `its kubeconfig names a file (${named.join(', ')}), which kport does not read for a stored kubeconfig: put the credentials inline (certificate-authority-data, client-certificate-data, client-key-data, token), as \`kubectl config view --raw --flatten --minify\` writes them`,
      );
  }
  const tlsProblem = tlsMaterialProblem(cluster, user);
  if (tlsProblem) throw new Error(tlsProblem);
  return { context: String(contextName), server, cluster, user };
}

/** Why the inline CA, client certificate and key cannot make a TLS connection, or undefined. */
function tlsMaterialProblem(cluster: Rec, user: Rec): string | undefined {
  const pem = (value: unknown) => (typeof value === 'string' ? Buffer.from(value, 'base64') : undefined);
  const ca = pem(cluster['certificate-authority-data']);
  const cert = pem(user['client-certificate-data']);
  const key = pem(user['client-key-data']);
  if (!ca && !cert && !key) return undefined;
  if (Boolean(cert) !== Boolean(key))
    return `its kubeconfig has a client ${cert ? 'certificate without its key' : 'key without its certificate'}: give both client-certificate-data and client-key-data`;
  try {
    // A CA that holds no certificate makes a context that trusts nothing, rather than an error.
    if (ca) new X509Certificate(ca);
    createSecureContext({ ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) });
    return undefined;
  } catch (err) {
    return `its kubeconfig's certificate-authority-data, client-certificate-data or client-key-data is not a usable PEM certificate or key (${(err as Error).message})`;
  }
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
