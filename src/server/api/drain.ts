import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse, ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * The server's connections, as draining (README "Diagnostics and draining") needs them: every TLS
 * connection until it closes, which are HTTP/2 sessions, and which HTTP/1.1 sockets were upgraded
 * (exec, attach, port-forward, an agent's tunnel) or have a response open.
 *
 * Once draining: each HTTP/2 session gets a GOAWAY (its open streams finish, the client opens new
 * ones on a new connection: through the load balancer, on another server), an HTTP/1.1 socket with
 * nothing open is closed and one with a response open is closed after it; an upgraded socket lasts
 * as long as its session. `settled` resolves when no connection is left.
 */
export class ConnectionDrain {
  readonly #sockets = new Set<TLSSocket>();
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #upgraded = new WeakSet<object>();
  readonly #responses = new WeakMap<object, number>();
  #draining = false;
  #settle?: () => void;

  constructor(server: Http2SecureServer) {
    server.on('secureConnection', (socket: TLSSocket) => {
      this.#sockets.add(socket);
      socket.once('close', () => {
        this.#sockets.delete(socket);
        if (this.#draining && this.#sockets.size === 0) this.#settle?.();
      });
    });
    server.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#draining) goaway(session);
    });
    server.on('upgrade', (_req: unknown, socket: Socket) => this.#upgraded.add(socket));
    server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      if (req.httpVersionMajor >= 2) return;
      const socket = req.socket;
      this.#responses.set(socket, (this.#responses.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const left = (this.#responses.get(socket) ?? 1) - 1;
        this.#responses.set(socket, left);
        // An upgrade's socket is the session's now: it goes when the session ends.
        if (this.#draining && left === 0 && !this.#upgraded.has(socket)) close(socket);
      });
    });
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Connections still open (every TLS connection: people's, agents', tunnels'). */
  get open(): number {
    return this.#sockets.size;
  }

  /** Tells every connection to finish what it has open and go; new streams go elsewhere. */
  begin(): void {
    this.#draining = true;
    for (const session of this.#sessions) goaway(session);
    for (const socket of this.#sockets)
      if (socket.alpnProtocol !== 'h2' && !this.#upgraded.has(socket) && (this.#responses.get(socket) ?? 0) === 0) close(socket);
  }

  /** Resolves once every connection has closed (draining only). */
  settled(): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const before = this.#settle;
      this.#settle = () => {
        before?.();
        resolve();
      };
    });
  }

  /**
   * The whole drain: the listener closed, every connection told to go (and `alsoGo`: tunnels, watches),
   * `graceMs` for what is open, then `close` (which tells what is left that it ends: an exec's
   * sentence, a watch's Status, given a second to reach its client before the rest is cut).
   */
  async run(server: Http2SecureServer, graceMs: number, alsoGo: () => void, close: () => Promise<void>): Promise<void> {
    server.close();
    this.begin();
    alsoGo();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    const cut = setTimeout(() => this.destroyAll(), 1000);
    await close();
    clearTimeout(cut);
    this.destroyAll();
  }

  /** What is left when the grace ends: cut. */
  destroyAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }
}

/** An HTTP/1.1 connection with nothing open: ended, and cut a second later if its client does not end its side. */
function close(socket: Socket): void {
  socket.end();
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** A GOAWAY, then the session closes once its open streams have (node's graceful close). */
function goaway(session: ServerHttp2Session): void {
  if (session.closed || session.destroyed) return;
  session.close();
}
