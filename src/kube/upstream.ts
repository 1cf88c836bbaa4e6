import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { Http1Pool } from './h1-pool.ts';
import { Http2Pool } from './h2-pool.ts';
import { UserError } from '../core/errors.ts';
import type { KubeCluster } from '../resources/kube-cluster.ts';
import { readStaticKubeconfig, type StaticKubeconfig } from '../resources/static-kubeconfig.ts';

/** Where and how the proxy reaches one cluster's API server. */
export interface Upstream {
  url: URL;
  /** HTTP/1.1 keep-alive connections: short requests, and everything when the server has no HTTP/2. */
  h1: Http1Pool;
  /** HTTP/2 sessions: watches and other long requests, and short ones past the HTTP/1.1 pool's limit. */
  h2: Http2Pool;
  /** node:https connections for upgrades (exec, attach, port-forward), tunnelled after the 101. */
  agent: Agent;
  /** The Authorization header value for the next request, if the cluster uses one. */
  authorization(): Promise<string | undefined>;
  /** The same, when it is at hand without waiting ('' for none); undefined when it must be fetched. */
  cachedAuthorization(): string | undefined;
}

/**
 * A static cluster's kubeconfig (spec.kubeconfig): the current context's server, CA and
 * credentials (token, client certificate or basic auth). Exec plugins are not run by the proxy, and
 * files it names are read only with `files` (a person's own proxy: resources/static-kubeconfig.ts).
 */
export function staticUpstream(cluster: KubeCluster, opts: { files?: boolean } = {}): Upstream {
  const name = cluster.metadata.name;
  try {
    return kubeconfigUpstream(readStaticKubeconfig(cluster.spec.kubeconfig ?? '', undefined, opts));
  } catch (err) {
    throw new UserError(`kube_cluster ${name}: ${(err as Error).message.replace(/\.$/, '')}.`);
  }
}

/** A kubeconfig context's server, CA and credentials (token, client certificate or basic auth). */
export function kubeconfigUpstream(kc: StaticKubeconfig): Upstream {
  const clusterEntry = kc.cluster;
  const userEntry = kc.user;
  const bytes = (data: unknown, file: unknown) =>
    typeof data === 'string' ? Buffer.from(data, 'base64') : typeof file === 'string' ? readFileSync(file) : undefined;
  const tls = {
    ca: bytes(clusterEntry['certificate-authority-data'], clusterEntry['certificate-authority']),
    cert: bytes(userEntry['client-certificate-data'], userEntry['client-certificate']),
    key: bytes(userEntry['client-key-data'], userEntry['client-key']),
    rejectUnauthorized: clusterEntry['insecure-skip-tls-verify'] !== true,
    ...(typeof clusterEntry['tls-server-name'] === 'string' && { servername: clusterEntry['tls-server-name'] }),
  };
  // Checked now, once: material that is no certificate or key would otherwise fail inside a
  // connection attempt, where nothing answers for it.
  try {
    createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key });
  } catch (err) {
    throw new Error(`its CA, client certificate or key is not a usable PEM certificate or key (${(err as Error).message})`);
  }
  const token =
    typeof userEntry.token === 'string'
      ? userEntry.token
      : typeof userEntry['token-file'] === 'string'
        ? readFileSync(userEntry['token-file'], 'utf8').trim()
        : undefined;
  const basic =
    typeof userEntry.username === 'string' ? Buffer.from(`${userEntry.username}:${String(userEntry.password ?? '')}`).toString('base64') : undefined;
  const authorization = token ? `Bearer ${token}` : basic ? `Basic ${basic}` : undefined;
  const url = kc.server;
  return { url, ...connections(url, tls), authorization: async () => authorization, cachedAuthorization: () => authorization ?? '' };
}

/** An EKS cluster: endpoint and CA from DescribeCluster, and a bearer token refreshed well before its 15 minutes run out. */
export function eksUpstream(input: {
  endpoint: string;
  caData: string;
  token: () => Promise<{ token: string; expiresAt: Date }>;
  now?: () => number;
}): Upstream {
  const now = input.now ?? Date.now;
  let current: { token: string; expiresAt: Date } | undefined;
  let pending: Promise<{ token: string; expiresAt: Date }> | undefined;
  const REFRESH_BEFORE_MS = 5 * 60_000;
  const fresh = () => current !== undefined && current.expiresAt.getTime() - REFRESH_BEFORE_MS > now();
  let header = '';
  return {
    url: new URL(input.endpoint),
    ...connections(new URL(input.endpoint), { ca: Buffer.from(input.caData, 'base64') }),
    async authorization() {
      if (!fresh()) {
        pending ??= input.token().finally(() => (pending = undefined));
        current = await pending;
        header = `Bearer ${current.token}`;
      }
      return header;
    },
    cachedAuthorization: () => (fresh() ? header : undefined),
  };
}

/** A server reached with TLS alone (a client certificate, no Authorization): the kport server's /k/<cluster> for a person. */
export function tlsUpstream(url: URL, tls: TlsOptions): Upstream {
  return { url, ...connections(url, tls), authorization: async () => undefined, cachedAuthorization: () => '' };
}

export interface TlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

function connections(url: URL, tls: TlsOptions): Pick<Upstream, 'h1' | 'agent' | 'h2'> {
  return {
    h1: new Http1Pool(tls),
    h2: new Http2Pool(url.origin, tls),
    agent: new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 64, ...tls }),
  };
}
