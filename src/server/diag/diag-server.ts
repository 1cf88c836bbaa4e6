import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { sourceKey } from '../call/limits.ts';
import type { ServerMetrics } from './metrics.ts';
import type { Readiness } from './readiness.ts';

/**
 * The diagnostics listener's bounds: plain HTTP, for a load balancer's checks and a Prometheus
 * scraper, so a handful of connections, small heads, no bodies and short timeouts suffice; anything
 * else is cut rather than held. A balancer or a scraper needs one or two connections each, so one
 * source address may hold only perSource of them (the rest are closed at once), and a connection
 * must finish a request's head within headMs of opening, so idle ones cannot sit on the slots: one
 * address cannot keep the checks of the others out. A connection carries one request (the answer
 * says Connection: close; a pipelined second one cuts it) and lives requestMs at most,
 * read or not: queued answers cannot pile up in memory. When every slot is taken, the oldest
 * connection that has not sent a whole head yet makes room, so a few hosts holding slots open
 * cannot keep a balancer's quick check out. Scrapes at once share one rendering of /metrics.
 */
export const DIAG_LIMITS = {
  connections: 64,
  perSource: 8,
  headerBytes: 8 * 1024,
  headMs: 2000,
  requestMs: 10_000,
} as const;

export interface DiagDeps {
  host: string;
  port: number;
  readiness: Readiness;
  metrics: ServerMetrics;
}

/**
 * `teleport.diag_addr` (README "Diagnostics"), as Teleport's: `/healthz` (200 while the process
 * runs), `/readyz` (200 "ready", or 503 and one line saying why not) and `/metrics` (Prometheus
 * text). It tells nothing secret (no names, keys or addresses of people or agents), but it is meant
 * for the machine's own network: 127.0.0.1 unless the address names another.
 */
export class DiagServer {
  readonly #deps: DiagDeps;
  readonly #server: Server;
  /** Open connections by source (sourceKey: an address, or an IPv6 /64), for DIAG_LIMITS.perSource. */
  readonly #bySource = new Map<string, number>();
  /** Each connection's head deadline; cleared when its head arrives. */
  readonly #headTimers = new WeakMap<Socket, NodeJS.Timeout>();
  /** Open connections, oldest first, and those whose one request has arrived. */
  readonly #open = new Set<Socket>();
  readonly #asked = new WeakSet<Socket>();
  /** The rendering in progress: concurrent scrapes share it. */
  #scrape?: ReturnType<ServerMetrics['scrape']>;

  constructor(deps: DiagDeps) {
    this.#deps = deps;
    this.#server = createServer(
      {
        maxHeaderSize: DIAG_LIMITS.headerBytes,
        headersTimeout: DIAG_LIMITS.headMs,
        requestTimeout: DIAG_LIMITS.requestMs,
        keepAliveTimeout: DIAG_LIMITS.headMs,
      },
      (req, res) => {
        // One request per connection: a client that pipelines a second is cut (answers would queue unread,
        // and its requests pile up while the parser reads on); checkers and scrapers never pipeline.
        if (this.#asked.has(req.socket)) return void req.socket.destroy();
        this.#asked.add(req.socket);
        clearTimeout(this.#headTimers.get(req.socket));
        res.shouldKeepAlive = false;
        void this.#answer(req, res);
      },
    );
    // Node checks headersTimeout only every connectionsCheckingInterval (30 s): the head deadline is
    // a timer of our own per connection, and the per-source count is kept here.
    this.#server.on('connection', (socket: Socket) => {
      // An IPv6 /64 is one source, as for the main port's bounds: one host has them all.
      const source = sourceKey(socket.remoteAddress);
      const held = this.#bySource.get(source) ?? 0;
      if (held >= DIAG_LIMITS.perSource) return void socket.destroy();
      if (this.#open.size >= DIAG_LIMITS.connections) {
        const idle = [...this.#open].find((open) => !this.#asked.has(open));
        if (!idle) return void socket.destroy();
        idle.destroy();
        this.#open.delete(idle);
      }
      this.#bySource.set(source, held + 1);
      this.#open.add(socket);
      // Its whole life, an unread answer included.
      const life = setTimeout(() => socket.destroy(), DIAG_LIMITS.requestMs);
      life.unref();
      socket.once('close', () => {
        this.#open.delete(socket);
        clearTimeout(life);
        clearTimeout(this.#headTimers.get(socket));
        const left = (this.#bySource.get(source) ?? 1) - 1;
        if (left > 0) this.#bySource.set(source, left);
        else this.#bySource.delete(source);
      });
      this.#armHead(socket);
    });
    this.#server.setTimeout(DIAG_LIMITS.requestMs, (socket) => socket.destroy());
    // A head past headerBytes is told so (431), anything else malformed 400; then the connection goes.
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage)
        socket.end(
          err.code === 'HPE_HEADER_OVERFLOW'
            ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n'
            : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n',
        );
      socket.destroy();
    });
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = this.#server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#deps.port, this.#deps.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as { address: string; port: number };
    return { host: address.address, port: address.port };
  }

  async close(): Promise<void> {
    const server = this.#server;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  #armHead(socket: Socket): void {
    if (socket.destroyed) return;
    clearTimeout(this.#headTimers.get(socket));
    const timer = setTimeout(() => socket.destroy(), DIAG_LIMITS.headMs);
    timer.unref();
    this.#headTimers.set(socket, timer);
  }

  async #answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // No route takes a body: one sent is not read, and the connection goes after the answer.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.shouldKeepAlive = false;
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, `${req.method ?? ''} is not served here: use GET\n`, { allow: 'GET, HEAD' });
    try {
      if (path === '/healthz') return text(res, 200, 'ok\n');
      if (path === '/readyz') {
        const verdict = await this.#deps.readiness.check();
        return verdict.ready ? text(res, 200, 'ready\n') : text(res, 503, `not ready: ${verdict.why}\n`);
      }
      if (path === '/metrics') {
        // Scrapes that arrive while one renders share its text: they cannot be made to cost a render each.
        this.#scrape ??= this.#deps.metrics.scrape().finally(() => (this.#scrape = undefined));
        const { contentType, text: body } = await this.#scrape;
        return text(res, 200, body, { 'content-type': contentType });
      }
      return text(res, 404, 'not found: the diagnostics address serves /healthz, /readyz and /metrics\n');
    } catch (err) {
      return text(res, 500, `the diagnostics failed: ${(err as Error).message}\n`);
    }
  }
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
