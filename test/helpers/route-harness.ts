// The server's Kubernetes routing in tests: a real KportServer (its TLS port, its people checks, its
// routing) in this process, people's certificates issued by its user CA, and Kubernetes agents
// (AgentKubeService, or a stand-in where a test needs an agent that fails) on in-memory tunnels.
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { constants, type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { MemoryBackend } from '../../src/backend/memory.ts';
import type { RoleConfig } from '../../src/config/schema.ts';
import { AgentKubeService } from '../../src/reversetunnel/agent-service.ts';
import type { Upstream } from '../../src/kube/upstream.ts';
import { addUser } from '../../src/people/users.ts';
import { getUser } from '../../src/people/store.ts';
import { certPem, generateKeys, issueLeaf, keyPem } from '../../src/pki/certs.ts';
import { KUBE_CLUSTER } from '../../src/resources/kube-cluster.ts';
import { KUBE_SERVER } from '../../src/resources/kube-server.ts';
import { upsertResource } from '../../src/resources/store.ts';
import { loadAuthorities, type Authorities } from '../../src/server/auth/authorities.ts';
import { ServerAudit } from '../../src/server/events/audit.ts';
import type { UpgradeHooks } from '../../src/server/kubeproxy/kube-routes.ts';
import { openLoopbackTunnel } from '../../src/reversetunnel/loopback-tunnel.ts';
import { KportServer } from '../../src/server/api/server.ts';
import { verifyIdentity, type KubeIdentity } from '../../src/reversetunnel/identity.ts';
import { IDENTITY_HEADER } from '../../src/reversetunnel/protocol.ts';
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
  /** An EKS-shaped cluster (spec.aws), which any agent whose heartbeat lists it may serve; the test's agents are given their upstream. */
  cluster(name: string, labels: Record<string, string>): Promise<void>;
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
    async cluster(name, labels) {
      await upsertResource(backend, {
        kind: KUBE_CLUSTER,
        version: 'v3',
        metadata: { name, labels },
        spec: { aws: { name, region: 'us-east-1', account_id: '123456789012' } },
      } as never);
    },
    async heartbeat(hostId, clusters) {
      await upsertResource(backend, {
        kind: KUBE_SERVER,
        version: 'v1',
        metadata: { name: hostId, expires: new Date(Date.now() + 90_000).toISOString() },
        spec: { host_id: hostId, hostname: 'test', clusters, started: new Date().toISOString() },
      });
    },
    async close() {
      await server.close();
      await audit.drain();
    },
  };
}

export interface TestAgent {
  hostId: string;
  /** Identities on streams that passed the signature check (requests that reach the cluster); read after settled(). */
  admitted: KubeIdentity[];
  /** Streams the agent saw at all, with or without an identity. */
  streams: number;
  open: Set<ServerHttp2Stream>;
  session: ClientHttp2Session;
  /** Every identity check of the streams seen so far done, so `admitted` is complete. */
  settled(): Promise<void>;
  /** The tunnel cut as a killed process cuts it. */
  kill(): void;
}

/**
 * A Kubernetes agent on an in-memory tunnel (the server's loopback tunnel) attached to the server.
 * By default the real one: AgentKubeService with the server's kube_identity key, sending requests
 * to `upstream` (the checks, the stripped Impersonate-*, the user extras, the expiry timers are
 * the product's). The harness watches the same streams to count them and to see their identities.
 * `broken` resets every stream before answering (an agent that fails first); `upgrade` answers
 * CONNECT streams itself (a WebSocket echo) instead of a cluster: stand-ins for what a real agent
 * does not do.
 */
export function testAgent(
  h: Harness,
  hostId: string,
  opts: { upstream?: Upstream; broken?: boolean; upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void } = {},
): TestAgent {
  const key = h.authorities.kube_identity.keys.publicKey;
  const checks: Promise<unknown>[] = [];
  const agent = { hostId, admitted: [], streams: 0, open: new Set(), settled: () => Promise.all(checks).then(() => undefined) } as unknown as TestAgent;
  const close = openLoopbackTunnel(h.server.tunnels, hostId, (session) => {
    // First in line: the headers as the server sent them, before the service takes the identity out.
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      agent.streams++;
      agent.open.add(stream);
      stream.once('close', () => agent.open.delete(stream));
      checks.push(
        verifyIdentity(key, String(headers[IDENTITY_HEADER] ?? ''), { hostId }).then(
          (identity) => agent.admitted.push(identity),
          () => undefined,
        ),
      );
    });
    if (opts.broken || opts.upgrade) return standIn(session, opts.upgrade);
    new AgentKubeService({ hostId, identityKey: () => key, upstream: async () => opts.upstream }).serve(session);
  });
  agent.session = h.server.tunnels.sessions(hostId).at(-1)!;
  agent.kill = close;
  return agent;
}

/** Resets every stream (no upgrade given), or answers CONNECT streams' upgrades with `upgrade`. */
function standIn(session: ServerHttp2Session, upgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined): void {
  const internal = createHttpServer();
  internal.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade?.(req, socket, head));
  session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => {});
    if (!upgrade || headers[':method'] !== 'CONNECT') return stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    stream.respond({ ':status': 200 });
    internal.emit('connection', stream);
  });
}
