// The server's Kubernetes routing in tests: a real KportServer (its TLS port, its people checks, its
// routing) in this process, people's certificates issued by its user CA, and stand-in Kubernetes
// agents on in-memory tunnels (stream.duplexPair), until the agent's own service (AgentKubeService)
// is merged; then the lead points `standInAgent` at it.
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { constants, type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { MemoryBackend } from '../../src/backend/memory.ts';
import type { RoleConfig } from '../../src/config/schema.ts';
import { Forwarder } from '../../src/kube/forwarder.ts';
import type { Upstream } from '../../src/kube/upstream.ts';
import { addUser } from '../../src/people/users.ts';
import { getUser } from '../../src/people/store.ts';
import { certPem, generateKeys, issueLeaf, keyPem } from '../../src/pki/certs.ts';
import { KUBE_CLUSTER } from '../../src/resources/kube-cluster.ts';
import { KUBE_SERVER } from '../../src/resources/kube-server.ts';
import { upsertResource } from '../../src/resources/store.ts';
import { loadAuthorities, type Authorities } from '../../src/server/authorities.ts';
import { ServerAudit } from '../../src/server/audit.ts';
import type { UpgradeHooks } from '../../src/server/kube-routes.ts';
import { openLoopbackTunnel } from '../../src/server/loopback-tunnel.ts';
import { KportServer } from '../../src/server/server.ts';
import { verifyIdentity, type KubeIdentity } from '../../src/tunnel/identity.ts';
import { IDENTITY_HEADER } from '../../src/tunnel/protocol.ts';
import { tempDir } from '../peers/process.ts';

export interface Harness {
  backend: MemoryBackend;
  authorities: Authorities;
  audit: ServerAudit;
  server: KportServer;
  port: number;
  logs: string[];
  /** A user in the store and a certificate for them from the user CA. */
  personCert(name: string, roles: string[], validForMs?: number): Promise<{ cert: string; key: string; ca: string }>;
  cluster(name: string, labels: Record<string, string>, kubeconfig?: string): Promise<void>;
  heartbeat(hostId: string, clusters: string[]): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(opts: { roles: RoleConfig[]; upgrades?: UpgradeHooks }): Promise<Harness> {
  const dir = tempDir('route');
  const backend = new MemoryBackend();
  const { authorities, seal } = await loadAuthorities(backend, join(dir, 'data'));
  const logs: string[] = [];
  const audit = new ServerAudit(backend, { log: (line) => logs.push(line) });
  const server = new KportServer({
    backend,
    authorities,
    audit,
    host: '127.0.0.1',
    port: 0,
    publicNames: [],
    hostCertTtlMs: 3_600_000,
    log: (line) => logs.push(line),
    people: { sealKey: seal, configRoles: opts.roles },
    ...(opts.upgrades && { kubeUpgrades: opts.upgrades }),
  });
  const { port } = await server.listen();
  return {
    backend,
    authorities,
    audit,
    server,
    port,
    logs,
    async personCert(name, roles, validForMs = 3_600_000) {
      if (!(await getUser(backend, name))) await addUser(backend, { name, roles, configRoles: opts.roles }, new Date());
      const user = (await getUser(backend, name))!;
      const keys = await generateKeys();
      const leaf = await issueLeaf(authorities.user, keys.publicKey, { commonName: name, usage: 'client', validForMs, user: { roles, uid: user.spec.uid! } });
      return { cert: certPem(leaf), key: await keyPem(keys.privateKey), ca: authorities.server_tls.certPem };
    },
    async cluster(name, labels, kubeconfig) {
      await upsertResource(backend, { kind: KUBE_CLUSTER, version: 'v3', metadata: { name, labels }, spec: kubeconfig ? { kubeconfig } : {} } as never);
    },
    async heartbeat(hostId, clusters) {
      await upsertResource(backend, { kind: KUBE_SERVER, version: 'v1', metadata: { name: hostId, expires: new Date(Date.now() + 90_000).toISOString() }, spec: { host_id: hostId, hostname: 'test', clusters, started: new Date().toISOString() } });
    },
    async close() {
      await server.close();
      await audit.drain();
    },
  };
}

export interface StandInAgent {
  hostId: string;
  /** Streams that passed the identity check (requests that would reach the cluster). */
  admitted: KubeIdentity[];
  /** Streams the agent saw at all, with or without an identity. */
  streams: number;
  open: Set<ServerHttp2Stream>;
  session: ClientHttp2Session;
  /** The tunnel cut as a killed process cuts it. */
  kill(): void;
}

/**
 * A minimal Kubernetes agent on an in-memory tunnel (the server's loopback tunnel) attached to the server: it checks the signed
 * identity as an agent must, and sends the request to `upstream` through kport's own Forwarder as
 * that identity; `broken` resets every stream before answering (an agent that fails first);
 * `upgrade` answers CONNECT streams itself (a WebSocket echo) instead of the cluster.
 */
export function standInAgent(h: Harness, hostId: string, opts: { upstream?: Upstream; broken?: boolean; upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void } = {}): StandInAgent {
  let agentSession!: ServerHttp2Session;
  const close = openLoopbackTunnel(h.server.tunnels, hostId, (s) => (agentSession = s));
  const session = h.server.tunnels.sessions(hostId).at(-1)!;
  const forwarder = new Forwarder({ kportUser: 'agent' });
  const agent: StandInAgent = {
    hostId,
    admitted: [],
    streams: 0,
    open: new Set(),
    session,
    kill: close,
  };
  const internal = createHttpServer();
  const upgrades = new WeakMap<object, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>();
  internal.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrades.get(socket)?.(req, socket, head));
  agentSession.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    agent.streams++;
    stream.on('error', () => {});
    agent.open.add(stream);
    stream.once('close', () => agent.open.delete(stream));
    if (opts.broken) return stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    void verifyIdentity(h.authorities.kube_identity.keys.publicKey, String(headers[IDENTITY_HEADER] ?? ''), { hostId }).then(
      (identity) => {
        agent.admitted.push(identity);
        const target = { name: identity.cluster, upstream: opts.upstream!, access: { users: [identity.kubeUser], groups: identity.kubeGroups }, defaults: {} };
        if (headers[':method'] !== 'CONNECT') return forwarder.handleStream(target, stream, headers, String(headers[':path']));
        stream.respond({ ':status': 200 });
        upgrades.set(stream, (req, socket, head) => (opts.upgrade ? opts.upgrade(req, socket, head) : void forwarder.handleUpgrade(target, req, socket, head, req.url ?? '/')));
        internal.emit('connection', stream);
      },
      (err: Error) => {
        stream.respond({ ':status': 403, 'content-type': 'text/plain' });
        stream.end(`${err.message}\n`);
      },
    );
  });
  return agent;
}
