// Where `rbac bootstrap` and `rbac check` reach a cluster (issue 19): a discovered EKS cluster of
// another account, through the role kport's config assumes there (moto), and a server that
// answers 200 with something that is not Kubernetes (a real HTTP server playing a wrong endpoint).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { KPORT_BIN, setupAgent } from '../helpers/agent.ts';
import { createClusters, createRole } from '../peers/aws.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, tempDir } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const OTHER = '222222222222';
const PROXY_ROLE = `arn:aws:iam::${OTHER}:role/kport-proxy`;

describe('rbac against a server that is not Kubernetes', () => {
  let server: Server;
  let kubeconfig: string;
  let body = '';
  before(async () => {
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': body.startsWith('{') ? 'application/json' : 'text/html' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    kubeconfig = join(tempDir('rbac-answers'), 'config');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'web', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'web', context: { cluster: 'web', user: 'u' } }],
        'current-context': 'web',
      }),
    );
  });
  after(() => server.close());

  test('a 200 answer that is not the Kubernetes object asked for is an error naming who answered, not a bug', async () => {
    const url = parse(readFileSync(kubeconfig, 'utf8')).clusters[0].cluster.server as string;
    const kport = (args: string[]) =>
      execa(process.execPath, [KPORT_BIN, ...args], {
        env: { HOME: tempDir('home'), PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfig },
        extendEnv: false,
        reject: false,
      });
    for (const answer of ['<html><body>Sign in</body></html>', '{}', '{"kind":"Status","apiVersion":"v1","status":"Success"}']) {
      body = answer;
      const bootstrap = await kport(['rbac', 'bootstrap', '--context', 'web', '--role-arn', PROXY_ROLE, '--dry-run']);
      assert.equal(bootstrap.exitCode, 1, answer);
      assert.doesNotMatch(String(bootstrap.stderr), /bug in kport/);
      assert.match(
        String(bootstrap.stderr),
        new RegExp(
          `^ERROR: ${url} answered the request to read ClusterRole kport with .* where a ClusterRole was expected: check that the kubeconfig's server is the cluster's Kubernetes API server\\.$`,
          'm',
        ),
      );
      const check = await kport(['rbac', 'check', '--context', 'web']);
      assert.equal(check.exitCode, 1);
      assert.doesNotMatch(String(check.stdout), /✗/, 'no permission is reported missing on the word of a server that is not Kubernetes');
      assert.match(String(check.stderr), /answered the request to create a SelfSubjectAccessReview with .* where a SelfSubjectAccessReview was expected/);
    }
  });
});

describe('rbac --cluster for a cluster in another account (moto)', { concurrency: false, timeout: 300_000 }, () => {
  let moto: Moto;
  before(async (t) => {
    if (havePeer(t as never, 'moto', [BINARIES.motoServer()])) moto = await startMoto();
  });
  afterEach(() => moto?.reset());
  after(() => moto?.stop());

  /** A kport home that discovered `prod` in OTHER through `discoveryRole`, with `extra` config merged in. */
  async function discovered(t: Parameters<Parameters<typeof test>[1]>[0]) {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return undefined;
    await createClusters(moto, [{ name: 'prod', region: 'us-east-1', account: OTHER, tags: { env: 'prod' } }]);
    const discoveryRole = await createRole(moto, OTHER, 'discovery');
    const agent = await setupAgent(moto, tempDir('rbac-xacct'), {
      group: 'g',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' }, assume_role_arn: discoveryRole }],
    });
    const run = await agent.kport(['discover', 'run', '--once']);
    assert.equal(run.exitCode, 0, String(run.stderr));
    const config = parse(readFileSync(agent.config, 'utf8'));
    const setConfig = (change: (c: Record<string, any>) => void) => {
      const next = structuredClone(config);
      change(next);
      writeFileSync(agent.config, stringify(next));
    };
    return { agent, discoveryRole, setConfig };
  }

  test('the cluster is described in its own account, through the role the discovery config assumes there', async (t) => {
    const home = await discovered(t);
    if (!home) return;
    const r = await home.agent.kport(['rbac', 'bootstrap', '--cluster', 'prod', '--role-arn', PROXY_ROLE, '--dry-run']);
    // moto's cluster endpoint is not a real API server: getting as far as it is the proof.
    assert.doesNotMatch(String(r.stderr), /No cluster found|describe EKS cluster/);
    assert.match(String(r.stderr), /to read ClusterRole/);
    assert.doesNotMatch(String(r.stderr), /bug in kport/);
  });

  test('a kubernetes_service role in that account is used first; a missing cluster names the account and the role, with one period', async (t) => {
    const home = await discovered(t);
    if (!home) return;
    const proxyRole = await createRole(moto, OTHER, 'kport-proxy');
    home.setConfig((c) => (c.kubernetes_service = { enabled: 'yes', resources: [{ labels: { env: 'prod' }, assume_role_arn: proxyRole }] }));
    // The cluster goes away in AWS; its record stays until the next poll.
    const { DeleteClusterCommand } = await import('@aws-sdk/client-eks');
    const { eksAdmin } = await import('../peers/aws.ts');
    await (await eksAdmin(moto, 'us-east-1', OTHER)).send(new DeleteClusterCommand({ name: 'prod' }));
    const r = await home.agent.kport(['rbac', 'bootstrap', '--cluster', 'prod', '--role-arn', PROXY_ROLE, '--dry-run']);
    assert.equal(r.exitCode, 1);
    assert.match(
      String(r.stderr),
      new RegExp(
        `^ERROR: Cannot describe EKS cluster prod in us-east-1: No cluster found for name: prod \\(account ${OTHER}, as ${proxyRole} from kubernetes_service\\.resources\\)\\.$`,
        'm',
      ),
    );
    assert.doesNotMatch(String(r.stderr), /\.\./);
  });

  test('without a role in that account, one sentence names both accounts and what to add', async (t) => {
    const home = await discovered(t);
    if (!home) return;
    home.setConfig((c) => delete c.discovery_service.aws[0].assume_role_arn);
    for (const command of [
      ['rbac', 'bootstrap', '--role-arn', PROXY_ROLE, '--dry-run'],
      ['rbac', 'check'],
    ]) {
      const r = await home.agent.kport([...command, '--cluster', 'prod']);
      assert.equal(r.exitCode, 2);
      assert.match(
        String(r.stderr),
        new RegExp(
          `kube_cluster prod-eks-us-east-1-${OTHER} is in AWS account ${OTHER}, your AWS credentials are account 123456789012, and no assume_role_arn in .* is a role in ${OTHER}: add one, or use --context`,
        ),
      );
    }
  });
});
