// A person's kubectl through the server to a cluster only the server can reach (issue 21, docs/architecture.md
// §9.1): `kport server start` with kubernetes_service serves a static kube_cluster (created with
// `kport create -f`, its kubeconfig only in the server's store) through its in-process Kubernetes
// service on a loopback tunnel. Both of a person's paths run end to end with real processes: the
// kubeconfig `kport kube config` writes (exec plugin) and `kport kube login -- kubectl`; the real
// kube-apiserver's own audit log names the person.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { kubeHome } from '../helpers/kube-home.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

describe('kubectl through the server to a static cluster its in-process Kubernetes service serves', { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let server: TestServer;
  let alice: Person;
  let bob: Person;
  const kubectl = BINARIES.kubectl();
  /** kubectl as a person runs it: their HOME (the profile the exec plugin reads), their kubeconfig. */
  const k = (who: Person, ...args: string[]) =>
    execa(kubectl, args, {
      env: { HOME: who.home, PATH: process.env.PATH ?? '', KUBECONFIG: join(who.home, '.kube', 'config') },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
    });

  before(async (t) => {
    if (!havePeer(t as never, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()])) return;
    api = await startKubeApiserver({ auditLog: true });
    await kubeHome(api, tempDir('server-kube-rbac'), { roles: [], users: [] });
    const admin = (...args: string[]) => execa(kubectl, ['--kubeconfig', api.kubeconfig(api.admin), ...args]);
    await admin('create', 'namespace', 'team-a');
    await admin('create', 'clusterrole', 'dev', '--verb=get,list,watch,create,update,patch,delete', '--resource=namespaces,configmaps');
    await admin('create', 'clusterrolebinding', 'developers-dev', '--clusterrole=dev', '--group=developers');

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
          kind: 'role',
          version: 'v7',
          metadata: { name: 'prod-access' },
          spec: { allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } },
        }),
        stringify({
          kind: 'kube_cluster',
          version: 'v3',
          metadata: { name: 'dev-static', labels: { env: 'dev' } },
          spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
        }),
      ].join('---\n'),
    );
    const created = await server.kport(['create', '-f', setup]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    alice = await invitedPerson(server, 'alice', ['dev-access']);
    bob = await invitedPerson(server, 'bob', ['prod-access']);
    // The server's own heartbeat names the cluster once its service has looked at the store.
    await waitFor(
      'the server to serve dev-static',
      async () => {
        const res = await server.kport(['get', 'kube_server', '-o', 'json']);
        return (
          res.exitCode === 0 && (JSON.parse(String(res.stdout)) as Array<{ spec: { clusters: string[] } }>).some((s) => s.spec.clusters.includes('dev-static'))
        );
      },
      { timeoutMs: 60_000 },
    );
  });
  after(async () => {
    await server?.stop();
    await api?.stop();
  });

  test("kube config, then kubectl get, apply and delete with the written kubeconfig: alice acts as herself, and the cluster's audit log names her", async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const config = await alice.kport(['kube', 'config', 'dev-static']);
    assert.equal(config.exitCode, 0, String(config.stderr));
    const who = await k(alice, 'auth', 'whoami', '-o', 'json');
    assert.equal(who.exitCode, 0, who.stderr);
    const user = JSON.parse(who.stdout).status.userInfo;
    assert.equal(user.username, 'alice');
    assert.deepEqual(user.groups, ['developers', 'system:authenticated']);
    const ns = await k(alice, 'get', 'ns', '-o', 'name');
    assert.equal(ns.exitCode, 0, ns.stderr);
    assert.match(ns.stdout, /^namespace\/team-a$/m);
    const manifest = join(alice.home, 'cm.yaml');
    writeFileSync(
      manifest,
      stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-alice', namespace: 'team-a' }, data: { said: 'hello through the server' } }),
    );
    const applied = await k(alice, 'apply', '-f', manifest);
    assert.equal(applied.exitCode, 0, applied.stderr);
    assert.match(applied.stdout, /configmap\/from-alice created/);
    const read = await execa(kubectl, [
      '--kubeconfig',
      api.kubeconfig(api.admin),
      'get',
      'configmap',
      'from-alice',
      '-n',
      'team-a',
      '-o',
      'jsonpath={.data.said}',
    ]);
    assert.equal(read.stdout, 'hello through the server');
    const deleted = await k(alice, 'delete', '-f', manifest);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    const gone = await execa(kubectl, ['--kubeconfig', api.kubeconfig(api.admin), 'get', 'configmap', 'from-alice', '-n', 'team-a'], { reject: false });
    assert.match(gone.stderr, /NotFound/);
    // The cluster saw kport's proxy identity impersonating alice, with the person and session in the user's extra.
    const create = await waitFor(
      "the create in the API server's audit log",
      async () =>
        api
          .auditEvents()
          .find(
            (e) =>
              e.verb === 'create' &&
              e.requestURI.startsWith('/api/v1/namespaces/team-a/configmaps') &&
              e.impersonatedUser?.username === 'alice' &&
              e.stage === 'ResponseComplete',
          ),
      { timeoutMs: 30_000 },
    );
    assert.equal(create.user.username, 'kport-proxy');
    assert.equal(create.impersonatedUser?.username, 'alice');
    assert.deepEqual(create.impersonatedUser?.extra?.['kport.dev/original-user'], ['alice']);
    assert.match(create.impersonatedUser?.extra?.['kport.dev/session-id']?.[0] ?? '', /\S/);
  });

  test("kube login CLUSTER -- kubectl get ns: the foreground proxy forwards to the server with alice's certificate", async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const res = await alice.kport(['kube', 'login', 'dev-static', '--', kubectl, 'get', 'ns', '-o', 'name']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(String(res.stdout), /^namespace\/team-a$/m);
    const who = await alice.kport(['kube', 'login', 'dev-static', '--', kubectl, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    assert.equal(who.exitCode, 0, String(who.stderr));
    assert.equal(String(who.stdout).trim(), 'alice');
  });

  test('bob, whose roles do not allow dev-static, is told it does not exist on both paths, and nothing reaches the cluster as him', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const config = await bob.kport(['kube', 'config', 'dev-static']);
    assert.equal(config.exitCode, 1, String(config.stderr));
    assert.match(String(config.stderr), /kube_cluster "dev-static" not found/);
    const login = await bob.kport(['kube', 'login', 'dev-static', '--', kubectl, 'get', 'ns']);
    assert.notEqual(login.exitCode, 0);
    assert.match(String(login.stderr), /kube_cluster "dev-static" not found/);
    assert.equal(api.auditEvents().filter((e) => e.impersonatedUser?.username === 'bob').length, 0);
  });

  test("a kubeconfig naming the server's own files is refused through the server, and one stored before that is never read: the person gets one sentence and the server stays up", async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const secret = join(server.dir, 'server-secret.txt');
    writeFileSync(secret, 'SERVER-SIDE-SECRET\n', { mode: 0o600 });
    const editor = await invitedPerson(server, 'ed', ['editor']);
    const filed = (name: string) =>
      stringify({
        kind: 'kube_cluster',
        version: 'v3',
        metadata: { name, labels: { env: 'dev' } },
        spec: {
          kubeconfig: stringify({
            apiVersion: 'v1',
            kind: 'Config',
            clusters: [{ name: 'c', cluster: { server: api.server } }],
            users: [{ name: 'u', user: { 'client-certificate': secret, 'client-key': '/etc/passwd', 'token-file': secret } }],
            contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
            'current-context': 'x',
          }),
        },
      });
    const file = join(editor.home, 'filed.yaml');
    writeFileSync(file, filed('filed'));
    const created = await editor.kport(['create', '-f', file]);
    assert.notEqual(created.exitCode, 0);
    assert.match(String(created.stderr), /names a file \(user\.client-certificate, user\.client-key, user\.token-file\)/);
    assert.match(String(created.stderr), /kubectl config view --raw --flatten --minify/);
    assert.equal((await server.kport(['get', 'kube_cluster/filed'])).exitCode, 1, 'nothing was stored');

    // One stored before kport refused them (planted in the server's store by hand): served, never read.
    const { SqliteBackend } = await import('../../src/backend/sqlite.ts');
    const store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
    await store.put('/resources/kube_cluster/planted', JSON.stringify(parse(filed('planted'))));
    await store.close();
    await waitFor(
      'the server to serve planted',
      async () => {
        const res = await server.kport(['get', 'kube_server', '-o', 'json']);
        return (
          res.exitCode === 0 && (JSON.parse(String(res.stdout)) as Array<{ spec: { clusters: string[] } }>).some((s) => s.spec.clusters.includes('planted'))
        );
      },
      { timeoutMs: 60_000 },
    );
    for (let i = 0; i < 2; i++) {
      const res = await alice.kport(['kube', 'login', 'planted', '--', kubectl, 'get', '--raw', '/api']);
      assert.notEqual(res.exitCode, 0);
      assert.match(String(res.stderr), /names a file/);
      assert.doesNotMatch(String(res.stderr), /SERVER-SIDE-SECRET|root:x/);
    }
    assert.equal(server.proc?.exitCode ?? null, null, `the server is still running:\n${server.log.slice(-2000)}`);
    assert.equal(
      api.auditEvents().filter((e) => e.requestURI === '/api' && e.user.username !== 'kport-proxy' && e.user.username !== 'admin').length,
      0,
      'nothing reached the cluster with the planted credentials',
    );
    const still = await alice.kport(['kube', 'login', 'dev-static', '--', kubectl, 'get', 'ns', '-o', 'name']);
    assert.equal(still.exitCode, 0, String(still.stderr));
  });

  test('SIGTERM: a watch open through the in-process service runs to its end during the grace, and the server exits 0 after it', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    // A watch the cluster ends by itself after 4 s: in flight when the signal comes.
    const watch = k(alice, 'get', '--raw', '/api/v1/namespaces?watch=1&timeoutSeconds=4');
    let endedAt = 0;
    void watch.then(() => (endedAt = Date.now()));
    await waitFor(
      'the watch to be open',
      async () => api.auditEvents().some((e) => e.requestURI.includes('watch=1') && e.impersonatedUser?.username === 'alice'),
      {
        timeoutMs: 30_000,
      },
    );
    const proc = server.proc!;
    let exitedAt = 0;
    void proc.then(() => (exitedAt = Date.now()));
    // The signal alone (execa's kill() would follow it with SIGKILL after 5 s).
    process.kill(proc.pid!, 'SIGTERM');
    const done = await watch;
    assert.equal(done.exitCode, 0, String(done.stderr));
    assert.match(String(done.stdout), /"type":"ADDED"/);
    assert.equal((await proc).exitCode, 0, server.log.slice(-2000));
    assert.ok(exitedAt >= endedAt, 'the server exited after the watch ended');
  });
});
