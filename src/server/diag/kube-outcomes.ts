import type { IncomingHttpHeaders } from 'node:http';
import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { ServerMetrics } from './metrics.ts';

/**
 * Each Kubernetes request's end counted by the status it was answered with, HTTP/2 (the proxy takes
 * those as core streams) and HTTP/1.1 alike, watching the server's own events so the proxy needs
 * no hook. `owns` is the proxy's test of whether a request is for a cluster.
 */
export function countKubeOutcomes(
  server: Http2SecureServer,
  owns: (url: string | undefined, servername: string | false | null | undefined) => boolean,
  metrics: ServerMetrics,
): void {
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    if (!owns(headers[':path'] as string | undefined, (stream.session?.socket as TLSSocket | undefined)?.servername)) return;
    stream.once('close', () => metrics.kubeRequest(stream.headersSent ? Number(stream.sentHeaders[':status']) : undefined));
  });
  server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    if (req.httpVersionMajor >= 2 || !owns(req.url, (req.socket as TLSSocket).servername)) return;
    res.once('close', () => metrics.kubeRequest(res.headersSent ? res.statusCode : undefined));
  });
}
