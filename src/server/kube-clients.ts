import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import { respondStatus, sendStatus, type KportCode } from '../kube/status.ts';
import type { TunnelClient } from './tunnel-forward.ts';

// A person's Kubernetes request as the tunnel forwarding takes it (tunnel-forward.ts), whichever
// API of node:http2 it came on.

/** An HTTP/1.1 request, or an HTTP/2 one through node:http2's compatibility API. */
export function compatClient(req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse): TunnelClient {
  const r = res as ServerResponse;
  return {
    method: req.method ?? 'GET',
    headers: req.headers,
    body: req as IncomingMessage,
    respond(status, headers) {
      r.writeHead(status, headers);
      r.flushHeaders();
      return r;
    },
    fail: (code, message) => {
      if (!r.headersSent) sendStatus(r, code, message);
      else r.destroy();
    },
    headersSent: () => r.headersSent,
    end: () => {
      if (!r.writableEnded) r.end();
    },
    abort: () => r.destroy(),
    gone: () => r.destroyed || (r.writableEnded && r.writableFinished),
    onClose: (fn) => r.once('close', fn),
  };
}

const ignore = () => {};
const BROKEN = new Error('kport ended the stream');

/** A class, not an object of closures: one is made for every HTTP/2 request. */
export class StreamClient implements TunnelClient {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: ServerHttp2Stream;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
    this.body = stream;
    this.headers = headers;
    this.method = String(headers[':method'] ?? 'GET');
    stream.on('error', ignore);
  }

  respond(status: number, out: Record<string, unknown>): ServerHttp2Stream | undefined {
    if (this.body.destroyed || this.body.closed) return undefined;
    this.body.respond({ ...out, ':status': status });
    return this.body;
  }

  fail(code: KportCode, message: string): void {
    if (this.body.destroyed || this.body.closed) return;
    if (!this.body.headersSent) respondStatus(this.body, code, message);
    else this.abort();
  }

  headersSent(): boolean {
    return this.body.headersSent;
  }

  end(): void {
    if (!this.body.writableEnded && !this.body.destroyed) this.body.end();
  }

  abort(): void {
    // close(code) on a stream whose writable side is open ends it first (END_STREAM), and the client
    // reads a clean end (a watch "finished", logs -f exit 0): destroy() with an error resets it alone.
    if (!this.body.destroyed) this.body.destroy(BROKEN);
  }

  gone(): boolean {
    return this.body.closed || this.body.destroyed;
  }

  onClose(fn: () => void): void {
    this.body.once('close', fn);
  }
}
