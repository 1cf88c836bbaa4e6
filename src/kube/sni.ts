import { createHash } from 'node:crypto';

/**
 * The TLS server name (SNI) that names a cluster at the kport server, for clients that drop a URL's
 * path (kubectl 1.32's `get --raw`, `kubectl proxy` without --append-server-path): one DNS label
 * under SERVER_SNI_DOMAIN, which the server's certificate covers with a wildcard. Cluster names may
 * be longer than a DNS label (63) and hold characters a label may not, so the label is a hash of
 * the name: stable across servers and restarts, the same for every client, and the server finds
 * the cluster by hashing the names it knows.
 */
export const SERVER_SNI_DOMAIN = 'kube.kport.internal';

export function clusterSniLabel(cluster: string): string {
  // 128 bits of SHA-256 as hex: 34 characters with the prefix, well inside a label.
  return `k-${createHash('sha256').update(cluster).digest('hex').slice(0, 32)}`;
}

/** The `tls-server-name` a kubeconfig entry for `cluster` at the server carries. */
export function clusterServerName(cluster: string): string {
  return `${clusterSniLabel(cluster)}.${SERVER_SNI_DOMAIN}`;
}

/** The label of a server name under SERVER_SNI_DOMAIN, or undefined for any other name. */
export function sniLabelOf(servername: string | false | null | undefined): string | undefined {
  if (typeof servername !== 'string') return undefined;
  const name = servername.toLowerCase();
  const suffix = `.${SERVER_SNI_DOMAIN}`;
  if (!name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  return label && !label.includes('.') ? label : undefined;
}
