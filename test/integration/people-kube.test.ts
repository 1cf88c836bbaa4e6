// With a login profile, the kube commands find clusters through the server and reach them through it
// with the person's certificate (issue 21): kube credentials prints that certificate as an
// ExecCredential, kube config writes kubeconfig entries for the server's /k/<cluster>. And the
// audit trail through the server: an `auditor` reads it, an `access` person is refused.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { invitedPerson, person, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { eksCluster } from '../helpers/resources.ts';

const KUBECONFIG =
  "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: static-cluster-secret-token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
const eks = (name: string, env: string) => eksCluster(name, { env });

describe('people: kube config, kube credentials and get audit through the server', { concurrency: false, timeout: 240_000 }, () => {
  let server: TestServer;
  let alice: Person;
  let audrey: Person;

  before(async () => {
    server = await startServer();
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
        stringify(eks('dev-a', 'dev')),
        stringify(eks('prod-a', 'prod')),
        stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name: 'dev-static', labels: { env: 'dev' } }, spec: { kubeconfig: KUBECONFIG } }),
      ].join('---\n'),
    );
    const res = await server.kport(['create', '-f', setup]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    // A machine with no AWS credentials at all (no env, no ~/.aws, no instance role reachable).
    alice = await invitedPerson(server, 'alice', ['dev-access'], undefined, { AWS_EC2_METADATA_DISABLED: 'true' });
    audrey = await invitedPerson(server, 'audrey', ['auditor']);
  });
  after(async () => server?.stop());

  test("kube credentials with a login prints the person's client certificate and key as an ExecCredential that ends with the certificate; no AWS credentials needed, no call to the server", async () => {
    const res = await alice.kport(['kube', 'credentials', 'dev-a']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const credential = JSON.parse(String(res.stdout));
    assert.equal(credential.kind, 'ExecCredential');
    assert.equal(credential.apiVersion, 'client.authentication.k8s.io/v1beta1');
    const profileDir = join(alice.home, '.kport', 'profiles', server.address.replace(':', '_'));
    const cert = new X509Certificate(credential.status.clientCertificateData);
    assert.equal(credential.status.clientCertificateData, readFileSync(join(profileDir, 'cert.pem'), 'utf8'));
    assert.equal(credential.status.clientKeyData, readFileSync(join(profileDir, 'key.pem'), 'utf8'));
    assert.ok(cert.checkPrivateKey(createPrivateKey(credential.status.clientKeyData)), 'the key of that certificate');
    assert.equal(credential.status.expirationTimestamp, new Date(cert.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    assert.equal(credential.status.token, undefined);
    // The version client-go asks for; --proxy names the login (as kport kube config writes it).
    const v1 = await execa(process.execPath, [KPORT_BIN, 'kube', 'credentials', 'dev-a', '--proxy', server.address], {
      cwd: alice.home,
      env: {
        HOME: alice.home,
        PATH: process.env.PATH ?? '',
        KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential' }),
      },
      extendEnv: false,
      reject: false,
    });
    assert.equal(v1.exitCode, 0, String(v1.stderr));
    assert.equal(JSON.parse(String(v1.stdout)).apiVersion, 'client.authentication.k8s.io/v1');
    const other = await alice.kport(['kube', 'credentials', 'dev-a', '--proxy', '127.0.0.1:1']);
    assert.equal(other.exitCode, 4, String(other.stderr));
    assert.equal(String(other.stderr).trim(), 'ERROR: You are not logged in to 127.0.0.1:1: run kport login --proxy 127.0.0.1:1.');
  });

  test("kube config writes, beside the entries already there, a context per cluster that reaches the server's /k/<cluster> with its CA, the cluster's TLS name and the exec plugin; a cluster the roles do not allow is not found and nothing is written", async () => {
    const kubeconfig = join(alice.home, '.kube', 'config');
    mkdirSync(join(alice.home, '.kube'), { recursive: true });
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'mine', cluster: { server: 'https://10.0.0.1' } }],
        users: [{ name: 'mine', user: { token: 't' } }],
        contexts: [{ name: 'mine', context: { cluster: 'mine', user: 'mine' } }],
        'current-context': 'mine',
      }),
    );
    const before = readFileSync(kubeconfig, 'utf8');
    const refused = await alice.kport(['kube', 'config', 'dev-a', 'prod-a']);
    assert.equal(refused.exitCode, 1, String(refused.stderr));
    assert.match(String(refused.stderr), /kube_cluster "prod-a" not found: check `kport kube ls`/);
    assert.equal(readFileSync(kubeconfig, 'utf8'), before, 'nothing written');

    const res = await alice.kport(['kube', 'config', 'dev-a', 'dev-static']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal(
      String(res.stdout).trim(),
      `Wrote contexts 127.0.0.1-dev-a, 127.0.0.1-dev-static to ${kubeconfig}; the current context is now 127.0.0.1-dev-a.`,
    );
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    const written = parse(readFileSync(kubeconfig, 'utf8'));
    assert.equal(written['current-context'], '127.0.0.1-dev-a');
    assert.deepEqual(
      written.contexts.map((c: { name: string }) => c.name),
      ['mine', '127.0.0.1-dev-a', '127.0.0.1-dev-static'],
    );
    const cluster = written.clusters.find((c: { name: string }) => c.name === '127.0.0.1-dev-a').cluster;
    assert.equal(cluster.server, `https://${server.address}/k/dev-a`);
    assert.equal(
      Buffer.from(cluster['certificate-authority-data'], 'base64').toString(),
      readFileSync(join(alice.home, '.kport', 'profiles', server.address.replace(':', '_'), 'ca.pem'), 'utf8'),
    );
    assert.match(cluster['tls-server-name'], /^k-[0-9a-f]{32}\.kube\.kport\.internal$/);
    const exec = written.users.find((u: { name: string }) => u.name === '127.0.0.1-dev-static').user.exec;
    assert.equal(exec.apiVersion, 'client.authentication.k8s.io/v1beta1');
    assert.deepEqual(exec.args.slice(1), ['kube', 'credentials', 'dev-static', '--proxy', server.address]);
    // The plugin kubectl will run works as written: it prints this person's certificate.
    const plugin = await execa(exec.command, exec.args, { env: { HOME: alice.home, PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false });
    assert.equal(plugin.exitCode, 0, String(plugin.stderr));
    assert.match(JSON.parse(String(plugin.stdout)).status.clientCertificateData, /BEGIN CERTIFICATE/);
    // Nothing of the old entries changed; a second run replaces, never duplicates.
    assert.deepEqual(
      written.users.find((u: { name: string }) => u.name === 'mine'),
      { name: 'mine', user: { token: 't' } },
    );
    const again = await alice.kport(['kube', 'config', 'dev-a', '--no-switch']);
    assert.equal(again.exitCode, 0, String(again.stderr));
    const twice = parse(readFileSync(kubeconfig, 'utf8'));
    assert.equal(twice.contexts.length, 3);
  });

  test('without a login, kube config says to log in first (exit 2)', async () => {
    const res = await person().kport(['kube', 'config', 'dev-a']);
    assert.equal(res.exitCode, 2, String(res.stderr));
    assert.match(
      String(res.stderr),
      /kport kube config writes entries that reach a kport server, and you are not logged in to one \(no profile in .*\): run kport login --proxy HOST:PORT first, or use kport kube login for a local proxy\./,
    );
  });

  test("get audit through the server: an auditor reads the events (logins included), an access person is refused with the server's sentence", async () => {
    const res = await audrey.kport(['get', 'audit', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const events = JSON.parse(String(res.stdout)) as Array<{ spec: { type: string; user?: string; outcome: string } }>;
    assert.ok(
      events.some((e) => e.spec.type === 'user.login' && e.spec.user === 'alice' && e.spec.outcome === 'allowed'),
      JSON.stringify(events.map((e) => e.spec.type)),
    );
    const refused = await alice.kport(['get', 'audit']);
    assert.equal(refused.exitCode, 4, String(refused.stderr));
    assert.equal(
      String(refused.stderr).trim(),
      `ERROR: The kport server at ${server.address} refused: user alice (dev-access) may not list audit resources (no role allows it).`,
    );
    // The auditor reads the audit trail and nothing else.
    const tokens = await audrey.kport(['tokens', 'ls']);
    assert.equal(tokens.exitCode, 4, String(tokens.stderr));
  });
});
