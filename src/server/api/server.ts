import { X509Certificate, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ApiError } from '../../api/errors.ts';
import { routes } from '../../api/routes.ts';
import type { Backend } from '../../backend/backend.ts';
import type { Authorities } from '../auth/authorities.ts';
import type { ServerAudit } from '../events/audit.ts';
import { join, parseJoinRequest, renew, type JoinDeps } from '../auth/join.ts';
import { WatchCount } from '../auth/agent-limits.ts';
import { AgentCalls } from '../auth/agent-calls.ts';
import { callProblem, describeCall } from '../auth/backend-call.ts';
import { ConnectionGuard } from './connections.ts';
import { verifyClientCert } from './client-cert.ts';
import { PeopleRoutes, type PeopleDeps } from '../auth/people-routes.ts';
import { personBackendCall } from '../auth/person-calls.ts';
import { redirect } from '../auth/oidc-routes.ts';
import { BodyBudget, DEFAULT_JOIN_RATE, DEFAULT_LOGIN_RATE, LIMITS, RateLimiter, type RateLimit, type ServerTimeouts } from '../call/limits.ts';
import { createTlsListener } from './tls-listener.ts';
import { TLS_POLICY } from './tls-policy.ts';
import { agentOf, personOf, Router, type Handlers } from './router.ts';
import type { WatchStreamDeps } from '../auth/watch-stream.ts';
import { personWatch } from '../auth/person-watch.ts';
import { WatchHub } from '../cache/watch-hub.ts';
import { PersonRevocation } from '../auth/person-revocation.ts';
import { PersonRecords } from '../cache/person-records.ts';
import { ObservedBackend } from '../cache/observed-backend.ts';
import { auditCall, recordingsCall } from '../auth/audit-routes.ts';
import { RecordingReaders } from '../events/recording/readers.ts';
import type { SessionRecorder } from '../events/recording/recorder.ts';
import { KubeRoutes, type UpgradeHooks } from '../kubeproxy/kube-routes.ts';
import { TunnelRegistry } from '../../reversetunnel/tunnel-registry.ts';
import { TUNNEL_LIMITS, TunnelAcceptor } from '../../reversetunnel/tunnel-accept.ts';
import { TUNNEL_PATH } from '../../reversetunnel/protocol.ts';
import { DEFAULT_IDLE_TIMEOUT_MS, IdleConnections } from './idle.ts';
import { ProxyPeering, type PeerListen } from '../peer/proxy-peering.ts';
import { ConnectionDrain } from './drain.ts';
import { MeteredBackend } from '../diag/metered-backend.ts';
import type { ServerMetrics } from '../diag/metrics.ts';
import { countKubeOutcomes } from '../diag/kube-outcomes.ts';
import { requireProxyHeader } from './proxy-header.ts';
import { remoteOf } from '../call/remote-address.ts';

export interface ServerOptions {
  backend: Backend;
  authorities: Authorities;
  audit: ServerAudit;
  host: string;
  port: number;
  /** Names and addresses agents and people reach the server by, for its certificate. */
  publicNames: string[];
  hostCertTtlMs: number;
  /** The server's own log (JSON lines): failures whose cause callers are not told. */
  log: (line: string) => void;
  now?: () => Date;
  /** Join attempts per source address (auth_service.join_rate_limit). */
  joinRate?: RateLimit;
  /** What people's logins and calls need: the seal key (TOTP secrets), the config's roles, the OIDC relying party. */
  people: Pick<PeopleDeps, 'sealKey' | 'configRoles' | 'oidc'>;
  /** Records exec and attach sessions (src/server/events/recording/); kport play reads them back. */
  recorder?: SessionRecorder;
  /** The session recorder's hooks for Kubernetes upgrades (exec, attach). */
  kubeUpgrades?: UpgradeHooks;
  /** The server's own host id (its in-process services'): the only one that serves static clusters. */
  hostId?: string;
  /** How long a connection with nothing open on it may be silent (idle.ts); 120 s unless set. */
  idleTimeoutMs?: number;
  /** Shorter waits than LIMITS' and TUNNEL_LIMITS' (tests only: config/test-timeouts.ts). */
  timeouts?: Partial<ServerTimeouts>;
  /** Proxy peering's listener (several servers on etcd: server/peer/); needs `hostId`, off when absent. */
  peer?: PeerListen;
  /** The diagnostics' metrics (teleport.diag_addr): calls by route, Kubernetes outcomes, store latency, open tunnels and sessions. */
  metrics?: ServerMetrics;
  /** proxy_service.proxy_protocol: every connection begins with a PROXY header naming its client (proxy-header.ts). */
  proxyProtocol?: boolean;
}

/**
 * One TLS port, HTTP/2 and HTTP/1.1 by ALPN (docs/architecture.md §9): Kubernetes requests to
 * kube-routes.ts, agents' tunnels to tunnel-accept.ts, and the API to the router (router.ts), which
 * holds each call to its route in src/api/routes.ts. `/v1/join` and the logins are the only calls
 * without a client certificate; every other call is authorised by an agent's host certificate
 * (issued by the host CA, its agent still in the store: agent-calls.ts) and the roles inside it, or
 * by a person's user certificate (issued by the user CA) and that person's current roles (people-routes.ts).
 */
export class KportServer {
  readonly #opts: ServerOptions;
  readonly #timeouts: ServerTimeouts;
  readonly #deps: JoinDeps;
  #guard?: ConnectionGuard;
  #revocation?: PersonRevocation;
  readonly #people: PeopleRoutes;
  #server?: Http2SecureServer;
  readonly #hub: WatchHub;
  readonly #records: PersonRecords;
  /** Every watch open now (agents' and people's), and how many each caller holds. */
  readonly #watchStreams: WatchStreamDeps;
  readonly #caKeys: { host: KeyObject; user: KeyObject };
  readonly #readers = new RecordingReaders();
  readonly #agents: AgentCalls;
  readonly #router: Router;
  /** Kubernetes agents' reverse tunnels, by host id (tunnel-accept.ts adds them; the in-process service's too). */
  readonly tunnels = new TunnelRegistry();
  readonly #kube: KubeRoutes;
  readonly #tunnelAccept: TunnelAcceptor;
  readonly #peering?: ProxyPeering;
  /** The address other servers dial this one's peer listener at, once it listens. */
  peerAddress?: string;
  #drain?: ConnectionDrain;
  #loaded = false;

  constructor(serverOptions: ServerOptions) {
    this.#hub = new WatchHub(serverOptions.backend);
    // Every part of the server writes through this, so the caches that must read its own writes do (watch-cache.ts).
    // Timed once here for the store latency histogram, under every part of the server.
    const metrics = serverOptions.metrics;
    const stored = metrics ? new MeteredBackend(serverOptions.backend, (op, s, ok) => metrics.storeCall(op, s, ok)) : serverOptions.backend;
    const opts = { ...serverOptions, backend: new ObservedBackend(stored, this.#hub) };
    this.#opts = opts;
    this.#timeouts = {
      handshakeMs: LIMITS.handshakeMs,
      silentMs: LIMITS.silentMs,
      joinBodyMs: LIMITS.joinBodyMs,
      unauthenticatedIdleMs: LIMITS.unauthenticatedIdleMs,
      tunnelIdleMs: TUNNEL_LIMITS.idleMs,
      ...opts.timeouts,
    };
    this.#records = new PersonRecords({ backend: opts.backend, hub: this.#hub, configRoles: opts.people.configRoles });
    this.#caKeys = { host: new X509Certificate(opts.authorities.host.certPem).publicKey, user: new X509Certificate(opts.authorities.user.certPem).publicKey };
    this.#deps = {
      backend: opts.backend,
      authorities: opts.authorities,
      hostCertTtlMs: opts.hostCertTtlMs,
      now: opts.now ?? (() => new Date()),
      paceRenewals: true,
    };
    this.#tunnelAccept = new TunnelAcceptor({
      backend: opts.backend,
      audit: opts.audit,
      registry: this.tunnels,
      hub: this.#hub,
      now: this.#deps.now,
      idleMs: this.#timeouts.tunnelIdleMs,
    });
    this.#people = new PeopleRoutes({
      ...opts.people,
      backend: opts.backend,
      records: this.#records,
      authorities: opts.authorities,
      audit: opts.audit,
      now: this.#deps.now,
    });
    this.#watchStreams = { hub: this.#hub, count: new WatchCount(), open: new Set() };
    if (opts.peer && opts.hostId)
      this.#peering = new ProxyPeering({
        backend: opts.backend,
        hub: this.#hub,
        tunnels: this.tunnels,
        hostCa: opts.authorities.host,
        serverId: opts.hostId,
        tls: TLS_POLICY,
        now: this.#deps.now,
        log: opts.log,
      });
    this.#kube = new KubeRoutes({
      backend: opts.backend,
      hub: this.#hub,
      tunnels: this.tunnels,
      people: this.#people,
      audit: opts.audit,
      identityKey: opts.authorities.kube_identity.keys.privateKey,
      ...(opts.hostId && { serverHostId: opts.hostId }),
      ...(opts.kubeUpgrades && { upgrades: opts.kubeUpgrades }),
      ...(this.#peering && { peers: this.#peering }),
    });
    this.#agents = new AgentCalls({
      backend: opts.backend,
      audit: opts.audit,
      now: this.#deps.now,
      watches: this.#watchStreams,
      kube: this.#kube,
      ...(opts.hostId && { hostId: opts.hostId }),
    });
    this.#router = new Router({
      handlers: this.#handlers(),
      audit: opts.audit,
      timeouts: this.#timeouts,
      rates: { join: new RateLimiter(opts.joinRate ?? DEFAULT_JOIN_RATE), login: new RateLimiter(DEFAULT_LOGIN_RATE) },
      // A flood of strangers' bodies never starves agents' or people's.
      bodies: {
        unauthenticated: new BodyBudget(LIMITS.unauthenticatedBodyBudget),
        agent: new BodyBudget(LIMITS.agentBodyBudget),
        person: new BodyBudget(LIMITS.personBodyBudget),
      },
      agent: (verified, address) => this.#agents.caller(verified, address),
      person: (caller) => this.#people.person(caller),
      ...(metrics && { observe: (route: string, code: number) => metrics.request(route, code) }),
    });
    metrics?.watch({ tunnels: () => this.tunnels.size, kubeOpen: () => this.#kube.openCounts(), auditQueue: () => opts.audit.queued });
    void this.#kube.loaded().then(() => (this.#loaded = true));
  }

  /** Whether the caches the server answers from have their first list from the store (readiness). */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** Whether SIGTERM asked the server to stop and it is finishing what is open (readiness). */
  get draining(): boolean {
    return this.#drain?.draining ?? false;
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = await createTlsListener(this.#opts.authorities, [this.#opts.host, ...this.#opts.publicNames], this.#timeouts.handshakeMs);
    this.#guard = new ConnectionGuard(server, { verify: (socket) => verifyClientCert(socket, this.#caKeys), log: this.#opts.log, timeouts: this.#timeouts });
    // A connection that says nothing for two minutes with nothing open on it is closed (agents call
    // every few seconds and redial when they need to), so idle or half-open connections cannot pile up.
    const guard = this.#guard;
    new IdleConnections(server, {
      idleMs: this.#opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      authenticated: (connection) => {
        const caller = ('goaway' in connection ? guard.ofSession(connection) : guard.ofSocket(connection))?.caller;
        return caller !== undefined && 'notAfter' in caller;
      },
    });
    server.on('request', (req, res) => {
      const socket = (req.stream?.session?.socket ?? req.socket) as TLSSocket;
      if (this.#kube.owns(req.url, socket.servername)) void this.#kube.request(req, res, guard.of(req), socket);
      else void this.#router.handle(req, res, guard.of(req));
    });
    this.#kube.attach(server, this.#guard);
    this.#drain = new ConnectionDrain(server);
    const metrics = this.#opts.metrics;
    if (metrics) countKubeOutcomes(server, (url, servername) => this.#kube.owns(url, servername), metrics);
    // A person locked or removed loses the exec sessions, watches and connections they hold open.
    this.#revocation = new PersonRevocation({
      records: this.#records,
      guard: this.#guard,
      check: (caller) => this.#people.person(caller),
      log: this.#opts.log,
      kube: this.#kube,
    });
    server.on('sessionError', () => {});
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    // Last, so that every 'connection' listener above sees the client the header names.
    if (this.#opts.proxyProtocol)
      requireProxyHeader(server, {
        timeoutMs: this.#timeouts.silentMs,
        pending: LIMITS.proxyHeadersPending,
        refuse: (socket, why) => guard.refuse(socket, why),
      });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as { address: string; port: number };
    if (this.#peering && this.#opts.peer) this.peerAddress = await this.#peering.start(this.#opts.peer);
    return { host: address.address, port: address.port };
  }

  async close(): Promise<void> {
    await this.#peering?.close();
    for (const watch of this.#watchStreams.open) watch.abort();
    this.#kube.close();
    this.#tunnelAccept.close();
    this.#revocation?.close();
    this.#records.close();
    this.#hub.close();
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      // HTTP/2 sessions of idle agents would hold close() open: they will redial another server. The
      // timer is not unref'd: with nothing else left the process would end here, before the
      // recorder and the audit store what they hold (the caller's next steps).
      const giveUp = setTimeout(resolve, 2000);
      server.close(() => {
        clearTimeout(giveUp);
        resolve();
      });
    });
  }

  /**
   * SIGTERM's stop (README "Diagnostics and draining", drain.ts): readiness false, no new connection,
   * a GOAWAY on every connection and agent tunnel (its agent dials a new one at once), agents' store
   * watches ended (they resume elsewhere), `graceMs` for what is open, then close() for what is left.
   */
  async drain(graceMs: number): Promise<void> {
    if (!this.#server || !this.#drain) return this.close();
    const tunnelsAndWatches = () => {
      this.#tunnelAccept.drain();
      for (const watch of this.#watchStreams.open) watch.abort();
    };
    await this.#drain.run(this.#server, graceMs, tunnelsAndWatches, () => this.close());
  }

  /** An agent's reverse tunnel; every other HTTP/1.1 upgrade is a person's, answered by kube-routes.ts. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if ((req.url ?? '').split('?')[0] !== TUNNEL_PATH) return;
    socket.on('error', () => {});
    const address = remoteOf(req.socket);
    this.#tunnelAccept.accept(req, socket as Socket, head, this.#guard?.of(req)?.caller, address);
  }

  /** Each route's handler (src/api/routes.ts): the router has checked who calls and parsed what they sent. */
  #handlers(): Handlers {
    const { backend, audit, authorities } = this.#opts;
    const people = this.#people;
    const now = () => this.#deps.now().getTime();
    return {
      ping: async () => ({ server: 'kport', ca_pin: authorities.pin }),
      join: async ({ body, address }) => {
        const request = parseJoinRequest(body);
        const { identity, tokenName } = await join(this.#deps, request, address);
        await audit.record({
          type: routes.join.audit.allowed,
          outcome: 'allowed',
          host_id: identity.host_id,
          hostname: request.hostname,
          roles: identity.roles,
          token_name: tokenName,
          remote_addr: address,
        });
        return identity;
      },
      renew: async ({ who, body, address }) => {
        const caller = agentOf(who);
        const identity = await renew(this.#deps, caller, body);
        await audit.record({ type: routes.renew.audit.allowed, outcome: 'allowed', host_id: caller.hostId, roles: identity.roles, remote_addr: address });
        return identity;
      },
      backend: async ({ who, body, address }) => {
        // Parsed by the router with the route's schema, the one backendCallSchema is.
        const call = body;
        if (who.kind === 'agent') return this.#agents.backend(who.agent, call, address);
        const person = personOf(who);
        const malformed = callProblem(call);
        if (malformed) throw new ApiError('bad_request', malformed);
        const answer = await personBackendCall(backend, audit, person, call, address, now());
        if (call.op !== 'get' && call.op !== 'list')
          await audit.record({
            type: routes.backend.audit.allowed,
            outcome: 'allowed',
            user: person.caller.person,
            action: describeCall(routes.backend.path, body),
            remote_addr: address,
          });
        return answer;
      },
      watch: async ({ who, body, req, res }) => {
        if (who.kind === 'agent') return this.#agents.watch(who.agent, body, req, res);
        return personWatch({ backend, people, streams: this.#watchStreams }, personOf(who), body, req, res);
      },
      inviteBegin: ({ body, address }) => people.inviteBegin(body, address),
      inviteFinish: ({ body, address, socket }) => people.inviteFinish(body, address, socket.remoteAddress),
      localLogin: ({ body, address, socket }) => people.localLogin(body, address, socket.remoteAddress),
      oidcBegin: ({ body, socket }) => people.oidcBegin(body, socket.remoteAddress),
      oidcFinish: ({ body, address }) => people.oidcFinish(body, address),
      oidcCallback: async ({ req, res, address }) => redirect(res, await people.callback(new URL(req.url ?? '', 'https://kport').searchParams, address)),
      whoami: async ({ who }) => people.whoami(personOf(who)),
      users: ({ who, body, address }) => people.users(personOf(who), body, address),
      audit: ({ body }) => auditCall(backend, body, now()),
      recordings: ({ who, body, res }) =>
        recordingsCall({ ...(this.#opts.recorder && { sink: this.#opts.recorder.sink }), readers: this.#readers }, personOf(who), body, res),
      kubeServed: ({ who }) => this.#kube.served(personOf(who)),
    };
  }
}
