import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Forwarder, ForwardTarget } from './forwarder.ts';
import { rawStatus, respondStatus, sendStatus } from './status.ts';

export interface LocalProxy {
  port: number;
  /** The server URL of one cluster behind this proxy: its path prefix selects the cluster. */
  serverUrl(cluster: string): string;
  /**
   * The TLS server name (SNI) that also selects the cluster, for clients that drop the URL's
   * path (kubectl 1.32's `get --raw`, `kubectl proxy` without --append-server-path). The
   * kubeconfig names it as `tls-server-name`; the serving certificate covers it.
   */
  serverName(cluster: string): string;
  close(): Promise<void>;
}

export const CLUSTER_PREFIX = '/k/';
/** Serving certificates cover `*.${SNI_DOMAIN}`: one name per cluster behind a proxy. */
export const SNI_DOMAIN = 'kube.kport.internal';
const NO_CLUSTER =
  'the request names no cluster of this kport proxy: use the kubeconfig `kport kube login` wrote (its server URL ends in /k/<cluster>, its tls-server-name names the cluster)';

/**
 * kport's local listener: TLS on 127.0.0.1 with a required client certificate from the per-run
 * CA, HTTP/2 and HTTP/1.1 on one port (ALPN), upgrades over HTTP/1.1. One path prefix per cluster.
 */
export async function startLocalProxy(opts: {
  port?: number;
  tls: { cert: string; key: string; ca: string };
  targets: Map<string, ForwardTarget>;
  forwarder: Forwarder;
}): Promise<LocalProxy> {
  const server: Http2SecureServer = createSecureServer({
    allowHTTP1: true,
    cert: opts.tls.cert,
    key: opts.tls.key,
    ca: opts.tls.ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    // Small responses go out at once: Nagle's algorithm would hold a DATA frame behind the HEADERS frame's ACK.
    noDelay: true,
    // kubectl and k9s keep many watches on one HTTP/2 connection.
    settings: { maxConcurrentStreams: 1000 },
    // nghttp2 drops, unseen, any header whose value starts or ends in a space or tab: a padded
    // Impersonate-Group would vanish instead of being checked. Taken in, and trimmed as HTTP/1.1 is.
    strictFieldWhitespaceValidation: false,
  });
  // One DNS label per cluster, by position: cluster names may be longer than a label may be.
  const names = [...opts.targets.keys()];
  const serverName = (cluster: string) => `cluster-${names.indexOf(cluster)}.${SNI_DOMAIN}`;
  const bySni = new Map(names.map((n) => [serverName(n), opts.targets.get(n)!]));
  const route = (url: string | undefined, sni: string | false | null | undefined): { target: ForwardTarget; path: string } | { refusal: string } => {
    if (url?.startsWith(CLUSTER_PREFIX) !== true) {
      // No path prefix: the client kept only the host; the TLS server name still says which cluster.
      const target = typeof sni === 'string' ? bySni.get(sni.toLowerCase()) : undefined;
      return target && url ? { target, path: url } : { refusal: NO_CLUSTER };
    }
    const end = url.indexOf('/', CLUSTER_PREFIX.length);
    const encoded = url.slice(CLUSTER_PREFIX.length, end < 0 ? undefined : end);
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      name = encoded;
    }
    const target = opts.targets.get(name);
    if (!target)
      return {
        refusal: `this kport proxy serves no cluster ${JSON.stringify(name)}: \`kport kube ls\` lists the clusters you may reach, and \`kport kube login <cluster>\` serves one`,
      };
    return { target, path: end < 0 ? '/' : url.slice(end) };
  };
  // HTTP/1.1 clients arrive as 'request' events...
  server.on('request', (req, res) => {
    const found = route(req.url, (req.socket as TLSSocket).servername);
    if ('refusal' in found) return sendStatus(res, 403, found.refusal);
    opts.forwarder.handle(found.target, req, res, found.path);
  });
  // ...and HTTP/2 streams are served on the core API: adding a 'request' listener made node:http2
  // route h2 streams through its compatibility layer (a request and a response object each),
  // which costs CPU on every request; that listener is taken off 'stream' again.
  server.removeAllListeners('stream');
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const found = route(headers[':path'], (stream.session?.socket as TLSSocket | undefined)?.servername);
    if ('refusal' in found) {
      stream.on('error', () => {});
      return respondStatus(stream, 403, found.refusal);
    }
    opts.forwarder.handleStream(found.target, stream, trimFieldValues(headers), found.path);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const found = route(req.url, (req.socket as TLSSocket).servername);
    if ('refusal' in found) return rawStatus(socket, 403, found.refusal);
    void opts.forwarder.handleUpgrade(found.target, req, socket, head, found.path);
  });
  const sockets = new Set<Duplex>();
  server.on('secureConnection', (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('sessionError', () => {});
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    serverUrl: (cluster) => `https://127.0.0.1:${port}${CLUSTER_PREFIX}${encodeURIComponent(cluster)}`,
    serverName,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Long watches and tunnels would keep close() waiting forever.
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * HTTP/2 header values with the optional whitespace around them removed (RFC 9110 §5.5), as
 * node's HTTP/1.1 parser removes it: both protocols then check and forward the same values.
 */
export function trimFieldValues(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string') {
      if (padded(value)) headers[name] = value.replace(OWS, '');
    } else if (value?.some(padded)) headers[name] = value.map((v) => v.replace(OWS, ''));
  }
  return headers;
}

const OWS = /^[ \t]+|[ \t]+$/g;

function padded(value: string): boolean {
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  return first === 32 || first === 9 || last === 32 || last === 9;
}
