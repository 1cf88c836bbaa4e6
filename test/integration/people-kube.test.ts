// With a login profile, the kube commands find clusters through the server and reach EKS clusters
// with this machine's AWS credentials (until the server proxies Kubernetes); where something is
// missing on this machine, one sentence says what. And the audit trail through the server: an
// `auditor` reads it, an `access` person is refused.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { decodeEksToken } from '../../src/aws/eks-token.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';

const KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: static-cluster-secret-token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
const eks = (name: string, env: string) => ({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: { aws: { name, region: 'us-east-1', account_id: '222222222222' } } });

describe('people: kube login, kube credentials and get audit through the server', { concurrency: false, timeout: 240_000 }, () => {
  let server: TestServer;
  let alice: Person;
  let aws: Person;
  let audrey: Person;

  before(async () => {
    server = await startServer();
    const setup = join(server.dir, 'setup.yaml');
    writeFileSync(
      setup,
      [
        stringify({ kind: 'role', version: 'v7', metadata: { name: 'dev-access' }, spec: { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['developers'] } } }),
        stringify(eks('dev-a', 'dev')),
        stringify(eks('prod-a', 'prod')),
        stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name: 'dev-static', labels: { env: 'dev' } }, spec: { kubeconfig: KUBECONFIG } }),
      ].join('---\n'),
    );
    const res = await server.kport(['create', '-f', setup]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    // A machine with no AWS credentials at all (no env, no ~/.aws, no instance role reachable).
    alice = await invitedPerson(server, 'alice', ['dev-access'], undefined, { AWS_EC2_METADATA_DISABLED: 'true' });
    // A machine with AWS credentials in its environment.
    aws = await invitedPerson(server, 'andy', ['dev-access'], undefined, { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', AWS_EC2_METADATA_DISABLED: 'true' });
    audrey = await invitedPerson(server, 'audrey', ['auditor']);
  });
  after(async () => server?.stop());

  test('kube credentials finds an allowed EKS cluster through the server and signs its token with this machine\'s AWS credentials; a cluster the roles do not allow looks missing', async () => {
    const res = await aws.kport(['kube', 'credentials', 'dev-a']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const credential = JSON.parse(String(res.stdout));
    assert.equal(credential.kind, 'ExecCredential');
    const url = new URL(decodeEksToken(credential.status.token));
    assert.match(url.searchParams.get('X-Amz-Credential') ?? '', /^AKIAIOSFODNN7EXAMPLE\/\d{8}\/us-east-1\/sts\/aws4_request$/);
    const prod = await aws.kport(['kube', 'credentials', 'prod-a']);
    assert.equal(prod.exitCode, 1);
    assert.match(String(prod.stderr), /kube_cluster "prod-a" not found: check `kport kube ls`/);
  });

  test('without AWS credentials on this machine, kube login and kube credentials say that none were found and how to set them (exit 4)', async () => {
    for (const args of [['kube', 'login', 'dev-a', '--', 'true'], ['kube', 'credentials', 'dev-a']]) {
      const res = await alice.kport(args);
      assert.equal(res.exitCode, 4, `${args.join(' ')}: ${res.stderr}`);
      assert.match(String(res.stderr), /^ERROR: No AWS credentials on this machine to reach EKS cluster dev-a \(us-east-1\): the AWS SDK found none \(.*\); run aws configure or aws sso login, or set AWS_PROFILE, and try again\.$/m, args.join(' '));
      assert.doesNotMatch(String(res.stderr), /bug in kport|rejected/);
    }
  });

  test('kube login of a cluster reached through a kubeconfig the server keeps says so, not a bug', async () => {
    const res = await alice.kport(['kube', 'login', 'dev-static', '--', 'true']);
    assert.equal(res.exitCode, 1, String(res.stderr));
    assert.equal(String(res.stderr).trim(), `ERROR: kube_cluster dev-static is reached through a kubeconfig that stays at the kport server at ${server.address}: through a server, kport kube login reaches EKS clusters (with this machine's AWS credentials); reach dev-static with kport kube login on the server's host.`);
  });

  test('get audit through the server: an auditor reads the events (logins included), an access person is refused with the server\'s sentence', async () => {
    const res = await audrey.kport(['get', 'audit', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const events = JSON.parse(String(res.stdout)) as Array<{ spec: { type: string; user?: string; outcome: string } }>;
    assert.ok(events.some((e) => e.spec.type === 'user.login' && e.spec.user === 'alice' && e.spec.outcome === 'allowed'), JSON.stringify(events.map((e) => e.spec.type)));
    const refused = await alice.kport(['get', 'audit']);
    assert.equal(refused.exitCode, 4, String(refused.stderr));
    assert.equal(String(refused.stderr).trim(), `ERROR: The kport server at ${server.address} refused: user alice (dev-access) may not list audit resources (no role allows it).`);
    // The auditor reads the audit trail and nothing else.
    const tokens = await audrey.kport(['tokens', 'ls']);
    assert.equal(tokens.exitCode, 4, String(tokens.stderr));
  });
});
