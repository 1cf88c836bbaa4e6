import type { KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { isImpersonation } from '../kube/access.ts';
import type { AuditLog } from '../kube/audit.ts';
import { ORIGINAL_USER_EXTRA, SESSION_ID_EXTRA } from '../kube/forward-headers.ts';
import { Forwarder, type ForwardTarget } from '../kube/forwarder.ts';
import { NGHTTP2_CANCEL } from '../kube/h2-pool.ts';
import { rawStatus, respondStatus, type KportCode } from '../kube/status.ts';
import type { Upstream } from '../kube/upstream.ts';
import { IdentityRefused, verifyIdentity, type KubeIdentity } from './identity.ts';
import { IDENTITY_HEADER } from './protocol.ts';

export interface AgentKubeServiceOptions {
  /** This agent's host id: identities made for any other agent are refused. */
  hostId: string;
  /**
   * The public half of the server's kube_identity key (join and renewal answers carry it);
   * undefined while an identity from before tunnels has not renewed yet: every stream is refused.
   */
  identityKey: () => CryptoKey | KeyObject | undefined;
  /** The cluster's API server, when this agent serves it. */
  upstream: (cluster: string) => Promise<Upstream | undefined>;
  audit?: AuditLog;
  /** Why streams were refused; at most one line a minute (the server sees each refusal itself). */
  warn?: (message: string) => void;
  now?: () => number;
}

/** Verified identities kept (about 1 KiB each); past this, the cache starts again (the server reuses a signature for about a minute, so few are live). */
const MAX_CACHED = 10_000;
const WARN_EVERY_MS = 60_000;
/** setTimeout's limit; a later expiry is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * Streams still open this long after the person's certificate expired are ended here. The server
 * ends them at the expiry itself, telling the person why (a watch's last event, an exec's error
 * channel); a reset from here first, on a clock a little ahead of the server's, would say nothing.
 */
const AFTER_EXPIRY_MS = 5_000;

/**
 * The agent's half of a proxied Kubernetes request (docs/architecture.md §9): every stream the server opens on
 * the reverse tunnel carries a signed identity, which is checked (signature, this agent as audience,
 * expiry, a cluster served here) before anything reaches a cluster. The client's own Impersonate-*
 * headers are dropped; the identity's user and groups, the person and kport's session id go out as
 * Impersonate-User/Group/Extra through the same Forwarder the local proxy uses. Streams end when
 * the person's certificate expires.
 */
export class AgentKubeService {
  readonly #opts: AgentKubeServiceOptions;
  readonly #now: () => number;
  readonly #forwarder: Forwarder;
  /** Upgrades (exec, attach, port-forward) arrive as raw HTTP/1.1 inside a CONNECT stream: this server parses them and never listens. */
  readonly #upgrades: Server;
  readonly #targets = new WeakMap<Duplex, ForwardTarget>();
  /** Open streams by the expiry of their person's certificate. */
  readonly #ending = new Map<number, Set<ServerHttp2Stream>>();
  #verified = new Map<string, Promise<KubeIdentity>>();
  #verifiedWith: CryptoKey | KeyObject | undefined;
  #lastWarn = -Infinity;
  #unwarned = 0;

  constructor(opts: AgentKubeServiceOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#forwarder = new Forwarder({ kportUser: `agent ${opts.hostId}`, audit: opts.audit });
    this.#upgrades = createServer();
    this.#upgrades.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const target = this.#targets.get(socket);
      if (!target) return rawStatus(socket, 400, 'kport refused the upgrade: its stream carried no identity');
      stripImpersonation(req.headers);
      void this.#forwarder.handleUpgrade(target, req, socket, head, req.url ?? '/');
    });
    this.#upgrades.on('request', (_req, res) => {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('kport: a CONNECT stream carries only an upgrade (exec, attach, port-forward)\n');
    });
    this.#upgrades.on('clientError', (_err, socket: Duplex) => rawStatus(socket, 400, 'kport refused the upgrade: it is not a valid HTTP/1.1 request'));
  }

  /** Serves every stream the server opens on one tunnel session, until it closes. */
  serve(session: ServerHttp2Session): void {
    session.on('stream', (stream, headers) => void this.#stream(stream, headers));
    // The tunnel's own failures are the dialler's to report and redial.
    session.on('error', () => {});
  }

  async #stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    stream.on('error', () => {});
    const token = headers[IDENTITY_HEADER];
    delete headers[IDENTITY_HEADER];
    stripImpersonation(headers);
    let identity: KubeIdentity;
    try {
      if (typeof token !== 'string' || token === '') throw new IdentityRefused('the stream carries no identity');
      identity = await this.#verify(token);
    } catch (err) {
      const reason = err instanceof IdentityRefused ? err.message : `the identity could not be checked: ${(err as Error).message}`;
      return this.#refuse(stream, 403, `kport agent ${this.#opts.hostId} refused the request: ${reason}`);
    }
    let upstream: Upstream | undefined;
    try {
      upstream = await this.#opts.upstream(identity.cluster);
    } catch (err) {
      return this.#refuse(stream, 503, `kport agent ${this.#opts.hostId} cannot serve cluster ${identity.cluster} right now: ${(err as Error).message}`);
    }
    if (!upstream) return this.#refuse(stream, 404, `kport agent ${this.#opts.hostId} does not serve cluster ${identity.cluster}`);
    upstream.h1.preferHttp2 = true;
    if (stream.destroyed) return;
    const target: ForwardTarget = {
      name: identity.cluster,
      upstream,
      access: { users: [identity.kubeUser], groups: identity.kubeGroups },
      defaults: { user: identity.kubeUser, groups: identity.kubeGroups },
      extra: { [ORIGINAL_USER_EXTRA]: [identity.person], [SESSION_ID_EXTRA]: [identity.sessionId] },
      person: identity.person,
    };
    this.#endAt(stream, identity.certExpires + AFTER_EXPIRY_MS);
    if (headers[':method'] === 'CONNECT') {
      stream.respond({ ':status': 200 });
      this.#targets.set(stream, target);
      this.#upgrades.emit('connection', stream);
      return;
    }
    this.#forwarder.handleStream(target, stream, headers, String(headers[':path'] ?? '/'));
  }

  /** A verified identity, from the cache while it lasts: a signature check costs ~170 µs. */
  async #verify(token: string): Promise<KubeIdentity> {
    const key = this.#opts.identityKey();
    if (!key)
      throw new IdentityRefused(
        "this agent has no copy of the server's identity key yet: it gets one when it renews its certificate (at start, for an agent that joined before tunnels)",
      );
    if (key !== this.#verifiedWith || this.#verified.size >= MAX_CACHED) {
      this.#verified = new Map();
      this.#verifiedWith = key;
    }
    let pending = this.#verified.get(token);
    if (!pending) {
      pending = verifyIdentity(key, token, { hostId: this.#opts.hostId, now: this.#now() }).then(sendable);
      this.#verified.set(token, pending);
      pending.catch(() => this.#verified.delete(token));
    }
    const identity = await pending;
    const now = this.#now();
    if (identity.expires <= now || identity.certExpires <= now) {
      this.#verified.delete(token);
      throw new IdentityRefused('the identity has expired');
    }
    return identity;
  }

  /**
   * Long-running streams (watches, logs -f, exec) end when the person's certificate does (and
   * AFTER_EXPIRY_MS). One timer per certificate, not per stream: a person's requests share it.
   */
  #endAt(stream: ServerHttp2Stream, at: number): void {
    if (at <= this.#now()) return void stream.close(NGHTTP2_CANCEL);
    let streams = this.#ending.get(at);
    if (!streams) {
      const group = new Set<ServerHttp2Stream>();
      streams = group;
      this.#ending.set(at, group);
      const fire = () => {
        const left = at - this.#now();
        if (left > 0) return void setTimeout(fire, Math.min(left, MAX_TIMER_MS)).unref();
        this.#ending.delete(at);
        for (const s of group) s.close(NGHTTP2_CANCEL);
      };
      fire();
    }
    const group = streams;
    group.add(stream);
    stream.once('close', () => group.delete(stream));
  }

  #refuse(stream: ServerHttp2Stream, code: KportCode, message: string): void {
    if (!stream.destroyed && !stream.headersSent) respondStatus(stream, code, message);
    const now = this.#now();
    if (now - this.#lastWarn < WARN_EVERY_MS) return void this.#unwarned++;
    const more = this.#unwarned > 0 ? ` (and ${this.#unwarned} more since the last such line)` : '';
    this.#lastWarn = now;
    this.#unwarned = 0;
    this.#opts.warn?.(`${message}${more}`);
  }
}

/** Printable ASCII without leading or trailing blanks: what node:http2 and the API server take as a header value. */
const HEADER_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** An identity whose names could not go out as headers would fail at node:http2, after the checks. */
function sendable(identity: KubeIdentity): KubeIdentity {
  const bad = [identity.person, identity.kubeUser, identity.sessionId, ...identity.kubeGroups].find((v) => !HEADER_VALUE.test(v));
  if (bad !== undefined) throw new IdentityRefused(`the identity names ${JSON.stringify(bad)}, which cannot be sent as a header`);
  return identity;
}

/** The server already dropped them; the agent does not rely on it. */
function stripImpersonation(headers: IncomingHttpHeaders): void {
  for (const name in headers) if (isImpersonation(name)) delete headers[name];
}
