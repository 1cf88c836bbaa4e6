import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { PassThrough, type Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { describeConnectError } from '../core/net-errors.ts';
import { forwardedHeaders, responseHeaders } from './forward-headers.ts';
import { NGHTTP2_CANCEL } from './h2-pool.ts';
import { impersonationFromHeaders, type ImpersonationResult } from './access.ts';
import type { KubeAccess } from '../roles/evaluate.ts';
import type { AuditLog } from './audit.ts';
import { ChunkRelay, relay } from './relay.ts';
import { isLongRunning, unsafePathReason } from './request-info.ts';
import { rawStatus } from './status.ts';
import { abortAfter, compatClient, StreamClient, type ClientSide } from './client-side.ts';
import type { Upstream } from './upstream.ts';

export interface ForwardTarget {
  name: string;
  upstream: Upstream;
  access: KubeAccess;
  /** --as / --as-groups: what a client that sends no Impersonate-* headers acts as. */
  defaults: { user?: string; groups?: string[] };
  /** Sent as Impersonate-Extra-<key>: the person and kport's session id, for the cluster's own audit log. */
  extra?: Record<string, string[]>;
  /** The person the request is for, when it is not the forwarder's own user (an agent serves many). */
  person?: string;
}

export interface ForwarderOptions {
  kportUser: string;
  audit?: AuditLog;
  /** Called once per finished request, for status displays. */
  onRequest?: (status: number) => void;
}

type ClientRequest = IncomingMessage | Http2ServerRequest;
type Admitted = Extract<ImpersonationResult, { ok: true }>;
type ClientResponse = ServerResponse | Http2ServerResponse;

/**
 * Forwards Kubernetes API requests to one cluster as the person's allowed identity: it replaces
 * the client's credentials with the proxy's, sets Impersonate-User/Group after checking what the
 * client asked for, streams responses without buffering, and tunnels upgrades byte for byte.
 * It knows nothing of the listener, so it can serve a local proxy or a shared service alike.
 */
export class Forwarder {
  readonly #opts: ForwarderOptions;

  constructor(opts: ForwarderOptions) {
    this.#opts = opts;
  }

  /** A request from an HTTP/1.1 client (or any client through node:http2's compatibility API). */
  handle(target: ForwardTarget, req: ClientRequest, res: ClientResponse, path: string): void {
    this.#forward(target, compatClient(req, res), path);
  }

  /** A request from an HTTP/2 client, on node:http2's core API: no request/response objects to build. */
  handleStream(target: ForwardTarget, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, path: string): void {
    this.#forward(target, new StreamClient(stream, headers), path);
  }

  #forward(target: ForwardTarget, client: ClientSide, path: string): void {
    const started = performance.now();
    const identity = this.#check(target, client.method, client.headers, path, started, (code, message) => client.fail(code, message));
    if (!identity) return;
    const go = (authorization: string | undefined) => {
      const { h1, h2 } = target.upstream;
      // Watches and followed logs share HTTP/2 connections; short requests go over HTTP/1.1 while it has room.
      if (h2.supported && (isLongRunning(path) || !h1.hasRoom())) this.#overHttp2(target, client, path, started, identity, authorization);
      else this.#overHttp1(target, client, path, started, identity, authorization);
    };
    // The common case needs no promise: the credentials are already at hand.
    const cached = target.upstream.cachedAuthorization();
    if (cached !== undefined) return go(cached || undefined);
    target.upstream.authorization().then(go, (err: Error) => {
      const message = noCredentials(target, err);
      this.#finish(target, client.method, path, started, identity, 502, () => client.fail(502, message), message);
    });
  }

  /** HTTP/2 to the API server: many watches share a few connections. */
  #overHttp2(target: ForwardTarget, client: ClientSide, path: string, started: number, identity: Admitted, authorization: string | undefined): void {
    const { method } = client;
    const hasBody = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
    const { session, release } = target.upstream.h2.acquire();
    const lead = [':method', method, ':path', joinPath(target.upstream.url.pathname, path), ':authority', target.upstream.url.host];
    const upstream = session.request(forwardedHeaders(lead, client.headers, identity, authorization, target.extra), { endStream: !hasBody });
    let status = 502;
    let failure: Error | undefined;
    // A client that goes away (a cancelled watch) releases the upstream stream.
    client.onClose(() => {
      if (!upstream.closed) upstream.close(NGHTTP2_CANCEL);
    });
    let relayed: ChunkRelay | undefined;
    upstream.once('response', (h) => {
      status = Number(h[':status']);
      const sink = client.respond(status, responseHeaders(h as IncomingHttpHeaders));
      if (sink) relayed = relay(upstream, sink);
    });
    upstream.once('close', () => {
      release();
      if (status === 502 && !client.headersSent()) {
        // The server turned HTTP/2 down: answer this request (if its body is still unread) over HTTP/1.1.
        if (!target.upstream.h2.supported && !hasBody) return void this.#overHttp1(target, client, path, started, identity, authorization);
        const message = unreachable(target, failure, upstream.rstCode ? `stream reset (${upstream.rstCode})` : undefined);
        this.#finish(target, method, path, started, identity, 502, () => client.fail(502, message), message);
      } else if (upstream.rstCode) {
        // Reset after its answer began (the cluster, or the server kport forwards to, broke it): a break,
        // not an end, once what came before it went out (a kport server's last words among it).
        if (relayed) abortAfter(client, relayed, Buffer.alloc(0));
        else client.abort();
        this.#finish(target, method, path, started, identity, status, undefined, `stream reset (${upstream.rstCode})`);
      } else {
        client.end();
        this.#finish(target, method, path, started, identity, status);
      }
    });
    upstream.on('error', (err) => {
      failure = err;
      target.upstream.h2.noteError(err);
    });
    if (hasBody) relay(client.body, upstream);
  }

  /** Short requests (and every request to an API server without HTTP/2): HTTP/1.1 keep-alive. */
  #overHttp1(target: ForwardTarget, client: ClientSide, path: string, started: number, identity: Admitted, authorization: string | undefined): void {
    const { dispatcher, done } = target.upstream.h1.begin();
    const { method } = client;
    const hasBody = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
    let status = 502;
    let controller: Dispatcher.DispatchController | undefined;
    let gone = false;
    let chunks: ChunkRelay | undefined;
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      done();
      if (error === undefined || gone) return this.#finish(target, method, path, started, identity, status);
      const message = unreachable(target, error);
      if (!client.headersSent()) return this.#finish(target, method, path, started, identity, 502, () => client.fail(502, message), message);
      client.abort();
      this.#finish(target, method, path, started, identity, status, undefined, message);
    };
    // A client that goes away (a cancelled log -f) releases the upstream request.
    client.onClose(() => {
      if (settled) return;
      gone = true;
      controller?.abort(new Error('the client went away'));
    });
    dispatcher.dispatch(
      {
        origin: target.upstream.url.origin,
        path: joinPath(target.upstream.url.pathname, path),
        method: method as Dispatcher.HttpMethod,
        headers: forwardedHeaders(['host', target.upstream.url.host], client.headers, identity, authorization, target.extra),
        // undici destroys the body it was given once it is sent; the client's stream is also its response.
        body: hasBody ? client.body.pipe(new PassThrough()) : null,
      },
      {
        onRequestStart(c) {
          controller = c;
          if (gone) c.abort(new Error('the client went away'));
        },
        onResponseStart(c, statusCode, headers) {
          status = statusCode;
          const sink = client.respond(statusCode, responseHeaders(headers));
          if (sink) chunks = new ChunkRelay(sink, { pause: () => c.pause(), resume: () => c.resume() });
        },
        onResponseData(_c, chunk) {
          chunks?.push(chunk);
        },
        onResponseEnd() {
          if (chunks) chunks.end();
          else client.end();
          settle();
        },
        onResponseError(_c, err) {
          settle(err);
        },
      },
    );
  }

  /** SPDY/3.1 and WebSocket (exec, attach, port-forward): tunnelled byte for byte after the 101. */
  async handleUpgrade(target: ForwardTarget, req: IncomingMessage, socket: Duplex, head: Buffer, path: string): Promise<void> {
    const started = performance.now();
    socket.on('error', () => socket.destroy());
    const allowed = await this.#admit(target, req.method ?? 'GET', req.headers, path, started, (code, message) => rawStatus(socket, code, message));
    if (!allowed) return;
    const { identity, authorization } = allowed;
    const upstreamReq = httpsRequest({
      protocol: 'https:',
      hostname: target.upstream.url.hostname,
      port: target.upstream.url.port || 443,
      method: req.method,
      path: joinPath(target.upstream.url.pathname, path),
      headers: forwardedHeaders(
        ['host', target.upstream.url.host, 'connection', 'Upgrade', 'upgrade', String(req.headers.upgrade)],
        req.headers,
        identity,
        authorization,
        target.extra,
      ),
      agent: target.upstream.agent,
    });
    upstreamReq.on('upgrade', (upstreamRes, upstreamSocket, upstreamHead) => {
      const lines = [`HTTP/1.1 ${upstreamRes.statusCode} ${upstreamRes.statusMessage}`];
      for (let i = 0; i < upstreamRes.rawHeaders.length; i += 2) lines.push(`${upstreamRes.rawHeaders[i]}: ${upstreamRes.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.pipe(socket);
      socket.pipe(upstreamSocket);
      const close = () => {
        socket.destroy();
        upstreamSocket.destroy();
      };
      // The cluster closing ends the client's side once the tail is written (destroying it would drop
      // the tail, a WebSocket close frame among it); a client that keeps its half open goes after 10 s.
      upstreamSocket.on('error', close).on('close', () => void socket.end(() => setTimeout(close, 10_000).unref()));
      socket.on('close', close);
      socket.once('close', () => this.#finish(target, req.method ?? 'GET', path, started, identity, upstreamRes.statusCode ?? 101));
    });
    upstreamReq.on('response', (upstreamRes) => {
      // The API server refused the upgrade: hand its answer to the client as it is.
      const chunks: Buffer[] = [];
      upstreamRes.on('data', (c: Buffer) => chunks.push(c));
      upstreamRes.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers = Object.entries(responseHeaders(upstreamRes.headers)).filter(([k]) => k !== 'content-length');
        const head = [
          `HTTP/1.1 ${upstreamRes.statusCode} ${upstreamRes.statusMessage}`,
          ...headers.map(([k, v]) => `${k}: ${String(v)}`),
          `content-length: ${body.length}`,
          'connection: close',
        ];
        socket.end(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]));
        this.#finish(target, req.method ?? 'GET', path, started, identity, upstreamRes.statusCode ?? 502);
      });
    });
    upstreamReq.on('error', (err) => {
      const message = unreachable(target, err);
      this.#finish(target, req.method ?? 'GET', path, started, identity, 502, () => rawStatus(socket, 502, message), message);
    });
    upstreamReq.end();
  }

  /** Who the request may act as, and the proxy's credentials; or the refusal, answered and audited. */
  async #admit(
    target: ForwardTarget,
    method: string,
    headers: IncomingHttpHeaders,
    path: string,
    started: number,
    refuse: (code: 400 | 403 | 502, message: string) => void,
  ): Promise<{ identity: Admitted; authorization: string | undefined } | undefined> {
    const identity = this.#check(target, method, headers, path, started, refuse);
    if (!identity) return undefined;
    try {
      return { identity, authorization: await target.upstream.authorization() };
    } catch (err) {
      const message = noCredentials(target, err);
      this.#finish(target, method, path, started, identity, 502, () => refuse(502, message), message);
      return undefined;
    }
  }

  /** The path and the impersonation the client asked for; a refusal is answered and audited here. */
  #check(
    target: ForwardTarget,
    method: string,
    headers: IncomingHttpHeaders,
    path: string,
    started: number,
    refuse: (code: 400 | 403, message: string) => void,
  ): Admitted | undefined {
    const unsafe = unsafePathReason(path);
    if (unsafe) {
      const message = `kport refused the request: ${unsafe}`;
      this.#finish(target, method, path, started, { ok: false, message }, 400, () => refuse(400, message), message);
      return undefined;
    }
    const identity = impersonationFromHeaders(target.access, headers, target.defaults);
    if (!identity.ok) {
      this.#finish(target, method, path, started, identity, 403, () => refuse(403, identity.message));
      return undefined;
    }
    return identity;
  }

  #finish(
    target: ForwardTarget,
    method: string,
    path: string,
    started: number,
    identity: ImpersonationResult,
    status: number,
    respond?: () => void,
    error?: string,
  ): void {
    respond?.();
    this.#opts.onRequest?.(status);
    this.#opts.audit?.record({
      at: Date.now(),
      durationMs: performance.now() - started,
      user: target.person ?? this.#opts.kportUser,
      cluster: target.name,
      method,
      path,
      status,
      identity,
      error,
    });
  }
}

/** Why the cluster did not answer, with the cause a person can act on (refused, DNS, TLS). */
function unreachable(target: ForwardTarget, err: unknown, otherwise?: string): string {
  const cause = describeConnectError(err) ?? otherwise ?? (err as Error | undefined)?.message ?? 'no response';
  return `kport could not reach ${target.name} at ${target.upstream.url.host}: ${cause}`;
}

function noCredentials(target: ForwardTarget, err: unknown): string {
  return `kport could not get credentials for ${target.name}: ${(err as Error).message}`;
}

function joinPath(base: string, path: string): string {
  return base === '/' || base === '' ? path : `${base.replace(/\/$/, '')}${path}`;
}
