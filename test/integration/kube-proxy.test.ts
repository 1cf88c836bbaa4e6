// real kubectl -> kport kube login proxy -> real kube-apiserver (docs/architecture.md §6).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { parse, stringify } from 'yaml';
import WebSocket, { WebSocketServer } from 'ws';
import { createCA } from '../../src/kube/pki.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { kubeconfigYaml, startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES, OLD_KUBECTL_VERSIONS } from '../peers/versions.ts';

const run = promisify(execFile);
/** Past the minute that proxies' and load balancers' idle timeouts default to (nginx, ELB, node's headersTimeout). */
const HOLD_MS = 65_000;

/** A `kube login` proxy of `user`, and 30 watches on one HTTP/2 connection through it, each for a configmap not made yet. */
async function holdWatches(proxy: ResultPromise) {
  let out = '';
  proxy.stdout!.on('data', (c: Buffer) => (out += c));
  const path = await waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]);
  const config = parse(readFileSync(path, 'utf8'));
  const server = new URL(config.clusters[0].cluster.server);
  const session: ClientHttp2Session = h2connect(server.origin, {
    ca: Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64'),
    cert: Buffer.from(config.users[0].user['client-certificate-data'], 'base64'),
    key: Buffer.from(config.users[0].user['client-key-data'], 'base64'),
  });
  const received = new Array<string>(30).fill('');
  const errors: string[] = [];
  const streams: ClientHttp2Stream[] = received.map((_, i) => {
    const s = session.request({
      ':path': `${server.pathname}/api/v1/namespaces/team-b/configmaps?watch=1&allowWatchBookmarks=false&fieldSelector=metadata.name%3Dlate-${i}`,
    });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (received[i] += d));
    s.on('error', (e) => errors.push(e.message));
    s.on('close', () => errors.push(`watch ${i} closed`));
    return s;
  });
  return { proxy, path, openedAt: Date.now(), received, errors, streams, session };
}

describe('kube login proxy against kube-apiserver', { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let home: string;
  let env: Record<string, string>;
  const kport = (args: string[]) => execa(process.execPath, [KPORT_BIN, ...args], { cwd: home, env, extendEnv: false, reject: false });
  const kubectlPath = BINARIES.kubectl();
  let held: Awaited<ReturnType<typeof holdWatches>> | undefined;

  before(async (t) => {
    if (!havePeer(t as never, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()])) return;
    api = await startKubeApiserver();
    home = tempDir('kube');
    env = await kubeHome(api, home, {
      roles: [
        { name: 'dev', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['developers'] },
        { name: 'ops', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['ops'] },
        { name: 'ops-admin', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['ops'], kubernetes_users: ['dave', 'dave-admin'] },
        { name: 'elsewhere', kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] },
      ],
      users: [
        { name: 'alice', roles: ['dev'] },
        { name: 'bob', roles: ['ops'] },
        { name: 'carol', roles: ['elsewhere'] },
        { name: 'dave', roles: ['ops-admin'] },
        { name: 'erin', roles: ['dev', 'ops'] },
      ],
    });
    const adminKubeconfig = api.kubeconfig(api.admin);
    const k = (...args: string[]) => run(kubectlPath, ['--kubeconfig', adminKubeconfig, ...args]);
    await k('create', 'namespace', 'team-a');
    await k('create', 'namespace', 'team-b');
    // view/edit/admin are aggregated by kube-controller-manager, which this apiserver runs without: a reader role of our own.
    await k('create', 'clusterrole', 'reader', '--verb=get,list,watch', '--resource=pods,configmaps,namespaces');
    await k('create', 'rolebinding', 'developers-read', '--clusterrole=reader', '--group=developers', '-n', 'team-a');
    await k('create', 'clusterrolebinding', 'ops-read', '--clusterrole=reader', '--group=ops');
    const cluster = {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'local-test', labels: { env: 'test' } },
      spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
    };
    const prod = {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'prod-only', labels: { env: 'prod' } },
      spec: { kubeconfig: cluster.spec.kubeconfig },
    };
    writeFileSync(join(home, 'clusters.yaml'), `${stringify(cluster)}---\n${stringify(prod)}`);
    assert.equal((await kport(['create', '-f', join(home, 'clusters.yaml')])).exitCode, 0);
    // The watches that must be held past a minute open now, so that minute overlaps the tests before theirs.
    held = await holdWatches(kport(['kube', 'login', 'local-test', '--user', 'bob']));
  });
  after(async () => {
    if (held) {
      for (const s of held.streams) s.close();
      held.session.close();
      held.proxy.kill('SIGINT');
      await held.proxy;
    }
    await api?.stop();
  });

  const login = (user: string, ...command: string[]) => kport(['kube', 'login', 'local-test', '--user', user, '--', ...command]);

  test('kport kube login CLUSTER -- kubectl get ns works end to end', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const r = await login('bob', kubectlPath, 'get', 'ns', '-o', 'name');
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.match(String(r.stdout), /namespace\/kube-system/);
    assert.match(String(r.stdout), /namespace\/team-a/);
  });

  test("the roles' group reaches team-a and gets the apiserver's Forbidden in team-b", async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const allowed = await login('alice', kubectlPath, 'get', 'pods', '-n', 'team-a');
    assert.equal(allowed.exitCode, 0, String(allowed.stderr));
    assert.match(String(allowed.stderr), /No resources found in team-a namespace/);
    const denied = await login('alice', kubectlPath, 'get', 'pods', '-n', 'team-b');
    assert.equal(denied.exitCode, 1);
    assert.match(String(denied.stderr), /pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team-b"/);
  });

  test('kubectl --as someone else is refused by the proxy with 403; an allowed narrowing passes', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const other = await login('alice', kubectlPath, 'get', 'pods', '-n', 'team-a', '--as=someone-else');
    assert.equal(other.exitCode, 1);
    assert.match(String(other.stderr), /Error from server \(Forbidden\)/);
    // kubectl prints discovery failures as "unknown"; a raw request shows the proxy's own Status message.
    const raw = await login('alice', kubectlPath, 'get', '--raw', '/api/v1/namespaces/team-a/pods', '--as=someone-else');
    assert.equal(raw.exitCode, 1);
    assert.match(String(raw.stderr), /Error from server \(Forbidden\): impersonating user "someone-else" is not allowed by your kport roles/);
    const group = await login('alice', kubectlPath, 'get', '--raw', '/api/v1/namespaces/team-a/pods', '--as=alice', '--as-group=system:masters');
    assert.match(String(group.stderr), /impersonating group "system:masters" is not allowed/);
    // dave may be dave or dave-admin: with two users, kubectl must pick; dave-admin with group ops is allowed.
    const ambiguous = await login('dave', kubectlPath, 'get', '--raw', '/api/v1/namespaces');
    assert.match(String(ambiguous.stderr), /several Kubernetes users are allowed \(dave, dave-admin\): pick one with kubectl --as/);
    const narrowed = await login('dave', kubectlPath, 'auth', 'whoami', '-o', 'json', '--as=dave-admin', '--as-group=ops');
    assert.equal(narrowed.exitCode, 0, String(narrowed.stderr));
    const who = JSON.parse(String(narrowed.stdout)).status.userInfo;
    assert.equal(who.username, 'dave-admin');
    assert.deepEqual(who.groups, ['ops', 'system:authenticated']);
    // With no groups asked for, all the roles allow: the API server's own view of the identity.
    const plain = await login('alice', kubectlPath, 'auth', 'whoami', '-o', 'json');
    assert.equal(plain.exitCode, 0, String(plain.stderr));
    assert.deepEqual(JSON.parse(String(plain.stdout)).status.userInfo.groups, ['developers', 'system:authenticated']);
  });

  test('a cluster the roles do not allow is not listed or served; in local mode (where the person can read it anyway) login says why', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const hidden = await kport(['kube', 'login', 'prod-only', '--user', 'alice', '--', 'true']);
    const missing = await kport(['kube', 'login', 'no-such-cluster', '--user', 'alice', '--', 'true']);
    assert.equal(hidden.exitCode, 1);
    assert.match(String(hidden.stderr), /kube_cluster "prod-only" exists but your roles \(dev\) do not allow it/);
    assert.match(String(missing.stderr), /kube_cluster "no-such-cluster" not found/);
    const ls = JSON.parse(String((await kport(['kube', 'ls', '--user', 'alice', '--format', 'json'])).stdout));
    assert.deepEqual(ls, [{ kube_cluster_name: 'local-test', labels: { env: 'test' }, selected: false }]);
  });

  test('kubectl 1.28, 1.32 and 1.34 work through kube login, get --raw included (the cluster rides the TLS server name), and so does kubectl proxy on top', async (t) => {
    if (!havePeer(t, 'kube-apiserver and older kubectl', [BINARIES.kubeApiserver(), ...OLD_KUBECTL_VERSIONS.map((v) => BINARIES.oldKubectl(v))])) return;
    const proxy = kport(['kube', 'login', 'local-test', '--user', 'bob']);
    let out = '';
    proxy.stdout!.on('data', (c: Buffer) => (out += c));
    try {
      const kubeconfig = await waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]);
      for (const [version, binary] of [...OLD_KUBECTL_VERSIONS.map((v) => [v, BINARIES.oldKubectl(v)] as const), ['v1.34.4', kubectlPath] as const]) {
        const kubectl = (...args: string[]) => run(binary, ['--kubeconfig', kubeconfig, ...args]);
        const raw = JSON.parse((await kubectl('get', '--raw', '/version')).stdout);
        assert.match(raw.platform, /^linux\//, `${version}: get --raw /version reaches the API server`);
        assert.match((await kubectl('get', 'ns', '-o', 'name')).stdout, /namespace\/team-a/, `${version}: get ns`);
        assert.match((await kubectl('auth', 'can-i', 'list', 'pods', '-n', 'team-b')).stdout, /^yes$/m, `${version}: as bob's group ops`);
      }
      // kubectl proxy drops the server URL's path unless --append-server-path: the server name carries the cluster.
      const chained = execa(kubectlPath, ['--kubeconfig', kubeconfig, 'proxy', '--port=0'], { reject: false });
      let served = '';
      chained.stdout!.on('data', (c: Buffer) => (served += c));
      try {
        const address = await waitFor('kubectl proxy', async () => served.match(/Starting to serve on (\S+)/)?.[1]);
        const res = await fetch(`http://${address}/api/v1/namespaces/team-a`);
        assert.equal(res.status, 200);
        assert.equal(((await res.json()) as { metadata: { name: string } }).metadata.name, 'team-a');
      } finally {
        chained.kill('SIGTERM');
        await chained;
      }
    } finally {
      proxy.kill('SIGINT');
      await proxy;
    }
  });

  test('foreground login: kubeconfig 0600, watch sees a later event, mTLS required, Ctrl-C removes the kubeconfig, every request audited', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const proxy = kport(['kube', 'login', 'local-test', '--user', 'alice']);
    let out = '';
    proxy.stdout!.on('data', (c: Buffer) => (out += c));
    const kubeconfig = await waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]);
    try {
      assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
      const config = parse(readFileSync(kubeconfig, 'utf8'));
      assert.equal(config['current-context'], 'kport-local-test');
      const server = new URL(config.clusters[0].cluster.server);
      assert.equal(server.hostname, '127.0.0.1');

      // kube ls marks the cluster selected through this kubeconfig.
      const ls = await execa(process.execPath, [KPORT_BIN, 'kube', 'ls', '--user', 'alice', '--format', 'json'], {
        env: { ...env, KUBECONFIG: kubeconfig },
        extendEnv: false,
      });
      assert.deepEqual(JSON.parse(String(ls.stdout))[0].selected, true);

      const watch = execa(kubectlPath, ['get', 'configmaps', '-n', 'team-a', '-w', '--output-watch-events', '-o', 'name'], {
        env: { KUBECONFIG: kubeconfig },
        reject: false,
      });
      let watched = '';
      watch.stdout!.on('data', (c: Buffer) => (watched += c));
      // team-a starts empty (no controller-manager publishes kube-root-ca.crt), so the watch prints
      // nothing until the event: give kubectl time to open it first.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(watched, '', 'nothing exists before the event');
      const created = await api.request(api.admin, '/api/v1/namespaces/team-a/configmaps', {
        method: 'POST',
        body: { metadata: { name: 'after-watch-began' }, data: { a: 'b' } },
      });
      assert.equal(created.status, 201);
      await waitFor('the watch event', async () => watched.includes('configmap/after-watch-began'), { timeoutMs: 20_000 });
      watch.kill('SIGTERM');
      await watch;

      // Without the client certificate the TLS handshake fails.
      const ca = Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64');
      const refused = await new Promise<string>((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: Number(server.port), ca, servername: 'localhost' }, () =>
          socket.write('GET /k/local-test/api HTTP/1.1\r\nhost: x\r\n\r\n'),
        );
        socket.on('data', () => resolve('answered'));
        socket.on('error', (err) => resolve(err.message));
        socket.on('close', () => resolve('closed'));
      });
      assert.match(refused, /certificate required|alert|closed|ECONNRESET/i);
    } finally {
      proxy.kill('SIGINT');
    }
    const done = await proxy;
    assert.equal(done.exitCode, 130, String(done.stderr)); // Ctrl-C is 130, as shells report it (README Exit codes)
    assert.equal(existsSync(kubeconfig), false, 'the kubeconfig is removed on Ctrl-C');

    const audit = readFileSync(join(home, 'data', 'audit', 'kube.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const watchEvent = audit.find((e) => e.verb === 'watch' && e.resource === 'configmaps' && e.namespace === 'team-a');
    assert.ok(watchEvent, 'the watch is audited');
    assert.equal(watchEvent.user, 'alice');
    assert.equal(watchEvent.impersonated_user, 'alice');
    assert.deepEqual(watchEvent.impersonated_groups, ['developers', 'system:authenticated']);
    assert.ok(
      audit.some((e) => e.status === 403 && /someone-else/.test(e.error ?? '')),
      'refusals are audited',
    );
    assert.ok(
      audit.some((e) => e.verb === 'list' && e.namespace === 'team-b' && e.status === 403),
      "the apiserver's Forbidden is audited",
    );
    for (const e of audit)
      for (const key of ['time', 'user', 'cluster', 'method', 'path', 'verb', 'status', 'duration_ms']) assert.ok(key in e, `${key} in ${JSON.stringify(e)}`);
  });

  test('40 kubectl processes at once, and 30 watches on one HTTP/2 connection held past a minute, see no error and no stall', {
    timeout: 180_000,
  }, async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const { path, openedAt, received, errors } = held!;
    const runs = await Promise.all(
      Array.from({ length: 40 }, () => execa(kubectlPath, ['get', 'ns', '-o', 'name'], { env: { KUBECONFIG: path }, reject: false })),
    );
    for (const r of runs) {
      assert.equal(r.exitCode, 0, String(r.stderr));
      assert.match(String(r.stdout), /namespace\/team-a/);
    }
    // Quiet watches, opened before the tests above ran: the rest of their minute, then one event each.
    await sleep(Math.max(0, openedAt + HOLD_MS - Date.now()));
    assert.deepEqual(errors, [], 'no watch ended or failed while quiet');
    for (let i = 0; i < 30; i++) {
      const res = await api.request(api.admin, '/api/v1/namespaces/team-b/configmaps', { method: 'POST', body: { metadata: { name: `late-${i}` } } });
      assert.equal(res.status, 201);
    }
    await waitFor('every watch to see its late event', async () => received.every((r, i) => r.includes(`"name":"late-${i}"`)), { timeoutMs: 20_000 });
    assert.deepEqual(errors, []);
  });

  test('upgrades: refused by the apiserver (exec without a node) relayed as is; WebSocket and SPDY tunnelled byte for byte', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    // A pod that no kubelet runs: the apiserver answers the exec upgrade itself, with an error.
    await api.request(api.admin, '/api/v1/namespaces/team-a/pods', {
      method: 'POST',
      body: { metadata: { name: 'p' }, spec: { nodeName: 'ghost', containers: [{ name: 'c', image: 'busybox' }] } },
    });
    const exec = await login('bob', kubectlPath, 'exec', '-n', 'team-a', 'p', '--', 'true');
    assert.notEqual(exec.exitCode, 0);
    assert.match(String(exec.stderr), /forbidden|ghost|no such host|error dialing|not found/i);

    // A WebSocket server speaking the channel protocol, and a raw SPDY/3.1 upgrade, as upstreams.
    const ca = await createCA('ws-upstream');
    const serving = await ca.issue({ commonName: 'ws', ips: ['127.0.0.1'], usage: 'server' });
    const seen: Array<{ user: string | undefined; groups: string | string[] | undefined; auth: string | undefined }> = [];
    // An HTTP/1.1-only server: ordinary requests fall back from HTTP/2 and still carry each group.
    const https = createHttpsServer({ cert: serving.cert, key: serving.key }, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ user: req.headers['impersonate-user'], rawHeaders: req.rawHeaders }));
    });
    const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('v5.channel.k8s.io') ? 'v5.channel.k8s.io' : false) });
    https.on('upgrade', (req, socket, head) => {
      seen.push({ user: req.headers['impersonate-user'] as string, groups: req.headers['impersonate-group'], auth: req.headers.authorization });
      if (req.headers.upgrade?.toLowerCase() === 'websocket')
        return wss.handleUpgrade(req, socket, head, (ws) =>
          ws.on('message', (data, binary) => ws.send(Buffer.concat([Buffer.from('echo:'), data as Buffer]), { binary })),
        );
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(Buffer.from([...d].reverse())));
    });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const port = (https.address() as { port: number }).port;
    const upstream = {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'ws-upstream', labels: { env: 'test' } },
      spec: { kubeconfig: kubeconfigYaml(`https://127.0.0.1:${port}`, ca.cert, { user: 'proxy', token: 'upstream-token', groups: [] }) },
    };
    writeFileSync(join(home, 'ws.yaml'), stringify(upstream));
    assert.equal((await kport(['create', '-f', join(home, 'ws.yaml')])).exitCode, 0);

    const proxy: ResultPromise = kport(['kube', 'login', 'ws-upstream', '--user', 'erin']);
    let out = '';
    proxy.stdout!.on('data', (c: Buffer) => (out += c));
    try {
      const kubeconfig = parse(readFileSync(await waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]), 'utf8'));
      const clientOpts = {
        ca: Buffer.from(kubeconfig.clusters[0].cluster['certificate-authority-data'], 'base64'),
        cert: Buffer.from(kubeconfig.users[0].user['client-certificate-data'], 'base64'),
        key: Buffer.from(kubeconfig.users[0].user['client-key-data'], 'base64'),
      };
      const { Agent, request } = await import('undici');
      for (let i = 0; i < 2; i++) {
        const plain = await request(`${kubeconfig.clusters[0].cluster.server}/api/v1/namespaces`, { dispatcher: new Agent({ connect: clientOpts }) });
        assert.equal(plain.statusCode, 200);
        const echoed = (await plain.body.json()) as { user: string; rawHeaders: string[] };
        assert.equal(echoed.user, 'erin');
        const groups = echoed.rawHeaders.filter((_, j) => j % 2 === 1 && echoed.rawHeaders[j - 1]!.toLowerCase() === 'impersonate-group');
        // system:authenticated is left to the API server, which adds it to every named user.
        assert.deepEqual(groups, ['developers', 'ops']);
      }
      const base = kubeconfig.clusters[0].cluster.server.replace('https:', 'wss:');
      const ws = new WebSocket(`${base}/api/v1/namespaces/team-a/pods/p/exec?command=sh&stdin=true`, ['v5.channel.k8s.io'], {
        ...clientOpts,
        headers: { authorization: 'Bearer client-secret' },
      });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      assert.equal(ws.protocol, 'v5.channel.k8s.io');
      const payload = Buffer.from([0, 0xff, 0x00, 0x10, ...Buffer.from('hello')]);
      const reply = await new Promise<Buffer>((resolve) => {
        ws.once('message', (d) => resolve(d as Buffer));
        ws.send(payload, { binary: true });
      });
      assert.deepEqual(reply, Buffer.concat([Buffer.from('echo:'), payload]));
      ws.close();

      const spdy = await new Promise<Buffer>((resolve, reject) => {
        const url = new URL(kubeconfig.clusters[0].cluster.server);
        const socket = tlsConnect({ host: '127.0.0.1', port: Number(url.port), ...clientOpts, servername: 'localhost', ALPNProtocols: ['http/1.1'] }, () => {
          socket.write(
            `POST ${url.pathname}/api/v1/namespaces/team-a/pods/p/portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
          );
        });
        let buf = Buffer.alloc(0);
        socket.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          const end = buf.indexOf('\r\n\r\n');
          if (end >= 0 && !socket.writableEnded && buf.subarray(0, 12).toString() === 'HTTP/1.1 101') {
            const rest = buf.subarray(end + 4);
            if (rest.length === 0 && !(socket as unknown as { sent?: boolean }).sent) {
              (socket as unknown as { sent?: boolean }).sent = true;
              socket.write(Buffer.from([1, 2, 3, 250]));
            } else if (rest.length >= 4) {
              resolve(rest);
              socket.destroy();
            }
          }
        });
        socket.on('error', reject);
      });
      assert.deepEqual([...spdy], [250, 3, 2, 1]);
      assert.equal(seen.length, 2);
      for (const s of seen) {
        assert.equal(s.user, 'erin');
        assert.equal(s.auth, 'Bearer upstream-token', "the client's own Authorization is never forwarded");
      }
    } finally {
      proxy.kill('SIGINT');
      await proxy;
      https.close();
    }
  });
});
