import { X509Certificate, type KeyObject } from 'node:crypto';
import { ApiError } from '../api/errors.ts';
import type { IncomingMessage } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { FencedOutError, LeaseExpiredError, type Backend, type Item, type Lease, type WatchEvent } from '../backend/backend.ts';
import { certPem, generateKeys, issueLeaf, keyPem } from '../pki/certs.ts';
import { AGENT, type Agent } from '../resources/agent.ts';
import { KUBE_CLUSTER, type KubeCluster } from '../resources/kube-cluster.ts';
import { KUBE_SERVER } from '../resources/kube-server.ts';
import { kindPrefix, resourceKey } from '../resources/resource.ts';
import { encodeResource, getResource } from '../resources/store.ts';
import type { Authorities } from './authorities.ts';
import type { ServerAudit } from './audit.ts';
import { currentAgent, join, parseJoinRequest, renew, type JoinDeps } from './join.ts';
import { agentEvent, agentItem } from './agent-view.ts';
import { checkLeaseRoom, WatchCount } from './agent-limits.ts';
import { callProblem, describeCall, parseCall, refusal, type BackendCall } from './policy.ts';
import { isKubeServerBeat, needsRegisteredCount, registeredCount, servableHeartbeat } from './kube-agent-policy.ts';
import { ConnectionGuard, type Caller, type Connection, type PersonCaller, type VerifiedCaller } from './connections.ts';
import { verifyClientCert } from './client-cert.ts';
import { LOGIN_PATHS, PeopleRoutes, asRefusal, refusedLogin, type PeopleDeps } from './people-routes.ts';
import { personBackendCall } from './person-calls.ts';
import { OIDC_CALLBACK_PATH, redirect } from './oidc-routes.ts';
import { BodyBudget, DEFAULT_JOIN_RATE, DEFAULT_LOGIN_RATE, LIMITS, RateLimiter, sourceKey, type RateLimit, type ServerTimeouts } from './limits.ts';
import { TLS_POLICY } from './tls-policy.ts';
import { readJson, send } from './http-body.ts';
import { WatchGate } from './watch-gate.ts';
import { applyStoreCall, isKeyCall } from './store-call.ts';
import { WatchHub } from './watch-hub.ts';
import { PersonRevocation } from './person-revocation.ts';
import { PersonRecords } from './person-records.ts';
import { ObservedBackend } from './observed-backend.ts';
import { WriteBudget } from './write-budget.ts';
import { auditCall, recordingsCall } from './audit-routes.ts';
import { RecordingReaders } from './recording/readers.ts';
import type { SessionRecorder } from './recording/recorder.ts';
import { KUBE_SERVED_PATH, KubeRoutes, type UpgradeHooks } from './kube-routes.ts';
import { TunnelRegistry } from './tunnel-registry.ts';
import { SERVER_SNI_DOMAIN } from '../kube/sni.ts';
import { TUNNEL_LIMITS, TunnelAcceptor } from './tunnel-accept.ts';
import { TUNNEL_PATH } from '../tunnel/protocol.ts';
import { DEFAULT_IDLE_TIMEOUT_MS, IdleConnections } from './idle.ts';

const MAX_BODY = LIMITS.agentBodyBytes;
const LAST_SEEN_EVERY_MS = 60_000;
const WATCH_RECHECK_MS = 5_000;
const MAX_WATCH_BACKLOG = 1 << 20;
const WATCH_KEEPALIVE_MS = 30_000;

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
  /** Records exec and attach sessions (src/server/recording/); kport play reads them back. */
  recorder?: SessionRecorder;
  /** The session recorder's hooks for Kubernetes upgrades (exec, attach). */
  kubeUpgrades?: UpgradeHooks;
  /** The server's own host id (its in-process services'): the only one that serves static clusters. */
  hostId?: string;
  /** How long a connection with nothing open on it may be silent (idle.ts); 120 s unless set. */
  idleTimeoutMs?: number;
  /** Shorter waits than LIMITS' and TUNNEL_LIMITS' (tests only: config/test-timeouts.ts). */
  timeouts?: Partial<ServerTimeouts>;
}

/**
 * One TLS port, HTTP/2 and HTTP/1.1 by ALPN (docs/architecture.md §9). `/v1/join` and the logins are the only
 * calls without a client certificate; every other call is authorised by an agent's host certificate
 * (issued by the host CA, its agent still in the store) and the roles inside it, or by a person's
 * user certificate (issued by the user CA) and that person's current roles (people-routes.ts).
 */
export class KportServer {
  readonly #opts: ServerOptions;
  readonly #timeouts: ServerTimeouts;
  readonly #deps: JoinDeps;
  #guard?: ConnectionGuard;
  #revocation?: PersonRevocation;
  readonly #joinRate: RateLimiter;
  readonly #loginRate = new RateLimiter(DEFAULT_LOGIN_RATE);
  readonly #people: PeopleRoutes;
  /** Bodies being read, a budget for strangers' and one for agents', so a flood of the first never starves the second. */
  readonly #bodies = { unauthenticated: new BodyBudget(LIMITS.unauthenticatedBodyBudget), agent: new BodyBudget(LIMITS.agentBodyBudget), person: new BodyBudget(LIMITS.personBodyBudget) };
  /** Leases granted to agents, by id, so only their holder keeps them alive or attaches keys to them. */
  readonly #leases = new Map<string, { hostId: string; lease: Lease; expires: number }>();
  readonly #lastSeen = new Map<string, number>();
  #server?: Http2SecureServer;
  readonly #watches = new Set<AbortController>();
  readonly #hub: WatchHub;
  readonly #records: PersonRecords;
  readonly #watchCount = new WatchCount();
  readonly #caKeys: { host: KeyObject; user: KeyObject };
  readonly #writes = new WriteBudget();
  readonly #readers = new RecordingReaders();
  /** Kubernetes agents' reverse tunnels, by host id (tunnel-accept.ts adds them; the in-process service's too). */
  readonly tunnels = new TunnelRegistry();
  readonly #kube: KubeRoutes;
  readonly #tunnelAccept: TunnelAcceptor;

  constructor(serverOptions: ServerOptions) {
    this.#hub = new WatchHub(serverOptions.backend);
    // Every part of the server writes through this, so the caches that must read its own writes do (watch-cache.ts).
    const opts = { ...serverOptions, backend: new ObservedBackend(serverOptions.backend, this.#hub) };
    this.#opts = opts;
    this.#timeouts = { handshakeMs: LIMITS.handshakeMs, silentMs: LIMITS.silentMs, joinBodyMs: LIMITS.joinBodyMs, unauthenticatedIdleMs: LIMITS.unauthenticatedIdleMs, tunnelIdleMs: TUNNEL_LIMITS.idleMs, ...opts.timeouts };
    this.#records = new PersonRecords({ backend: opts.backend, hub: this.#hub, configRoles: opts.people.configRoles });
    this.#caKeys = { host: new X509Certificate(opts.authorities.host.certPem).publicKey, user: new X509Certificate(opts.authorities.user.certPem).publicKey };
    this.#joinRate = new RateLimiter(opts.joinRate ?? DEFAULT_JOIN_RATE);
    this.#deps = { backend: opts.backend, authorities: opts.authorities, hostCertTtlMs: opts.hostCertTtlMs, now: opts.now ?? (() => new Date()), renewals: new Map() };
    this.#tunnelAccept = new TunnelAcceptor({ backend: opts.backend, audit: opts.audit, registry: this.tunnels, hub: this.#hub, now: this.#deps.now, idleMs: this.#timeouts.tunnelIdleMs });
    this.#people = new PeopleRoutes({ ...opts.people, backend: opts.backend, records: this.#records, authorities: opts.authorities, audit: opts.audit, now: this.#deps.now });
    this.#kube = new KubeRoutes({ backend: opts.backend, hub: this.#hub, tunnels: this.tunnels, people: this.#people, audit: opts.audit, identityKey: opts.authorities.kube_identity.keys.privateKey, ...(opts.hostId && { serverHostId: opts.hostId }), ...(opts.kubeUpgrades && { upgrades: opts.kubeUpgrades }) });
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { authorities } = this.#opts;
    const keys = await generateKeys();
    const names = [...new Set(['localhost', '127.0.0.1', '::1', this.#opts.host, ...this.#opts.publicNames].filter((n) => n && n !== '0.0.0.0' && n !== '::'))];
    const leaf = await issueLeaf(authorities.server_tls, keys.publicKey, {
      commonName: 'kport server',
      usage: 'server',
      validForMs: 365 * 86_400_000,
      // The wildcard: one TLS server name per cluster (kube/sni.ts), for clients that drop a URL's path.
      dnsNames: [...names.filter((n) => !isIP(n)), `*.${SERVER_SNI_DOMAIN}`],
      ips: names.filter((n) => isIP(n)),
    });
    const server = createSecureServer({
      allowHTTP1: true,
      key: await keyPem(keys.privateKey),
      // The chain ends with the CA, so a joining agent can pin it before trusting anything.
      cert: certPem(leaf) + authorities.server_tls.certPem,
      ca: [authorities.host.certPem, authorities.user.certPem],
      requestCert: true,
      rejectUnauthorized: false,
      ...TLS_POLICY,
      handshakeTimeout: this.#timeouts.handshakeMs,
      // A stranger's connection gets these; ConnectionGuard raises them for an agent's.
      settings: { maxConcurrentStreams: LIMITS.unauthenticatedStreams },
      // nghttp2 drops, unseen, a header value with spaces around it: a padded Impersonate-Group would
      // pass unchecked and unaudited. Taken in; kube-routes.ts trims and checks it as HTTP/1.1 does.
      strictFieldWhitespaceValidation: false,
    });
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
    server.on('request', (req, res) => void this.#handle(req, res));
    this.#kube.attach(server, this.#guard);
    // A person locked or removed loses the exec sessions, watches and connections they hold open.
    this.#revocation = new PersonRevocation({ records: this.#records, guard: this.#guard, check: (caller) => this.#people.person(caller), log: this.#opts.log, kube: this.#kube });
    server.on('sessionError', () => {});
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as { address: string; port: number };
    return { host: address.address, port: address.port };
  }

  async close(): Promise<void> {
    for (const watch of this.#watches) watch.abort();
    this.#kube.close();
    this.#tunnelAccept.close();
    this.#revocation?.close();
    this.#records.close();
    this.#hub.close();
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // HTTP/2 sessions of idle agents would hold close() open: they will redial another server.
      setTimeout(resolve, 2000).unref();
    });
  }

  async #handle(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    const socket = (req.stream?.session?.socket ?? req.socket) as TLSSocket;
    const address = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const connection = this.#guard?.of(req);
    let caller: Caller | undefined;
    const path = (req.url ?? '').split('?')[0] ?? '';
    let action = path;
    if (this.#kube.owns(req.url, socket.servername)) return this.#kube.request(req, res, connection, socket);
    try {
      if (req.method === 'GET' && path === '/v1/ping') return send(res, 200, { server: 'kport', ca_pin: this.#opts.authorities.pin });
      if (req.method === 'GET' && path === OIDC_CALLBACK_PATH) {
        this.#loginTurn(socket);
        return redirect(res, await this.#people.callback(new URL(req.url ?? '', 'https://kport').searchParams, address));
      }
      if (req.method !== 'POST') throw new ApiError('method_not_allowed', `${req.method} ${path} is not a kport API call`);
      if (path === '/v1/join') {
        // Counted before the body is read: a refused guess costs as much as a good one.
        const turn = this.#joinRate.take(sourceKey(socket.remoteAddress));
        if (!turn.ok) throw new ApiError('rate_limited', `too many join attempts from ${socket.remoteAddress ?? 'this address'}: try again in ${Math.ceil(turn.retryAfterMs / 1000)} s`);
        return await this.#join(await readJson(req, LIMITS.joinBodyBytes, this.#bodies.unauthenticated, { deadlineMs: this.#timeouts.joinBodyMs }), address, res);
      }
      if (LOGIN_PATHS.has(path)) {
        this.#loginTurn(socket);
        return send(res, 200, await this.#people.login(path, await readJson(req, LIMITS.loginBodyBytes, this.#bodies.unauthenticated), address, socket.remoteAddress));
      }
      // Who is calling before anything else is read from them.
      const verified = connection?.caller ?? new ApiError('unauthenticated', 'this call needs the agent host certificate it received when it joined, or a person\'s user certificate from kport login');
      if (verified instanceof ApiError) throw verified;
      if ('person' in verified) {
        caller = verified;
        return await this.#personCall(verified, path, req, res, address, (a) => (action = a));
      }
      caller = await this.#caller(verified, address);
      const body = await readJson(req, MAX_BODY, this.#bodies.agent);
      action = describeCall(path, body);
      switch (path) {
        case '/v1/renew': {
          const identity = await renew(this.#deps, caller, body);
          await this.#opts.audit.record({ type: 'agent.renew', outcome: 'allowed', host_id: caller.hostId, roles: identity.roles, remote_addr: address });
          return send(res, 200, identity);
        }
        case '/v1/backend':
          return send(res, 200, await this.#backendCall(caller, parseCall(body), address));
        case '/v1/watch':
          return await this.#watch(caller, parseCall(body), req, res);
        case '/v1/whoami':
        case KUBE_SERVED_PATH:
        case '/v1/users':
        case '/v1/audit':
        case '/v1/recordings':
          throw new ApiError('forbidden', `${path} is a person's call: it needs a user certificate from kport login, not an agent's host certificate`);
        default:
          throw new ApiError('not_found', `no such API call: ${path}`);
      }
    } catch (err) {
      const refused = asRefusal(err) ?? new ApiError('internal', 'the server failed to answer this call; its log says why');
      // The cause (a store path, an SQLite error) is for the server's log, not for whoever called,
      // within the caller's budget of log bytes.
      if (refused.status === 500) this.#opts.audit.failure(address, `${path} failed: ${(err as Error).message}`);
      if (refused.status !== 500 && refused.status !== 404 && refused.status !== 405) {
        // A removed agent is refused after its certificate was verified: the event names that host.
        const verified = caller ?? connection?.caller;
        const login = refusedLogin(err);
        const person = verified && 'person' in verified ? verified.person : (refused.user ?? login.user);
        await this.#opts.audit.record({
          type: LOGIN_PATHS.has(path) || path === OIDC_CALLBACK_PATH ? 'user.login' : person ? 'user.call' : path === '/v1/join' ? 'agent.join' : path === '/v1/renew' ? 'agent.renew' : 'agent.call',
          outcome: 'refused',
          ...(verified && 'hostId' in verified && { host_id: verified.hostId, roles: verified.roles }),
          ...(person && { user: person }),
          ...(refused.tokenName && { token_name: refused.tokenName }),
          action,
          reason: login.reason ?? refused.message,
          remote_addr: address,
        });
      }
      if (!res.headersSent) send(res, refused.status, { error: { code: refused.code, message: refused.message } }, req);
      else res.end();
      // A stranger too slow to send a join goes with its connection; so does an expired certificate.
      if (refused.code === 'cert_expired' || refused.code === 'too_slow') connection?.drop();
    }
  }

  /** An agent's reverse tunnel; every other HTTP/1.1 upgrade is a person's, answered by kube-routes.ts. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if ((req.url ?? '').split('?')[0] !== TUNNEL_PATH) return;
    socket.on('error', () => {});
    const address = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    this.#tunnelAccept.accept(req, socket as Socket, head, this.#guard?.of(req), address);
  }

  async #join(body: unknown, address: string, res: Http2ServerResponse): Promise<void> {
    const request = parseJoinRequest(body);
    const { identity, tokenName } = await join(this.#deps, request, address);
    await this.#opts.audit.record({ type: 'agent.join', outcome: 'allowed', host_id: identity.host_id, hostname: request.hostname, roles: identity.roles, token_name: tokenName, remote_addr: address });
    send(res, 200, identity);
  }

  /** Unauthenticated login calls per source address, counted before the body is read. */
  #loginTurn(socket: TLSSocket): void {
    const turn = this.#loginRate.take(sourceKey(socket.remoteAddress));
    if (!turn.ok) throw new ApiError('rate_limited', `too many login calls from ${socket.remoteAddress ?? 'this address'}: try again in ${Math.ceil(turn.retryAfterMs / 1000)} s`);
  }

  /** A person's call: their certificate, existence, lock and current roles checked first (people-routes.ts). */
  async #personCall(caller: PersonCaller, path: string, req: Http2ServerRequest, res: Http2ServerResponse, address: string, describe: (action: string) => void): Promise<void> {
    const person = await this.#people.person(caller);
    const body = await readJson(req, MAX_BODY, this.#bodies.person);
    describe(describeCall(path, body));
    switch (path) {
      case '/v1/whoami':
        return send(res, 200, await this.#people.whoami(person));
      case '/v1/users':
        return send(res, 200, await this.#people.users(person, body, address));
      case '/v1/audit':
        return send(res, 200, await auditCall(this.#opts.backend, person, body, this.#deps.now().getTime()));
      case '/v1/recordings':
        return await recordingsCall({ ...(this.#opts.recorder && { dir: this.#opts.recorder.dir }), readers: this.#readers }, person, body, res);
      case KUBE_SERVED_PATH:
        return send(res, 200, await this.#kube.served(person));
      case '/v1/backend': {
        const call = parseCall(body);
        const malformed = callProblem(call);
        if (malformed) throw new ApiError('bad_request', malformed);
        const answer = await personBackendCall(this.#opts.backend, this.#opts.audit, person, call, address, this.#deps.now().getTime());
        if (call.op !== 'get' && call.op !== 'list') await this.#opts.audit.record({ type: 'user.call', outcome: 'allowed', user: caller.person, action: describeCall(path, body), remote_addr: address });
        return send(res, 200, answer);
      }
      case '/v1/watch': {
        const call = parseCall(body);
        if (call.op !== 'watch') throw new ApiError('bad_request', 'a watch needs a prefix');
        const malformed = callProblem(call);
        if (malformed) throw new ApiError('bad_request', malformed);
        const why = person.policy.refusal(call);
        if (why) throw new ApiError('forbidden', `user ${caller.person} ${why}`);
        // Checked against records at least as new as the events about to go out: feeds report apart, and a lock's may lag a cluster's.
        const alive = (batch: WatchEvent[] = []) => this.#people.person(caller, newestRevision(batch)).then(() => true, () => false);
        return await this.#stream(`user:${caller.person}`, call.prefix, (e) => person.policy.event(e), alive, req, res);
      }
      case '/v1/renew':
        throw new ApiError('forbidden', 'a user certificate is not renewed: run kport login again');
      default:
        throw new ApiError('not_found', `no such API call: ${path}`);
    }
  }

  /** The verified host behind this TLS connection (at its handshake), its certificate unexpired and its agent still in the store (every call). */
  async #caller(verified: VerifiedCaller, address: string): Promise<VerifiedCaller> {
    if (this.#deps.now().getTime() >= verified.notAfter) {
      throw new ApiError('cert_expired', `the host certificate of agent ${verified.hostId} expired at ${new Date(verified.notAfter).toISOString()}: an agent renews it before then; one that could not must join again with a new token`);
    }
    const known = await currentAgent(this.#opts.backend, verified.hostId, verified.keyHash);
    if (!known) throw new ApiError('agent_removed', `agent ${verified.hostId} was removed from this cluster (kport agents rm)`);
    this.#touch(known, address);
    return verified;
  }

  /** Records where and when an agent was last heard from (on the record just read), at most once a minute per agent. */
  #touch({ agent, revision }: { agent: Agent; revision: number }, address: string): void {
    const now = this.#deps.now().getTime();
    const hostId = agent.spec.host_id;
    if (now - (this.#lastSeen.get(hostId) ?? 0) < LAST_SEEN_EVERY_MS) return;
    this.#lastSeen.set(hostId, now);
    const touched: Agent = { ...agent, spec: { ...agent.spec, address, last_seen: new Date(now).toISOString() } };
    // At the revision read: a removal in between stays a removal.
    void this.#opts.backend.compareAndSwap(resourceKey(AGENT, hostId), encodeResource(touched), revision).catch(() => undefined);
  }

  /** A kube_server heartbeat less the clusters this agent may not serve (kube-agent-policy.ts); a claim on another's is audited. */
  async #servableBeat(caller: VerifiedCaller, value: string, address: string): Promise<string> {
    const read = (name: string) => getResource<KubeCluster>(this.#opts.backend, KUBE_CLUSTER, name);
    const checked = await servableHeartbeat(value, caller.hostId, this.#opts.hostId, (name) => this.#kube.cluster(name), read, (a, b) => this.#kube.sameJoin(a, b));
    if (checked.foreign.length > 0) {
      const reason = `listed in its kube_server heartbeat clusters it may not serve (another agent's kubeconfig_file cluster, or a static one only the server serves): ${checked.foreign.join(', ')}; the server dropped them from the heartbeat`;
      await this.#opts.audit.record({ type: 'agent.call', outcome: 'refused', host_id: caller.hostId, roles: caller.roles, action: `put ${kindPrefix(KUBE_SERVER)}${caller.hostId}`, reason, remote_addr: address });
    }
    return checked.value;
  }

  async #backendCall(caller: VerifiedCaller, call: BackendCall, address: string): Promise<unknown> {
    const malformed = callProblem(call);
    if (malformed) throw new ApiError('bad_request', malformed);
    // Before the value is parsed and judged: its size and the agent's write budget.
    this.#writes.charge(caller.hostId, call);
    const backend = this.#opts.backend;
    const needsCurrent = call.op === 'put' || call.op === 'cas' || call.op === 'delete';
    const current = needsCurrent ? await backend.get(call.key) : undefined;
    const registered = needsRegisteredCount(caller, call, current) ? await registeredCount(backend, caller.hostId) : 0;
    const why = refusal(caller, call, current, registered);
    if (why) throw new ApiError('forbidden', `agent ${caller.hostId} (${caller.roles.join(', ')}) ${why}`);
    const beat = call.op === 'put' && isKubeServerBeat(caller, call) ? await this.#servableBeat(caller, call.value, address) : undefined;
    const lease = 'lease' in call && call.lease !== undefined && call.op !== 'keepalive' && call.op !== 'revoke' ? this.#ownLease(caller, call.lease) : undefined;
    const opts = { ...('ttl_ms' in call && call.ttl_ms !== undefined && call.op !== 'grant' && { ttlMs: call.ttl_ms }), ...(lease && { lease }), ...('fence' in call && call.fence && { fence: call.fence }) };
    try {
      // Every item goes back as an agent may see it: never a credential (agent-view.ts).
      if (isKeyCall(call)) return await applyStoreCall(backend, beat === undefined ? call : ({ ...call, value: beat } as typeof call), current, opts, agentItem);
      switch (call.op) {
        case 'grant': {
          this.#sweepLeases();
          checkLeaseRoom(caller.hostId, this.#leases.values(), Date.now());
          const granted = await backend.grantLease(call.ttl_ms);
          this.#sweepLeases();
          this.#leases.set(granted.id, { hostId: caller.hostId, lease: granted, expires: Date.now() + granted.ttlMs });
          return { lease: { id: granted.id, ttl_ms: granted.ttlMs } };
        }
        case 'keepalive': {
          const held = this.#leases.get(call.lease);
          if (!held || held.hostId !== caller.hostId) return { alive: false };
          const alive = await held.lease.keepAlive();
          if (!alive) this.#leases.delete(call.lease);
          else held.expires = Date.now() + held.lease.ttlMs;
          return { alive };
        }
        case 'revoke': {
          const held = this.#leases.get(call.lease);
          if (held && held.hostId === caller.hostId) {
            this.#leases.delete(call.lease);
            await held.lease.revoke();
          }
          return {};
        }
        case 'watch':
          throw new ApiError('bad_request', 'watch is its own call: POST /v1/watch');
      }
    } catch (err) {
      if (err instanceof FencedOutError) throw new ApiError('fenced_out', err.message);
      if (err instanceof LeaseExpiredError) throw new ApiError('lease_expired', err.message);
      throw err;
    }
  }

  /** Forgets leases their agents stopped keeping alive (the store expires them on its own). */
  #sweepLeases(): void {
    const now = Date.now();
    for (const [id, held] of this.#leases) if (held.expires < now) this.#leases.delete(id);
  }

  #ownLease(caller: VerifiedCaller, id: string): string {
    const held = this.#leases.get(id);
    if (!held || held.hostId !== caller.hostId) throw new ApiError('lease_expired', `lease ${id} has expired`);
    return id;
  }

  async #watch(caller: VerifiedCaller, call: BackendCall, req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    if (call.op !== 'watch') throw new ApiError('bad_request', 'a watch needs a prefix');
    const malformed = callProblem(call);
    if (malformed) throw new ApiError('bad_request', malformed);
    const why = refusal(caller, call);
    if (why) throw new ApiError('forbidden', `agent ${caller.hostId} (${caller.roles.join(', ')}) ${why}`);
    const alive = () => currentAgent(this.#opts.backend, caller.hostId, caller.keyHash).then((known) => !!known);
    return this.#stream(caller.hostId, call.prefix, agentEvent, alive, req, res);
  }

  /** One watch stream: events as `show` lets the caller see them, ended when `alive` says the caller is gone. */
  async #stream(who: string, prefix: string, show: (event: WatchEvent) => WatchEvent | undefined, alive: (batch?: WatchEvent[]) => Promise<boolean>, req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    const leave = this.#watchCount.enter(who);
    const stop = new AbortController();
    this.#watches.add(stop);
    req.on('close', () => stop.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write('\n');
    const gate = new WatchGate<WatchEvent>({
      stillThere: alive,
      deliver: (event) => {
        const shown = show(event);
        // A client that does not read its watch is cut off rather than buffered for without end.
        if (res.writableLength > MAX_WATCH_BACKLOG) stop.abort();
        else if (shown) res.write(`${JSON.stringify(shown)}\n`);
      },
      removed: () => stop.abort(),
    });
    // No event written after a removal or a lock reaches the caller: the gate reads the record after each.
    const unsubscribe = this.#hub.subscribe(prefix, (event) => gate.push(event));
    const recheck = setInterval(() => {
      void alive().then((yes) => yes || stop.abort(), () => undefined);
    }, WATCH_RECHECK_MS);
    // A quiet watch still sends something, so a NAT or a proxy between sees it alive (clients skip empty lines).
    const keepalive = setInterval(() => res.write('\n'), WATCH_KEEPALIVE_MS);
    await new Promise<void>((resolve) => (stop.signal.aborted ? resolve() : stop.signal.addEventListener('abort', () => resolve(), { once: true })));
    unsubscribe();
    gate.close();
    clearInterval(recheck);
    clearInterval(keepalive);
    this.#watches.delete(stop);
    leave();
    res.end();
  }
}

/** The newest store revision among `events`; undefined when there are none. */
function newestRevision(events: WatchEvent[]): number | undefined {
  let newest: number | undefined;
  for (const e of events) newest = Math.max(newest ?? 0, e.type === 'put' ? e.item.revision : e.revision);
  return newest;
}
