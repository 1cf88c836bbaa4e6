import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse, ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';

/** How long a connection with nothing open on it may say nothing before the server closes it. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;

export interface IdleOptions {
  idleMs: number;
  /**
   * Whether the connection (an HTTP/2 session or an HTTP/1.1 socket) showed a host or user
   * certificate: a stranger's goes when its timer fires (ConnectionGuard shortens it), open
   * streams or not, as before.
   */
  authenticated(connection: ServerHttp2Session | Socket): boolean;
}

/**
 * The server's idle timeout (docs/architecture.md §9: idle and half-open connections must not pile up), which
 * must not cut what is open: a quiet watch, a `logs -f` with nothing to say and a port-forward carry
 * no frame for as long as their cluster is quiet, and the local proxy and the direct path hold them
 * for hours. node:http2 closes a session whose timer fires whatever streams it holds, and reset
 * that timer on a client's PING only for sessions that listen for PINGs (kubectl PINGs every 30 s;
 * helm and client-node never do), so a quiet watch was cut at 120 s.
 *
 * Here the timer of a certificate's connection that fires with a stream (HTTP/2) or a response
 * (HTTP/1.1) still open is re-armed instead, and the connection is looked at again one idle period
 * later; one that fires with nothing open is closed (a GOAWAY first on HTTP/2). An upgraded
 * HTTP/1.1 socket (exec, attach, port-forward, an agent's tunnel) has left the HTTP server's
 * timeout behind (node takes its timeout listener off at the upgrade): it lasts as long as its
 * session.
 */
export class IdleConnections {
  readonly #opts: IdleOptions;
  /** Streams open on each HTTP/2 session, responses unfinished on each HTTP/1.1 socket. */
  readonly #open = new WeakMap<object, number>();

  constructor(server: Http2SecureServer, opts: IdleOptions) {
    this.#opts = opts;
    // node arms the timer of every session and HTTP/1.1 socket; with a listener here it closes none itself.
    server.setTimeout(opts.idleMs);
    server.on('timeout', (connection: ServerHttp2Session | Socket) => this.#timedOut(connection));
    server.on('session', (session: ServerHttp2Session) => {
      session.on('stream', (stream) => {
        this.#count(session, 1);
        stream.once('close', () => this.#count(session, -1));
      });
    });
    server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      // HTTP/2 requests are counted as streams above.
      if (req.httpVersionMajor >= 2) return;
      const socket = req.socket as Socket;
      this.#count(socket, 1);
      res.once('close', () => this.#count(socket, -1));
    });
  }

  /** Open streams or responses on a connection (for tests and the server's own checks). */
  openOn(connection: object): number {
    return this.#open.get(connection) ?? 0;
  }

  #count(connection: object, by: number): void {
    this.#open.set(connection, Math.max(0, (this.#open.get(connection) ?? 0) + by));
  }

  #timedOut(connection: ServerHttp2Session | Socket): void {
    if (connection.destroyed || ('closed' in connection && connection.closed)) return;
    const session = isSession(connection) ? connection : undefined;
    if (!this.#opts.authenticated(connection) || this.openOn(connection) === 0) {
      if (!session) return void connection.destroy();
      // A GOAWAY tells the client not to start a request on it; nothing is open, so it closes at once.
      session.close();
      setTimeout(() => session.destroy(), 1000).unref();
      return;
    }
    // Still in use: look again one idle period from now (node fires a timer once, and its listener on a session once).
    if (session) session.setTimeout(this.#opts.idleMs, () => this.#timedOut(session));
    else connection.setTimeout(this.#opts.idleMs);
  }
}

function isSession(connection: ServerHttp2Session | Socket): connection is ServerHttp2Session {
  return typeof (connection as ServerHttp2Session).goaway === 'function';
}
