import { sniLabelOf } from '../../kube/sni.ts';

export const KUBE_PREFIX = '/k/';

/** The cluster a request names, and the path to send it: by its URL (`/k/<cluster>/...`), else by the TLS server name it came by. */
export interface ClusterRoute {
  name: string;
  path: string;
  /** The TLS server name, when the cluster was named by it. */
  sni?: string;
}

/**
 * `/k/<cluster>/<path>`: the name ends at the next segment or at the query, so `/k/lab?x=1` is
 * cluster lab, path `/?x=1` (it once read as cluster "lab?x=1"). By SNI, `bySni` maps a server
 * name's label to its cluster (an unknown label: the empty name, which no cluster has).
 */
export function clusterRoute(url: string | undefined, servername: string | undefined, bySni: ReadonlyMap<string, string>): ClusterRoute | undefined {
  if (url?.startsWith(KUBE_PREFIX)) {
    const slash = url.indexOf('/', KUBE_PREFIX.length);
    const query = url.indexOf('?', KUBE_PREFIX.length);
    const end = query >= 0 && (slash < 0 || query < slash) ? query : slash;
    const encoded = url.slice(KUBE_PREFIX.length, end < 0 ? undefined : end);
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      name = encoded;
    }
    return { name, path: end < 0 ? '/' : end === query ? `/${url.slice(end)}` : url.slice(end) };
  }
  const label = sniLabelOf(servername);
  return label && url && /^[a-z0-9-]{1,63}$/.test(label) ? { name: bySni.get(label) ?? '', path: url, sni: servername!.toLowerCase() } : undefined;
}

/**
 * Why an upgrade's Upgrade header is refused, or undefined: it must name one protocol, as clients
 * name it. `websocket, SPDY/3.1` once went on to be decided as one protocol and passed on as the
 * other, and kubectl waited for an answer that never came.
 */
export function upgradeProblem(header: string | string[] | undefined): string | undefined {
  const protocol = String(header ?? '').trim();
  if (/^(?:websocket|spdy\/3\.1)$/i.test(protocol)) return undefined;
  return `kport refused the upgrade: its Upgrade header must name one protocol, websocket or SPDY/3.1 (it named ${JSON.stringify(protocol)})`;
}
