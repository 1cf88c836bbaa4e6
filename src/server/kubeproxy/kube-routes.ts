import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { remoteOf } from '../call/remote-address.ts';
import type { ClientHttp2Stream, ClientSessionRequestOptions, Http2SecureServer, Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Backend } from '../../backend/backend.ts';
import { trimFieldValues } from '../../kube/local-proxy.ts';
import { clusterSniLabel, sniLabelOf } from '../../kube/sni.ts';
import { rawStatus, type KportCode } from '../../kube/status.ts';
import { KUBE_CLUSTER, type KubeCluster } from '../../resources/kube-cluster.ts';
import { newSessionId, signIdentity } from '../../reversetunnel/identity.ts';
import { TUNNEL_PATH } from '../../reversetunnel/protocol.ts';
import type { ServerAudit } from '../events/audit.ts';
import type { Connection, ConnectionLookup } from '../call/caller.ts';
import { IdentityCache } from '../auth/identity-cache.ts';
import { KubeAgents, type PeerReach } from './kube-agents.ts';
import { OpenKubeRequests, tooManyMessage } from './kube-open.ts';
import { asRefusal, type PeopleRoutes, type Person } from '../auth/people-routes.ts';
import { ResourceCache } from '../cache/resource-cache.ts';
import { droppedEnding, lostEnding, type Ending } from './kube-ending.ts';
import { clusterRoute, KUBE_PREFIX, upgradeProblem } from './kube-route-path.ts';
import { upgradeMeta, type UpgradeHooks } from './kube-upgrade-meta.ts';
import { authorizeKube, reauthorizeKube, type KubeGrant, type KubeRefusal } from './kube-authorize.ts';
import { auditAllowed, auditRefused } from './kube-request-audit.ts';
import { forwardOverTunnel, type Attempts, type Forwarding, type Outcome, type TunnelClient } from './tunnel-forward.ts';
import { compatClient, StreamClient } from '../../kube/client-side.ts';
import type { TunnelRegistry } from '../../reversetunnel/tunnel-registry.ts';
import { upgradeOverTunnel } from './tunnel-upgrade.ts';
import type { WatchHub } from '../cache/watch-hub.ts';

export type { UpgradeHooks, UpgradeMeta } from './kube-upgrade-meta.ts';

export interface KubeRoutesDeps {
  backend: Backend;
  hub: WatchHub;
  tunnels: TunnelRegistry;
  people: PeopleRoutes;
  audit: ServerAudit;
  /** The kube_identity private key (authorities.kube_identity.keys.privateKey). */
  identityKey: CryptoKey;
  /** The server's own host id (serverHostId): the only one that serves static clusters. */
  serverHostId?: string;
  upgrades?: UpgradeHooks;
  /**
   * Proxy peering (server/peer/): agents whose tunnels end on another server, and a stream to one
   * through that server. The forwarding engine never knows: it is given one `open` that takes the
   * local tunnel when there is one, else a peer's stream.
   */
  peers?: PeerReach & {
    open(
      hostId: string,
      headers: OutgoingHttpHeaders | string[],
      options: ClientSessionRequestOptions | undefined,
      tried: Set<string>,
    ): ClientHttp2Stream | undefined;
  };
}

type Refused = { refused: KubeRefusal };
type Admitted = KubeGrant;

/**
 * The Kubernetes API at the server (docs/architecture.md §9): `/k/<cluster>/...` (or a cluster's SNI name)
 * from a person's certificate, checked as every person call is, the cluster allowed by their
 * current roles (a cluster they may not reach answers exactly as a missing one, and reaches no
 * agent), the impersonation resolved as the local proxy resolves it, then sent with a signed
 * identity on a tunnel stream to an agent that serves the cluster. One audit event per request.
 */
export class KubeRoutes {
  readonly #deps: KubeRoutesDeps;
  readonly #clusters: ResourceCache<KubeCluster>;
  readonly #agents: KubeAgents;
  readonly #identities = new IdentityCache();
  readonly #open = new OpenKubeRequests();
  /** SNI label -> cluster name, rebuilt when a cluster changes. */
  #bySni = new Map<string, string>();

  constructor(deps: KubeRoutesDeps) {
    this.#deps = deps;
    this.#clusters = new ResourceCache<KubeCluster>(deps.backend, deps.hub, KUBE_CLUSTER, () => {
      this.#bySni = new Map([...this.#clusters.values()].map((c) => [clusterSniLabel(c.metadata.name), c.metadata.name]));
    });
    this.#agents = new KubeAgents(deps.backend, deps.hub, deps.tunnels, deps.serverHostId, Date.now, deps.peers);
  }

  /** Whether a request is for a cluster: its path, or the TLS server name it came by. */
  owns(url: string | undefined, servername: string | false | null | undefined): boolean {
    return (url?.startsWith(KUBE_PREFIX) ?? false) || sniLabelOf(servername) !== undefined;
  }

  /** A kube_cluster as the routing holds it now (a watch's copy: it may lag the store briefly). */
  cluster(name: string): KubeCluster | undefined {
    return this.#clusters.get(name);
  }

  /**
   * The clusters `person` may reach that an agent serves right now (its heartbeat fresh, its tunnel
   * open): `kport kube ls` marks the others, where a request would get "no agent serves".
   */
  async served(person: Person): Promise<{ clusters: string[] }> {
    await Promise.all([this.#clusters.ready, this.#agents.ready]);
    const clusters = [...this.#clusters.values()].filter((c) => person.roles.kubeAccess(c.metadata.labels ?? {}) && this.#agents.candidates(c).length > 0);
    return { clusters: clusters.map((c) => c.metadata.name).sort() };
  }

  /** Whether two agents joined with one token (kube-agents.ts): they serve each other's kubeconfig_file clusters. */
  sameJoin(a: string, b: string): boolean {
    return this.#agents.sameJoin(a, b);
  }

  /** Resolves once the cluster and agent caches have their first list (the server's readiness). */
  loaded(): Promise<void> {
    return Promise.all([this.#clusters.ready, this.#agents.ready]).then(() => undefined);
  }

  /** The Kubernetes requests open now: upgrades (exec, attach, port-forward), watches, the others (the server's metrics). */
  openCounts(): { upgrades: number; watches: number; requests: number } {
    const counts = { upgrades: 0, watches: 0, requests: 0 };
    for (const open of this.#open.of()) {
      if (open.headers.upgrade !== undefined) counts.upgrades++;
      else if (/[?&]watch=(1|true)(&|$)/.test(open.path)) counts.watches++;
      else counts.requests++;
    }
    return counts;
  }

  /** Stops routing; what is open is told the server is stopping (a watch's client then lists again, elsewhere). */
  close(): void {
    const ending: Ending = { code: 503, message: 'the kport server is stopping (a restart or an upgrade): run this command again' };
    for (const open of this.#open.of()) open.end(ending);
    this.#clusters.close();
    this.#agents.close();
  }

  /**
   * Takes the server's Kubernetes HTTP/2 streams on node:http2's core API (the compatibility layer's
   * request and response objects cost CPU on every request), the others to that layer's listener as
   * before; and its HTTP/1.1 upgrades but the tunnel's.
   */
  attach(server: Http2SecureServer, guard: Pick<ConnectionLookup, 'ofSession' | 'ofSocket'> | undefined): void {
    const compat = server.listeners('stream') as Array<(...args: unknown[]) => void>;
    server.removeAllListeners('stream');
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
      const socket = stream.session?.socket as TLSSocket | undefined;
      const path = headers[':path'] as string | undefined;
      if (!this.owns(path, socket?.servername)) {
        for (const listener of compat) listener.call(server, stream, headers, ...rest);
        return;
      }
      this.#serve(new StreamClient(stream, trimFieldValues(headers)), path, guard?.ofSession(stream.session), socket);
    });
    server.on('upgrade', (req: IncomingMessage, socket: TLSSocket, head: Buffer) => {
      if ((req.url ?? '').split('?')[0] !== TUNNEL_PATH) this.#upgrade(req, socket, head, guard?.ofSocket(socket));
    });
  }

  /** An HTTP/1.1 request (the server's 'request' handler hands over those this owns). */
  request(req: Http2ServerRequest, res: Http2ServerResponse, connection: Connection | undefined, socket: TLSSocket): void {
    this.#serve(compatClient(req, res), req.url, connection, socket);
  }

  #upgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer, connection: Connection | undefined): void {
    const servername = serverName(socket);
    const remote = remoteOf(socket);
    socket.on('error', () => socket.destroy());
    const started = performance.now();
    const method = req.method ?? 'GET';
    // One protocol, named as clients name it: anything else would reach the apiserver as something the recorder did not decide on.
    const message = upgradeProblem(req.headers.upgrade);
    if (message) {
      return this.#refuse(
        { refused: { code: 400, message, ...(connection?.caller && 'person' in connection.caller && { user: connection.caller.person }) } },
        method,
        req.url ?? '',
        remote,
        started,
        (code, text) => rawStatus(socket, code, text),
      );
    }
    void this.#admit(connection, method, req.url, servername, req.headers, true).then(
      async (admitted) => {
        if ('refused' in admitted) return this.#refuse(admitted, method, req.url ?? '', remote, started, (code, message) => rawStatus(socket, code, message));
        const meta = upgradeMeta(admitted, req);
        // Asynchronous: a session that must be recorded waits for the recordings' store to answer.
        const refusal = await this.#deps.upgrades?.refusal?.(meta);
        if (refusal)
          return this.#refuse(
            { refused: { code: 403, message: refusal, user: meta.person, cluster: meta.cluster } },
            method,
            admitted.path,
            remote,
            started,
            (code, message) => rawStatus(socket, code, message),
          );
        const attempts = this.#attempts(admitted, meta.sessionId);
        if (!attempts) return this.#noAgent(admitted, method, remote, started, (code, message) => rawStatus(socket, code, message));
        let endedBecause: string | undefined;
        let forwarding: Forwarding | undefined;
        const end = (ending: Ending) => {
          endedBecause ??= ending.message;
          if (forwarding) forwarding.cut(ending);
          else socket.destroy();
        };
        const leave = this.#enter(admitted, req.headers, end);
        if (!leave) return this.#tooMany(admitted, method, req.url ?? '', remote, started, (code, message) => rawStatus(socket, code, message));
        // The person locked or removed, their certificate expired: the session hears why before the connection goes.
        const undrop = connection?.onDrop((reason) => end(droppedEnding(admitted.person.caller, reason)));
        const lost = (cause: string) => {
          const ending = lostEnding(admitted.person.caller, admitted.cluster.metadata.name, cause, connection?.closedBecause);
          endedBecause ??= ending.message;
          return ending;
        };
        const opened = (hostId: string, _sessionId: string, tunnel: Duplex, answer: Buffer) =>
          this.#deps.upgrades?.onUpgrade?.({ ...meta, hostId, closedBecause: () => endedBecause ?? connection?.closedBecause }, socket, tunnel, {
            answer,
            client: head,
          });
        forwarding = upgradeOverTunnel(
          req,
          socket,
          head,
          admitted.path,
          attempts,
          opened,
          (outcome) => (undrop?.(), leave(), this.#audit(admitted, method, remote, started, outcome)),
          lost,
        );
      },
      (err: Error) => this.#failed(err, remote, (code, message) => rawStatus(socket, code, message)),
    );
  }

  #serve(client: TunnelClient, url: string | undefined, connection: Connection | undefined, socket: TLSSocket | undefined): void {
    const started = performance.now();
    const servername = serverName(socket);
    const remote = remoteOf(socket);
    void this.#admit(connection, client.method, url, servername, client.headers).then(
      (admitted) => {
        if ('refused' in admitted)
          return this.#refuse(admitted, client.method, admitted.refused.path ?? url ?? '', remote, started, (code, message) => client.fail(code, message));
        const attempts = this.#attempts(admitted);
        if (!attempts) return this.#noAgent(admitted, client.method, remote, started, (code, message) => client.fail(code, message));
        let forwarding: Forwarding | undefined;
        const end = (ending: Ending) => (forwarding ? forwarding.cut(ending) : client.abort());
        const leave = this.#enter(admitted, client.headers, end);
        if (!leave) return this.#tooMany(admitted, client.method, url ?? '', remote, started, (code, message) => client.fail(code, message));
        const undrop = connection?.onDrop((reason) => end(droppedEnding(admitted.person.caller, reason)));
        forwarding = forwardOverTunnel(
          client,
          admitted.path,
          attempts,
          (outcome) => (undrop?.(), leave(), this.#audit(admitted, client.method, remote, started, outcome)),
          (cause) => lostEnding(admitted.person.caller, admitted.cluster.metadata.name, cause, connection?.closedBecause),
        );
      },
      (err: Error) => this.#failed(err, remote, (code, message) => client.fail(code, message)),
    );
  }

  /** Counts an admitted request in the person's open ones (MAX_REQUESTS_PER_PERSON); undefined when they are at the bound. */
  #enter(admitted: Admitted, headers: IncomingHttpHeaders, end: (ending: Ending) => void): (() => void) | undefined {
    return this.#open.enter({
      caller: admitted.person.caller,
      cluster: admitted.cluster.metadata.name,
      path: admitted.path,
      user: admitted.user,
      groups: admitted.groups,
      headers,
      end,
    });
  }

  #tooMany(admitted: Admitted, method: string, url: string, remote: string, started: number, answer: (code: KportCode, message: string) => void): void {
    const user = admitted.person.caller.person;
    this.#refuse(
      { refused: { code: 429, message: tooManyMessage(user), user, cluster: admitted.cluster.metadata.name } },
      method,
      url,
      remote,
      started,
      answer,
    );
  }

  /**
   * Decides again, by the person's roles as stored now, each open request of `person` (everyone's
   * without one): a role edited, or a user's roles changed, so that a cluster (or the Kubernetes
   * user and groups it was sent as) is no longer allowed ends those requests, watches and exec
   * sessions included. A store that cannot answer ends nothing: the next look decides.
   */
  async recheck(person?: string): Promise<void> {
    const decided = new Map<string, Promise<Person | string>>();
    await Promise.all(
      this.#open.of(person).map(async (open) => {
        const key = `${open.caller.person}|${open.caller.keyHash}`;
        if (!decided.has(key))
          decided.set(
            key,
            this.#deps.people.person(open.caller).catch((err: Error) => {
              const refusal = asRefusal(err);
              if (!refusal) throw err;
              return refusal.message;
            }),
          );
        const current = await decided.get(key)!;
        if (typeof current === 'string') return open.end({ code: 403, message: `the server ended the request: ${current}` });
        const why = reauthorizeKube(current, this.#clusters.get(open.cluster)?.metadata.labels, open);
        if (why) open.end({ code: 403, message: `the server ended the request: ${why}` });
      }),
    );
  }

  /** A failure of the server itself (the store unreachable): the cause goes to its log, not to the caller. */
  #failed(err: Error, remote: string, answer: (code: KportCode, message: string) => void): void {
    this.#deps.audit.failure(remote, `a Kubernetes request failed: ${err.message}`);
    answer(502, 'the kport server failed to answer this request; its log says why');
  }

  /** Who asks (their certificate and current record), then what the authoriser says: every check before anything reaches an agent. */
  async #admit(
    connection: Connection | undefined,
    method: string,
    url: string | undefined,
    servername: string | undefined,
    headers: IncomingHttpHeaders,
    upgrade = false,
  ): Promise<Admitted | Refused> {
    const caller = connection?.caller;
    if (!caller) return { refused: { code: 403, message: 'the connection closed' } };
    if (!('person' in caller)) {
      const message =
        'notAfter' in caller
          ? "the Kubernetes API at this server is for people: it needs a user certificate from kport login, not an agent's host certificate"
          : caller.message;
      return { refused: { code: 403, message, ...('user' in caller && caller.user && { user: caller.user }) } };
    }
    let person: Person;
    try {
      await this.#clusters.ready;
      person = await this.#deps.people.person(caller);
    } catch (err) {
      const refusal = asRefusal(err);
      if (!refusal) throw err;
      return { refused: { code: 403, message: refusal.message, user: caller.person } };
    }
    const route = clusterRoute(url, servername, this.#bySni);
    return authorizeKube(person, { method, headers, route, cluster: route && this.#clusters.get(route.name), upgrade });
  }

  /** The agents to try and how to reach them; undefined when none serves the cluster now. */
  #attempts(admitted: Admitted, upgradeSession?: string): Attempts | undefined {
    const cluster = admitted.cluster.metadata.name;
    const hosts = this.#agents.candidates(admitted.cluster);
    if (hosts.length === 0) return undefined;
    const { caller } = admitted.person;
    const claims = { person: caller.person, kubeUser: admitted.user, kubeGroups: admitted.groups, cluster, certExpires: caller.notAfter };
    const triedFor = new Map<string, Set<string>>();
    return {
      hosts,
      // The servers this request tried for each agent: an agent listed again (one holder each) goes to the next holder.
      open: (hostId, headers, options) => {
        let tried = triedFor.get(hostId);
        if (!tried) triedFor.set(hostId, (tried = new Set()));
        return this.#deps.tunnels.request(hostId, headers, options) ?? this.#deps.peers?.open(hostId, headers, options, tried);
      },
      identity: async (hostId) => {
        // An upgrade is a session of its own: a fresh identity, its id the recording's.
        if (upgradeSession)
          return { token: (await signIdentity(this.#deps.identityKey, { ...claims, hostId, sessionId: upgradeSession })).token, sessionId: upgradeSession };
        return this.#identities.get(`${caller.person}|${caller.keyHash}|${cluster}|${admitted.user}|${admitted.groups.join(',')}|${hostId}`, async () => {
          const sessionId = newSessionId();
          const signed = await signIdentity(this.#deps.identityKey, { ...claims, hostId, sessionId });
          return { token: signed.token, sessionId, expires: signed.expires };
        });
      },
    };
  }

  #noAgent(admitted: Admitted, method: string, remote: string, started: number, answer: (code: KportCode, message: string) => void): void {
    const message = `no agent serves ${admitted.cluster.metadata.name} right now: its Kubernetes agents are down or have no tunnel to this server (see \`kport get kube_server\`)`;
    answer(502, message);
    this.#audit(admitted, method, remote, started, { status: 502, error: message });
  }

  #refuse({ refused }: Refused, method: string, url: string, remote: string, started: number, answer: (code: KportCode, message: string) => void): void {
    answer(refused.code, refused.message);
    auditRefused(this.#deps.audit, refused, method, url, remote, started);
  }

  #audit(admitted: Admitted, method: string, remote: string, started: number, outcome: Outcome): void {
    auditAllowed(this.#deps.audit, admitted, method, remote, started, outcome);
  }
}

function serverName(socket: TLSSocket | undefined): string | undefined {
  return typeof socket?.servername === 'string' ? socket.servername : undefined;
}
