import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import type { Readable, Writable } from 'node:stream';
import type { ChunkRelay } from './relay.ts';
import { respondStatus, sendStatus, type KportCode } from './status.ts';

/**
 * One client's Kubernetes request and its response, whichever API of node:http or node:http2 it
 * came on. The one adapter the forwarding engine's callers share: the local proxy and an agent
 * (forwarder.ts), and the server's Kubernetes proxy (server/kubeproxy/tunnel-forward.ts).
 */
export interface ClientSide {
  method: string;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** Sends the status and headers now (watches send nothing for a while); the body goes to the writable returned, none when the client is gone. */
  respond(status: number, headers: OutgoingHttpHeaders): Writable | undefined;
  /** kport's own answer (status.ts); once the response began it can only break it (abort). */
  fail(code: KportCode, message: string): void;
  headersSent(): boolean;
  end(): void;
  /** Ends the response as broken (a reset stream, a cut connection): a watch's client re-lists, `logs -f` exits 1. */
  abort(): void;
  /** Whether the response is over: the client went away, or it was ended. */
  gone(): boolean;
  onClose(fn: () => void): void;
}

/** An HTTP/1.1 request, or an HTTP/2 one through node:http2's compatibility API. */
export function compatClient(req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse): ClientSide {
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
      // A second head would throw (ERR_HTTP_HEADERS_SENT): the response can only be broken now.
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
/** Destroyed with an error, a stream is reset (INTERNAL_ERROR); without one node may send NO_ERROR, which clients read as an end. */
const BROKEN = new Error('kport ended the stream');

/** An HTTP/2 request on node:http2's core API. A class, not an object of closures: one is made for every request. */
export class StreamClient implements ClientSide {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: ServerHttp2Stream;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
    this.body = stream;
    this.headers = headers;
    this.method = String(headers[':method'] ?? 'GET');
    // A client resetting its stream is not an error worth a crash.
    stream.on('error', ignore);
  }

  respond(status: number, out: OutgoingHttpHeaders): ServerHttp2Stream | undefined {
    if (this.gone()) return undefined;
    out[':status'] = status;
    this.body.respond(out);
    return this.body;
  }

  fail(code: KportCode, message: string): void {
    // A closed stream takes no answer: respond() would throw ERR_HTTP2_INVALID_STREAM.
    if (this.gone()) return;
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

/** How long the last bytes before a break (kport's last words, an upstream's tail) may take to reach the client before the response is broken anyway. */
export const LAST_BYTES_MS = 5_000;

/** Breaks the response once `tail` and what came before it went out, or LAST_BYTES_MS on if the client does not read them. */
export function abortAfter(client: ClientSide, relay: ChunkRelay, tail: Buffer): void {
  const reset = setTimeout(() => client.abort(), LAST_BYTES_MS);
  relay.write(tail, () => (clearTimeout(reset), client.abort()));
}
