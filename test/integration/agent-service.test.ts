// The agent's side of a proxied request (issue 21, docs/architecture.md §9): AgentKubeService over an in-memory
// reverse tunnel, in front of a real kube-apiserver (with its own audit log) and a kwok pod. The
// server's side is a minimal stand-in here: it signs identities as the server would and opens
// streams on the tunnel as protocol.ts describes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import { connect, performServerHandshake, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, test, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { kubeIdentityKey } from '../../src/join/network-identity.ts';
import { AgentKubeService } from '../../src/reversetunnel/agent-service.ts';
import { staticUpstream } from '../../src/kube/upstream.ts';
import { certPem, createAuthority } from '../../src/pki/certs.ts';
import type { KubeCluster } from '../../src/resources/kube-cluster.ts';
import { newSessionId, signIdentity, type KubeIdentity } from '../../src/reversetunnel/identity.ts';
import { IDENTITY_HEADER, TUNNEL_AUTHORITY } from '../../src/reversetunnel/protocol.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { startKubeApiserver, type KubeApiserver, type KubeAuditEvent } from '../peers/kube.ts';
import { clusterExec, startKwok, type Kwok } from '../peers/kwok.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const run = promisify(execFile);
const PEERS = () => [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd(), BINARIES.kwok(), ...BINARIES.kwokStages()];
const HOST = 'agent-1111';
const CLUSTER = 'kwok';
type Signer = Awaited<ReturnType<typeof createAuthority>>;

describe('AgentKubeService: signed identities on tunnel streams, to a real kube-apiserver and kwok pod', { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let kwok: Kwok;
  let server: Signer;
  let tunnel: ClientHttp2Session;
  const warnings: string[] = [];
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver and kwok', PEERS());

  const identity = (over: Partial<Omit<KubeIdentity, 'expires'>> = {}): Omit<KubeIdentity, 'expires'> => ({
    person: 'alice',
    kubeUser: 'alice-k8s',
    kubeGroups: ['operators', 'system:authenticated'],
    cluster: CLUSTER,
    hostId: HOST,
    sessionId: newSessionId(),
    certExpires: Date.now() + 3_600_000,
    ...over,
  });
  const sign = async (over: Partial<Omit<KubeIdentity, 'expires'>> = {}, key = server.keys.privateKey, now?: number) =>
    (await signIdentity(key, identity(over), now)).token;

  /** One request on the tunnel, as the server sends it; the whole answer. */
  function request(headers: OutgoingHttpHeaders): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const stream = tunnel.request({ ':authority': TUNNEL_AUTHORITY, ...headers });
      let status = 0;
      let responseHeaders: IncomingHttpHeaders = {};
      let body = '';
      stream.setEncoding('utf8');
      stream.on('response', (h) => {
        status = Number(h[':status']);
        responseHeaders = h;
      });
      stream.on('data', (c: string) => (body += c));
      stream.on('end', () => resolve({ status, headers: responseHeaders, body }));
      stream.on('error', reject);
    });
  }
  const proxyEvents = () => api.auditEvents().filter((e) => e.user.username === api.proxy.user);
  const bySession = (sessionId: string) => (e: KubeAuditEvent) => e.impersonatedUser?.extra?.['kport.dev/session-id']?.[0] === sessionId;

  before(async (t) => {
    if (!have(t as never)) return;
    api = await startKubeApiserver({ kubeletClient: true, auditLog: true });
    kwok = await startKwok(api, [clusterExec()]);
    // The agent's own identity in the cluster gets kport's ClusterRole from `kport rbac bootstrap`, user extras included.
    await kubeHome(api, tempDir('agent-service'), { roles: [], users: [] });
    const k = (...args: string[]) => run(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.admin), ...args]);
    await k('create', 'namespace', 'apps');
    await k('create', 'clusterrole', 'operator', '--verb=get,list,watch,create', '--resource=pods,pods/exec');
    await k('create', 'rolebinding', 'operators', '--clusterrole=operator', '--group=operators', '-n', 'apps');
    await kwok.createPod('apps', 'web');
    // RBAC serves from an informer: grants just written take a moment to apply.
    const allowed = async (user: string, groups: string[], resourceAttributes: object) =>
      (
        await api.request(api.admin, '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
          method: 'POST',
          body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, groups, resourceAttributes } },
        })
      ).body?.status?.allowed === true;
    await waitFor(
      'the grants to apply',
      async () =>
        ((await allowed('alice-k8s', ['operators'], { namespace: 'apps', verb: 'watch', resource: 'pods' })) &&
          (await allowed(api.proxy.user, api.proxy.groups, {
            group: 'authentication.k8s.io',
            verb: 'impersonate',
            resource: 'userextras',
            subresource: 'kport.dev/session-id',
          }))) ||
        undefined,
      { timeoutMs: 30_000 },
    );

    server = await createAuthority('kport kube identity', 3_600_000);
    // The agent checks with the public half from its credential, as after a join.
    const credential = { credential: { kube_identity: certPem(server.cert) } } as Parameters<typeof kubeIdentityKey>[0];
    const cluster = {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: CLUSTER },
      spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
    } as KubeCluster;
    const upstream = staticUpstream(cluster);
    const service = new AgentKubeService({
      hostId: HOST,
      identityKey: kubeIdentityKey(credential),
      upstream: async (name) => (name === CLUSTER ? upstream : undefined),
      warn: (m) => warnings.push(m),
    });
    const [serverEnd, agentEnd] = duplexPair();
    service.serve(performServerHandshake(agentEnd));
    tunnel = connect(`http://${TUNNEL_AUTHORITY}`, { createConnection: () => serverEnd });
  });
  after(async () => {
    tunnel?.close();
    await kwok?.stop();
    await api?.stop();
  });

  test("a request acts as the identity's Kubernetes user and groups, whatever Impersonate-* it carries; the cluster's audit log names the person and the session", async (t) => {
    if (!have(t)) return;
    const sessionId = newSessionId();
    const token = await sign({ sessionId });
    const forged = { 'impersonate-user': 'admin', 'impersonate-group': 'system:masters', impersonate_group: 'system:masters' };
    const pods = await request({ ':method': 'GET', ':path': '/api/v1/namespaces/apps/pods', [IDENTITY_HEADER]: token, ...forged });
    assert.equal(pods.status, 200, pods.body);
    assert.deepEqual(
      JSON.parse(pods.body).items.map((p: { metadata: { name: string } }) => p.metadata.name),
      ['web'],
    );
    // system:masters would read nodes; the operators group may not.
    const nodes = await request({ ':method': 'GET', ':path': '/api/v1/nodes', [IDENTITY_HEADER]: token, ...forged });
    assert.equal(nodes.status, 403, nodes.body);
    assert.match(JSON.parse(nodes.body).message, /User "alice-k8s" cannot list resource "nodes"/);

    const events = await waitFor(
      'the audit events of both requests',
      async () => {
        const found = api.auditEvents().filter(bySession(sessionId));
        return found.length >= 2 ? found : undefined;
      },
      { timeoutMs: 30_000 },
    );
    for (const e of events) {
      assert.equal(e.user.username, api.proxy.user, 'the agent authenticates as itself');
      assert.equal(e.impersonatedUser?.username, 'alice-k8s');
      assert.deepEqual(
        e.impersonatedUser?.groups?.filter((g) => g !== 'system:authenticated'),
        ['operators'],
      );
      assert.deepEqual(e.impersonatedUser?.extra, { 'kport.dev/original-user': ['alice'], 'kport.dev/session-id': [sessionId] });
    }
    assert.deepEqual(events.map((e) => e.responseStatus?.code).sort(), [200, 403]);
  });

  test('no identity, a forged, expired or garbage one, one for another agent, a person whose certificate expired: refused, and no request reaches the cluster', async (t) => {
    if (!have(t)) return;
    const before = new Set(proxyEvents().map((e) => e.auditID));
    const attacker = await createAuthority('not the server', 3_600_000);
    const past = Date.now() - 10 * 60_000;
    const refusals: Array<[string, OutgoingHttpHeaders, RegExp]> = [
      ['none', {}, /the stream carries no identity/],
      ['empty', { [IDENTITY_HEADER]: '' }, /the stream carries no identity/],
      ['garbage', { [IDENTITY_HEADER]: 'not.a.jws' }, /the identity is not valid/],
      ['forged', { [IDENTITY_HEADER]: await sign({}, attacker.keys.privateKey) }, /the identity is not valid: signature verification failed/],
      ['expired', { [IDENTITY_HEADER]: await sign({}, undefined, past) }, /the identity has expired/],
      ['another agent', { [IDENTITY_HEADER]: await sign({ hostId: 'agent-2222' }) }, /the identity was made for another agent/],
      ["person's certificate expired", { [IDENTITY_HEADER]: await sign({ certExpires: Date.now() - 1000 }) }, /the identity has expired/],
      // The server never signs such a name; were it to, node:http2 would throw on it past the checks.
      [
        'a name that is no header value',
        { [IDENTITY_HEADER]: await sign({ person: 'alice\r\nimpersonate-group: system:masters' }) },
        /the identity names "alice\\r\\nimpersonate-group: system:masters", which cannot be sent as a header/,
      ],
    ];
    for (const [name, headers, message] of refusals) {
      for (const method of ['GET', 'CONNECT']) {
        const res = await request(
          method === 'CONNECT' ? { ':method': 'CONNECT', ...headers } : { ':method': 'GET', ':path': '/api/v1/namespaces/apps/pods', ...headers },
        );
        assert.equal(res.status, 403, `${name} ${method}: ${res.body}`);
        assert.match(res.body, new RegExp(`^kport agent ${HOST} refused the request: ${message.source}`), `${name} ${method}`);
      }
    }
    const elsewhere = await request({ ':method': 'GET', ':path': '/api/v1/namespaces/apps/pods', [IDENTITY_HEADER]: await sign({ cluster: 'other' }) });
    assert.equal(elsewhere.status, 404);
    assert.equal(JSON.parse(elsewhere.body).message, `kport agent ${HOST} does not serve cluster other`);

    // One good request after them: once its event is in the log, any of theirs would be too (blocking audit mode, in order).
    const marker = newSessionId();
    assert.equal(
      (await request({ ':method': 'GET', ':path': '/api/v1/namespaces/apps/pods', [IDENTITY_HEADER]: await sign({ sessionId: marker }) })).status,
      200,
    );
    await waitFor('the marker request in the audit log', async () => api.auditEvents().some(bySession(marker)) || undefined, { timeoutMs: 30_000 });
    const arrived = proxyEvents().filter((e) => !before.has(e.auditID));
    assert.deepEqual(
      [...new Set(arrived.map((e) => e.auditID))].length,
      1,
      `only the marker reached the cluster: ${JSON.stringify(arrived.map((e) => e.requestURI))}`,
    );
    assert.ok(arrived.every(bySession(marker)));
    assert.ok(warnings.length >= 1 && warnings.length < refusals.length, `refusals are logged, at most one line a minute: ${warnings.join(' | ')}`);
  });

  test("an agent without the server's key yet (an identity from before tunnels, not renewed) refuses every stream, saying why", async (t) => {
    if (!have(t)) return;
    // Were the cluster looked up, this upstream would make it a 503.
    const service = new AgentKubeService({
      hostId: HOST,
      identityKey: () => undefined,
      upstream: async () => {
        throw new Error('never asked');
      },
    });
    const [serverEnd, agentEnd] = duplexPair();
    service.serve(performServerHandshake(agentEnd));
    const keyless = connect(`http://${TUNNEL_AUTHORITY}`, { createConnection: () => serverEnd });
    try {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = keyless.request({ ':authority': TUNNEL_AUTHORITY, ':method': 'GET', ':path': '/api/v1/namespaces/apps/pods', [IDENTITY_HEADER]: 'x' });
        let status = 0;
        let body = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.setEncoding('utf8').on('data', (c: string) => (body += c));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
      });
      assert.equal(res.status, 403);
      assert.equal(
        res.body,
        `kport agent ${HOST} refused the request: this agent has no copy of the server's identity key yet: it gets one when it renews its certificate (at start, for an agent that joined before tunnels)\n`,
      );
    } finally {
      keyless.close();
    }
  });

  test('kubectl exec through a CONNECT stream (WebSocket, then SPDY) returns the output byte for byte', async (t) => {
    if (!have(t)) return;
    const sessionId = newSessionId();
    const door = await frontDoor(tunnel, () => sign({ sessionId }));
    try {
      const kubeconfig = join(tempDir('door'), 'config');
      writeFileSync(
        kubeconfig,
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'd', cluster: { server: door.url } }],
          users: [{ name: 'u', user: {} }],
          contexts: [{ name: 'd', context: { cluster: 'd', user: 'u' } }],
          'current-context': 'd',
        }),
      );
      const exec = (env: Record<string, string>, script: string) =>
        run(BINARIES.kubectl(), ['--kubeconfig', kubeconfig, 'exec', '-n', 'apps', 'web', '--', 'sh', '-c', script], {
          env: { ...process.env, ...env },
          maxBuffer: 8 << 20,
        });
      // Several times: the end of a session (the last output, the WebSocket close) is where a hop drops bytes.
      for (let i = 0; i < 10; i++) {
        const big = await exec({}, 'head -c 1048576 /dev/zero | tr "\\000" "x"; echo; echo done >&2');
        assert.equal(big.stdout, `${'x'.repeat(1048576)}\n`);
        assert.equal(big.stderr, 'done\n');
      }
      const spdy = await exec({ KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' }, 'echo over spdy');
      assert.equal(spdy.stdout, 'over spdy\n');
      const execs = await waitFor(
        'the exec events',
        async () => {
          const found = api.auditEvents().filter((e) => bySession(sessionId)(e) && e.requestURI.includes('/exec') && e.stage === 'ResponseComplete');
          return found.length >= 2 ? found : undefined;
        },
        { timeoutMs: 30_000 },
      );
      for (const e of execs) assert.deepEqual(e.impersonatedUser?.extra?.['kport.dev/original-user'], ['alice']);
    } finally {
      door.close();
    }
  });

  test("a watch ends when the person's certificate expires, not before", { timeout: 90_000 }, async (t) => {
    if (!have(t)) return;
    // Long enough for the request to be served first on a loaded machine.
    const certExpires = Date.now() + 8000;
    const stream = tunnel.request({
      ':authority': TUNNEL_AUTHORITY,
      ':method': 'GET',
      ':path': '/api/v1/namespaces/apps/pods?watch=true',
      [IDENTITY_HEADER]: await sign({ certExpires }),
    });
    let status = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.resume();
    stream.on('error', () => {});
    const closedAt = await new Promise<number>((resolve) => stream.once('close', () => resolve(Date.now())));
    assert.equal(status, 200, 'the watch was served');
    assert.ok(closedAt >= certExpires, `closed ${certExpires - closedAt} ms before the certificate expired`);
  });
});

/**
 * The server's side, cut to what this test needs: an HTTP/1.1 listener whose requests go out as
 * tunnel streams and whose upgrades as CONNECT streams carrying the raw request (protocol.ts).
 */
async function frontDoor(tunnel: ClientHttp2Session, token: () => Promise<string>): Promise<{ url: string; close(): void }> {
  const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te']);
  const door: Server = createServer(async (req, res) => {
    const headers: OutgoingHttpHeaders = { ':authority': TUNNEL_AUTHORITY, ':method': req.method, ':path': req.url, [IDENTITY_HEADER]: await token() };
    for (const [name, value] of Object.entries(req.headers)) if (!HOP.has(name)) headers[name] = value;
    const stream = tunnel.request(headers);
    req.pipe(stream);
    stream.on('response', (h) => {
      const status = Number(h[':status']);
      for (const name of Object.keys(h)) if (name.startsWith(':')) delete h[name];
      res.writeHead(status, h);
      stream.pipe(res);
    });
    stream.on('error', () => res.destroy());
  });
  door.on('upgrade', async (req, socket, head) => {
    const stream = tunnel.request({ ':authority': TUNNEL_AUTHORITY, ':method': 'CONNECT', [IDENTITY_HEADER]: await token() });
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    stream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) stream.write(head);
    socket.pipe(stream).pipe(socket);
    const close = () => {
      socket.destroy();
      stream.destroy();
    };
    // A side that ends is ended on the other once what it sent is written (pipe does that): destroying
    // it at once would drop the tail, the WebSocket close frame among it.
    socket.on('close', close).on('error', close);
    stream.on('error', close);
  });
  await new Promise<void>((resolve) => door.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(door.address() as { port: number }).port}`, close: () => door.close() };
}
