// Two attacks on kubectl through the server (issue 21), with real processes: a real `kport server
// start` serving a static cluster in-process, two real Kubernetes agents (`kport discover run`) each
// serving a context of its own kubeconfig_file, the real kube-apiserver with kwok pods, real kubectl.
// 1. A compromised agent B, with its real host certificate, heartbeats a claim on agent A's cluster
//    and the static one and opens a rogue tunnel: it must get no request for either.
// 2. `users lock`, `users rm` and `users reset` must end the person's open exec session and watch at once.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { createServer as createH2Server } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { kubeHome } from '../helpers/kube-home.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { auditEvents, kubeAgent, startServer, type KubeAgent, type TestServer } from '../helpers/network.ts';
import { startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { clusterExec, startKwok, type Kwok } from '../peers/kwok.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const PEERS = () => [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd(), BINARIES.kwok(), ...BINARIES.kwokStages()];

describe('kubectl through the server: a claimed cluster and a locked person', { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let kwok: Kwok;
  let server: TestServer;
  const agents: Record<string, KubeAgent> = {};
  const people: Record<string, Person> = {};
  const kubectl = BINARIES.kubectl();
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver and kwok', PEERS());

  /** A pure Kubernetes agent (token of type kube, no discovery) serving one context of its own kubeconfig_file. */
  async function startKubeAgent(context: string): Promise<KubeAgent> {
    const kubeconfig = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: context, cluster: { server: api.server, 'certificate-authority-data': Buffer.from(api.caPem).toString('base64') } }],
      users: [{ name: 'proxy', user: { token: api.proxy.token } }],
      contexts: [{ name: context, context: { cluster: context, user: 'proxy' } }],
      'current-context': context,
    });
    const agent = await kubeAgent(server, { name: `kube-agent-${context}`, kubeconfig, kubernetes: { labels: { env: 'dev' } } });
    agent.start();
    return agent;
  }

  /** A person's certificate, key and the server CA, from the profile `kport login` wrote. */
  const profile = (who: Person) => {
    const dir = join(who.home, '.kport', 'profiles', `127.0.0.1_${server.port}`);
    return {
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    };
  };
  const connectAs = (who: Person): ClientHttp2Session => {
    const { cert, key, ca } = profile(who);
    const session = http2Connect(`https://127.0.0.1:${server.port}`, { cert, key, ca, servername: 'localhost' });
    session.on('error', () => {});
    return session;
  };
  const get = (session: ClientHttp2Session, path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': path });
      let body = '';
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
    });
  const servers = async () =>
    JSON.parse(String((await server.kport(['get', 'kube_server', '-o', 'json'])).stdout)) as Array<{
      spec: { host_id: string; clusters: string[]; started?: string };
    }>;

  before(async (t) => {
    if (!have(t as never)) return;
    api = await startKubeApiserver({ kubeletClient: true });
    kwok = await startKwok(api, [clusterExec()]);
    await kubeHome(api, tempDir('safety-rbac'), { roles: [], users: [] });
    const admin = (...args: string[]) => execa(kubectl, ['--kubeconfig', api.kubeconfig(api.admin), ...args]);
    await admin('create', 'namespace', 'apps');
    await admin('create', 'clusterrole', 'dev', '--verb=get,list,watch,create', '--resource=pods,pods/exec');
    await admin('create', 'clusterrolebinding', 'developers-dev', '--clusterrole=dev', '--group=developers');
    await kwok.createPod('apps', 'web');

    server = await startServer({ kubernetes: { enabled: 'yes', resources: [{ labels: { env: 'dev' } }] } });
    const setup = join(server.dir, 'setup.yaml');
    writeFileSync(
      setup,
      [
        stringify({
          kind: 'role',
          version: 'v7',
          metadata: { name: 'dev-access' },
          spec: { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['developers'] } },
        }),
        stringify({
          kind: 'kube_cluster',
          version: 'v3',
          metadata: { name: 'static', labels: { env: 'dev' } },
          spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
        }),
      ].join('---\n'),
    );
    const created = await server.kport(['create', '-f', setup]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    agents.a = await startKubeAgent('alpha');
    agents.b = await startKubeAgent('beta');
    for (const name of ['alice', 'carol', 'dave', 'rita']) people[name] = await invitedPerson(server, name, ['dev-access']);
    await waitFor(
      'alpha, beta and static served',
      async () => {
        const listed = (await servers()).flatMap((s) => s.spec.clusters);
        return ['alpha', 'beta', 'static'].every((c) => listed.includes(c));
      },
      { timeoutMs: 90_000 },
    );
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) process.stderr.write(`--- server\n${server?.log.slice(-4000)}\n--- a\n${agents.a?.log}\n--- b\n${agents.b?.log}\n`);
    await Promise.all(Object.values(agents).map((a) => a.kill()));
    await server?.stop();
    await kwok?.stop();
    await api?.stop();
  });

  test("agent B, with its real host certificate, claims agent A's cluster and the static one in its heartbeat and opens a rogue tunnel: the claims are dropped and audited, and not one request for them reaches it", async (t) => {
    if (!have(t)) return;
    const b = agents.b!;
    const bHost = b.hostId();
    const aHost = agents.a!.hostId();
    const { cert, key } = b.credential();
    // B is compromised: its process is gone, its certificate in the attacker's hands.
    await b.kill();

    // The attacker's tunnel: B's certificate, the tunnel upgrade, then an HTTP/2 server that counts what it is sent.
    const rogue = { streams: [] as string[], open: false };
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, cert, key, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write('GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: kport-tunnel/1\r\n\r\n');
    });
    socket.on('error', () => {});
    t.after(() => socket.destroy());
    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHead);
      assert.match(head.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
      const h2 = createH2Server();
      h2.on('stream', (stream, headers) => {
        rogue.streams.push(String(headers[':path'] ?? headers[':method']));
        stream.on('error', () => {});
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [{ metadata: { name: 'FORGED-BY-ROGUE-AGENT' } }] }));
      });
      if (end + 4 < head.length) socket.unshift(head.subarray(end + 4));
      Object.defineProperty(socket, 'alpnProtocol', { value: 'h2', configurable: true });
      h2.emit('connection', socket);
      rogue.open = true;
    };
    socket.on('data', onHead);
    await waitFor('the rogue tunnel', async () => rogue.open, { timeoutMs: 30_000 });

    // The claim: a kube_server heartbeat for B listing its own cluster, A's and the static one.
    const claimed = ['beta', 'alpha', 'static'];
    const hb = http2Connect(`https://127.0.0.1:${server.port}`, { cert, key, rejectUnauthorized: false });
    hb.on('error', () => {});
    t.after(() => hb.close());
    const now = new Date();
    const beat = {
      kind: 'kube_server',
      version: 'v1',
      metadata: { name: bHost, description: 'kport kubernetes service on vm', expires: new Date(Date.now() + 90_000).toISOString() },
      spec: { host_id: bHost, hostname: 'vm', clusters: claimed, started: now.toISOString(), last_heartbeat: now.toISOString() },
    };
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = hb.request({ ':method': 'POST', ':path': '/v1/backend', 'content-type': 'application/json' });
      let body = '';
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end(JSON.stringify({ op: 'put', key: `/resources/kube_server/${bHost}`, value: JSON.stringify(beat), ttl_ms: 90_000 }));
    });
    assert.equal(answer.status, 200, answer.body);
    // The heartbeat as stored (with the claims, or without them): the routing has seen it by the time `kport get` answers.
    const stored = await waitFor("B's heartbeat stored", async () =>
      (await servers()).find((s) => s.spec.host_id === bHost && s.spec.started === beat.spec.started),
    );

    const alice = connectAs(people.alice!);
    t.after(() => alice.close());
    // B's own cluster reaches its tunnel: the tunnel is live, so what follows would reach it if routed there.
    const own = await get(alice, '/k/beta/api/v1/namespaces/apps/pods');
    assert.equal(own.status, 200);
    assert.equal(rogue.streams.length, 1, "beta's request reached B's tunnel");
    for (let i = 0; i < 20; i++) {
      for (const cluster of ['alpha', 'static']) {
        const res = await get(alice, `/k/${cluster}/api/v1/namespaces/apps/pods`);
        assert.equal(res.status, 200, res.body);
        assert.doesNotMatch(res.body, /FORGED/);
        assert.equal((JSON.parse(res.body) as { items: Array<{ metadata: { name: string } }> }).items[0]?.metadata.name, 'web');
      }
    }
    assert.deepEqual(rogue.streams, ['/api/v1/namespaces/apps/pods'], 'no request for alpha or static reached B');
    // The server's audit says who served each: A alone for alpha, the server's own service for static.
    const served = (await auditEvents(server)).filter(
      (e) => e.spec.type === 'kube.request' && (e.spec as { cluster?: string }).cluster === 'alpha' && (e.spec as { status?: number }).status === 200,
    );
    assert.equal(served.length, 20);
    assert.deepEqual([...new Set(served.map((e) => e.spec.host_id))], [aHost]);
    // And the heartbeat itself keeps only what B may serve; the claim is audited.
    assert.deepEqual(stored.spec.clusters, ['beta'], 'the server keeps only the cluster B may serve');
    const claim = (await auditEvents(server)).find(
      (e) => e.spec.type === 'agent.call' && e.spec.host_id === bHost && /may not serve/.test(e.spec.reason ?? ''),
    );
    assert.ok(claim, 'the claim is audited');
    assert.match(claim.spec.reason!, /alpha, static/);
  });

  /** A person's exec session (kubectl, WebSocket, to a kwok pod) and an HTTP/2 watch through the server, both open. */
  async function openSessions(who: Person) {
    const { cert, key, ca } = profile(who);
    const dir = tempDir('safety-kubectl');
    const write = (name: string, data: string) => (writeFileSync(join(dir, name), data, { mode: 0o600 }), join(dir, name));
    const kubeconfig = write(
      'config',
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'k',
            cluster: { server: `https://127.0.0.1:${server.port}/k/static`, 'certificate-authority': write('ca.pem', ca), 'tls-server-name': 'localhost' },
          },
        ],
        users: [{ name: 'p', user: { 'client-certificate': write('cert.pem', cert), 'client-key': write('key.pem', key) } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'p' } }],
        'current-context': 'c',
      }),
    );
    const exec = execa(kubectl, ['--kubeconfig', kubeconfig, 'exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo ready; exec sleep 300'], {
      reject: false,
      stdin: 'ignore',
    });
    let out = '';
    exec.stdout!.on('data', (c: Buffer) => (out += c));
    const session = { exitCode: undefined as number | undefined, stderr: '' };
    void exec.then((r) => Object.assign(session, { exitCode: r.exitCode ?? -1, stderr: String(r.stderr) }));
    await waitFor('the exec session to run', async () => out.includes('ready') || session.exitCode !== undefined, { timeoutMs: 60_000 });
    assert.equal(session.exitCode, undefined, `the session runs: ${session.stderr}`);
    const watcher = connectAs(who);
    const watch = { ended: false, status: 0 };
    const req = watcher.request({ ':path': '/k/static/api/v1/namespaces/apps/pods?watch=1&timeoutSeconds=600' });
    req.on('response', (h) => (watch.status = Number(h[':status'])));
    req.on('error', () => {});
    req.resume();
    req.on('close', () => (watch.ended = true));
    await waitFor('the watch to open', async () => watch.status === 200, { timeoutMs: 30_000 });
    return { exec: session, watch, close: () => (exec.kill('SIGKILL'), watcher.destroy()) };
  }

  for (const [verb, who, args, why] of [
    ['lock', 'carol', ['users', 'lock', 'carol', '--message', 'incident 42'], /carol is locked.*incident 42/],
    ['rm', 'dave', ['users', 'rm', 'dave'], /dave no longer exists/],
    ['reset', 'rita', ['users', 'reset', 'rita'], /this login of rita was revoked/],
  ] as const) {
    test(`users ${verb} ends ${who}'s open exec session and watch through the server within seconds; session.end says why`, async (t) => {
      if (!have(t)) return;
      const open = await openSessions(people[who]!);
      t.after(open.close);
      // Still running a moment later: only the change of the person's record may end them.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(open.exec.exitCode, undefined);
      assert.equal(open.watch.ended, false);
      const changed = await server.kport([...args]);
      assert.equal(changed.exitCode, 0, String(changed.stderr));
      const at = Date.now();
      // The command sleeps 300 s and the watch asks for 600: ending at all is the server's doing.
      await waitFor('the exec session and the watch to end', async () => open.exec.exitCode !== undefined && open.watch.ended, { timeoutMs: 60_000 }).catch(
        () => {
          assert.fail(
            `still open ${Math.round((Date.now() - at) / 1000)} s after users ${verb}: exec ${open.exec.exitCode === undefined ? 'running' : 'ended'}, watch ${open.watch.ended ? 'ended' : 'open'}`,
          );
        },
      );
      const took = Date.now() - at;
      assert.notEqual(open.exec.exitCode, 0, 'the session was cut, not finished');
      process.stderr.write(`# users ${verb}: exec and watch ended ${took} ms after the command returned\n`);
      const end = await waitFor('session.end', async () =>
        (await auditEvents(server)).find((e) => e.spec.type === 'session.end' && (e.spec as { user?: string }).user === who),
      );
      assert.match(end.spec.reason ?? '', why);
    });
  }
});
