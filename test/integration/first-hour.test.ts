// A new user must never be left guessing (issue 13): empty results explained, causes shown, the
// small things a person notices in the first hour. Real kport processes; clusters are real
// servers (or real absences: a refused port, a name that does not resolve, an untrusted cert).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { Agent, request } from 'undici';
import { createCA } from '../../src/kube/pki.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { kubeconfigYaml } from '../peers/kube.ts';
import { freePort, tempDir, waitFor } from '../peers/process.ts';

describe('the first hour', { concurrency: false, timeout: 300_000 }, () => {
  let home: string;
  let env: Record<string, string>;
  let untrusted: Http2SecureServer;
  const config = (extra: Record<string, unknown>) =>
    writeFileSync(env.KPORT_CONFIG!, stringify({ version: 'v3', teleport: { data_dir: join(home, 'data') }, ...extra }));
  const kport = (args: string[], extra: Record<string, string> = {}) =>
    execa(process.execPath, [KPORT_BIN, ...args], { cwd: home, env: { ...env, ...extra }, extendEnv: false, reject: false });

  before(async () => {
    home = tempDir('first-hour');
    env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(home, 'kport.yaml'), KUBECONFIG: join(home, 'none') };
    // A server whose certificate the cluster's kubeconfig does not trust.
    const other = await createCA('someone else');
    const cert = await other.issue({ commonName: 'untrusted server', ips: ['127.0.0.1'], usage: 'server' });
    untrusted = createSecureServer({ cert: cert.cert, key: cert.key, allowHTTP1: true }, (_req, res) => res.end('{}'));
    await new Promise<void>((r) => untrusted.listen(0, '127.0.0.1', r));
    const ours = await createCA('cluster CA');
    const kc = (server: string) => kubeconfigYaml(server, ours.cert, { user: 'proxy', token: 't', groups: [] });
    const clusters = [
      ['refused', 'prod', kc('https://127.0.0.1:1')],
      ['nodns', 'prod', kc('https://kport-test-cluster.invalid:6443')],
      ['untrusted', 'prod', kc(`https://127.0.0.1:${(untrusted.address() as { port: number }).port}`)],
      ['staging', 'staging', kc('https://127.0.0.1:1')],
    ].map(([name, envLabel, kubeconfig]) =>
      stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env: envLabel } }, spec: { kubeconfig } }),
    );
    config({});
    writeFileSync(join(home, 'clusters.yaml'), clusters.join('---\n'));
    const created = await kport(['create', '-f', join(home, 'clusters.yaml')]);
    assert.equal(created.exitCode, 0, String(created.stderr));
  });
  after(() => untrusted?.close());

  test('kube ls says why it is empty; kube login says a cluster exists but is not allowed (local mode)', async () => {
    // The guide's config: no roles, no users.
    config({});
    const none = await kport(['kube', 'ls', '--user', 'root']);
    assert.equal(none.exitCode, 0);
    assert.match(
      String(none.stderr),
      /4 kube_clusters exist, but your kport user "root" is not defined: add it under users: in .*kport\.yaml with its roles \(see README#kubernetes-access\), or pass --user\./,
    );
    config({ users: [{ name: 'root', roles: [] }] });
    assert.match(String((await kport(['kube', 'ls', '--user', 'root'])).stderr), /your kport user "root" has no roles: add some under users:/);
    config({ roles: [{ name: 'dev', kubernetes_labels: { env: 'dev' } }], users: [{ name: 'root', roles: ['dev', 'ghost'] }] });
    const disallowed = await kport(['kube', 'ls', '--user', 'root', '--format', 'json']);
    assert.equal(String(disallowed.stdout), '[]');
    // With --format json, stderr is JSON lines too.
    const note = JSON.parse(String(disallowed.stderr));
    assert.equal(note.level, 'info');
    assert.match(
      note.message,
      /4 kube_clusters exist, none allowed by your roles dev \("ghost" is not defined under roles:\): their kubernetes_labels match none of them/,
    );
    const login = await kport(['kube', 'login', 'staging', '--user', 'root', '--', 'true']);
    assert.equal(login.exitCode, 1);
    assert.match(
      String(login.stderr),
      /kube_cluster "staging" exists but your roles \(dev\) do not allow it: add a role whose kubernetes_labels match its labels/,
    );
    const missing = await kport(['kube', 'login', 'nosuch', '--user', 'root', '--', 'true']);
    assert.match(String(missing.stderr), /kube_cluster "nosuch" not found/);

    config({ roles: [{ name: 'dev', kubernetes_labels: { env: 'prod' } }], users: [{ name: 'root', roles: ['dev'] }] });
    const filtered = await kport(['kube', 'ls', '--user', 'root', 'team=x']);
    assert.match(String(filtered.stderr), /None of the 3 clusters you can reach match team=x\./);

    // get role / get user show the config's own, marked.
    const roles = await kport(['get', 'role']);
    assert.match(String(roles.stdout), /dev \(config file\)/);
    const users = JSON.parse(String((await kport(['get', 'user', '--format', 'json'])).stdout));
    assert.deepEqual(
      users.map((u: { metadata: { name: string; labels: Record<string, string> } }) => [u.metadata.name, u.metadata.labels['kport.dev/origin']]),
      [['root', 'config-file']],
    );
  });

  test('an unreachable cluster shows the cause to kubectl: refused, DNS, TLS verification', async () => {
    config({ roles: [{ name: 'dev', kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] }], users: [{ name: 'alice', roles: ['dev'] }] });
    const proxy = kport(['kube', 'login', 'refused', 'nodns', 'untrusted', '--user', 'alice']);
    let out = '';
    proxy.stdout!.on('data', (c: Buffer) => (out += c));
    try {
      const kc = parse(readFileSync(await waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]), 'utf8'));
      const tls = {
        ca: Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64'),
        cert: Buffer.from(kc.users[0].user['client-certificate-data'], 'base64'),
        key: Buffer.from(kc.users[0].user['client-key-data'], 'base64'),
      };
      const agent = new Agent({ connect: tls });
      const cases: Array<[string, RegExp]> = [
        ['refused', /kport could not reach refused at 127\.0\.0\.1:1: connection refused \(ECONNREFUSED 127\.0\.0\.1:1\)/],
        [
          'nodns',
          /kport could not reach nodns at kport-test-cluster\.invalid:6443: DNS (name not found \(ENOTFOUND|lookup failed for now \(EAI_AGAIN) kport-test-cluster\.invalid\)/,
        ],
        ['untrusted', /kport could not reach untrusted at 127\.0\.0\.1:\d+: TLS verification failed \(/],
      ];
      for (const [name, message] of cases) {
        const server = kc.clusters.find((c: { name: string }) => c.name === `kport-${name}`).cluster.server;
        const res = await request(`${server}/api/v1/namespaces`, { dispatcher: agent });
        // Plain text, so every client-go path (discovery included) prints it (src/kube/status.ts).
        const body = await res.body.text();
        assert.equal(res.statusCode, 502);
        assert.match(String(res.headers['content-type']), /^text\/plain/);
        assert.match(body, message, name);
      }
    } finally {
      proxy.kill('SIGINT');
      await proxy;
    }
  });

  test('rbac bootstrap against an unreachable cluster names the host and the cause', async () => {
    const kubeconfig = join(home, 'unreachable.kubeconfig');
    // A port nothing listens on (not 1: fetch refuses "bad ports" before it tries).
    const closed = await freePort();
    writeFileSync(kubeconfig, kubeconfigYaml(`https://127.0.0.1:${closed}`, (await createCA('x')).cert, { user: 'admin', token: 't', groups: [] }));
    const r = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/kport-proxy'], { KUBECONFIG: kubeconfig });
    assert.equal(r.exitCode, 1);
    assert.match(String(r.stderr), new RegExp(`Cannot reach the cluster to .*: connection refused \\(ECONNREFUSED 127\\.0\\.0\\.1:${closed}\\)\\.`));
    assert.doesNotMatch(String(r.stderr), /fetch failed/);
  });

  test('an AWS endpoint answering garbage is named as such', async () => {
    const garbage: Server = createHttpServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end('<html>upstream exploded</html>');
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    try {
      config({
        discovery_service: { enabled: 'yes', discovery_group: 'g', aws: [{ types: ['eks'], regions: ['us-east-1'] }] },
        teleport: { data_dir: join(home, 'data-aws') },
      });
      const token = String((await kport(['tokens', 'add', '--type=discovery', '--format=text'])).stdout).trim();
      const run = await kport(['discover', 'run', '--once', '--token', token], {
        AWS_ENDPOINT_URL: `http://127.0.0.1:${(garbage.address() as { port: number }).port}`,
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'x',
        AWS_REGION: 'us-east-1',
      });
      assert.equal(run.exitCode, 1, String(run.stderr));
      assert.match(
        String(run.stderr),
        new RegExp(`AWS answered HTTP 500 \\(not an AWS error document\\) from http://127\\.0\\.0\\.1:${(garbage.address() as { port: number }).port}/`),
      );
      assert.doesNotMatch(String(run.stderr), /hidden field|Unknown$/m);
    } finally {
      garbage.close();
    }
  });

  test('small things: --port 0, a missing command exits 127, a too-open data dir, ambiguous users said at login, token hint with umask', async () => {
    config({
      roles: [{ name: 'ops', kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['ops'], kubernetes_users: ['dave', 'dave-admin'] }],
      users: [{ name: 'dave', roles: ['ops'] }],
    });
    const missing = await kport(['kube', 'login', 'refused', '--user', 'dave', '--port', '0', '--as', 'dave', '--', '/nonexistent/cmd']);
    assert.equal(missing.exitCode, 127, String(missing.stderr));
    assert.equal(String(missing.stderr).trim(), 'ERROR: Cannot run /nonexistent/cmd: command not found.');

    const ambiguous = await kport(['kube', 'login', 'refused', '--user', 'dave', '--', 'true']);
    assert.equal(ambiguous.exitCode, 0, String(ambiguous.stderr));
    assert.match(
      String(ambiguous.stderr),
      /refused: your roles allow several Kubernetes users \(dave, dave-admin\).*kport kube login refused --as dave.*kubectl --as dave, helm --kube-as-user dave, k9s --as dave/,
    );

    const open = join(home, 'open-data');
    mkdirSync(open);
    chmodSync(open, 0o755);
    const warned = await kport(['--data-dir', open, 'get', 'kube_cluster']);
    assert.match(String(warned.stderr), new RegExp(`the data dir ${open} is open to other users \\(mode 0755\\): run chmod 700 ${open}`));

    // One output contract: -o as kubectl spells it, errors as JSON lines when JSON is asked for.
    const asJson = await kport(['tokens', 'add', '--type=nope', '-o', 'json']);
    assert.equal(asJson.exitCode, 2);
    const error = JSON.parse(String(asJson.stderr));
    assert.equal(error.level, 'error');
    assert.match(error.message, /invalid role "nope"/);
    const added = JSON.parse(String((await kport(['tokens', 'add', '--type=discovery', '-o', 'json'])).stdout));
    const listed = JSON.parse(String((await kport(['tokens', 'ls', '--format', 'json'])).stdout));
    const { token: _secret, ...shape } = added;
    assert.deepEqual(
      listed.find((t: { name: string }) => t.name === added.name),
      shape,
      'tokens add and tokens ls print one shape',
    );
    const help = await kport(['kube', 'login', '--help']);
    assert.match(String(help.stdout), /Examples:\n {2}kport kube login /);

    const hint = await kport(['tokens', 'add', '--type=discovery']);
    assert.match(String(hint.stdout), /\(umask 077; echo [0-9a-f]{16}\.[0-9a-f]{32} > \/tmp\/token\)/);
  });

  test('Ctrl-C mid-poll says it is finishing the poll; a second Ctrl-C aborts', async () => {
    // An AWS endpoint that never answers keeps the poll in flight.
    const sockets = new Set<import('node:net').Socket>();
    const silent: Server = createHttpServer(() => {});
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      config({
        discovery_service: { enabled: 'yes', discovery_group: 'g', aws: [{ types: ['eks'], regions: ['us-east-1'] }] },
        teleport: { data_dir: join(home, 'data-ctrlc') },
      });
      const token = String((await kport(['tokens', 'add', '--type=discovery', '--format=text'])).stdout).trim();
      const agent = kport(['discover', 'run', '--token', token], {
        AWS_ENDPOINT_URL: `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'x',
        AWS_REGION: 'us-east-1',
      });
      let log = '';
      agent.stderr!.on('data', (c: Buffer) => (log += c));
      await waitFor('the poll to start', async () => /poll started/.test(log) && sockets.size > 0, { timeoutMs: 30_000 });
      agent.kill('SIGINT');
      await waitFor('the notice', async () => /stopping: finishing the poll in flight \(Ctrl-C again to abort\)/.test(log), { timeoutMs: 10_000 });
      agent.kill('SIGINT');
      const done = await agent;
      assert.equal(done.exitCode, 130);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
