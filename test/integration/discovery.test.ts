// `kport discover run` against moto (docs/architecture.md §5), through the built binary and the real AWS SDK.
import assert from 'node:assert/strict';
import { afterEach, before, describe, test } from 'node:test';
import { DeleteClusterCommand, TagResourceCommand } from '@aws-sdk/client-eks';
import { join } from 'node:path';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { createClusters, createIamUserKeys, createRole, eksAdmin } from '../peers/aws.ts';
import type { Moto } from '../peers/moto.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { kubeClusters, setupAgent } from '../helpers/agent.ts';
import { fileMoto } from '../helpers/file-peers.ts';

const OTHER = '222222222222';
const OWN = '123456789012';

describe('discover run against moto', { concurrency: false, timeout: 600_000 }, () => {
  let moto: Moto;
  before(async (t) => {
    if (havePeer(t as never, 'moto', [BINARIES.motoServer()])) moto = await fileMoto();
  });
  afterEach(() => moto?.reset());

  test('three regions and two accounts (one by assume_role_arn), every tag form, exact names and labels', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    await createClusters(moto, [
      { name: 'prod', region: 'us-east-1', tags: { env: 'prod', team: 'payments' } },
      { name: 'staging', region: 'us-east-1', tags: { env: 'staging', team: 'payments' } },
      { name: 'prod-eu', region: 'eu-west-1', tags: { env: 'prod', team: 'search', KportKubernetesName: 'europe' } },
      { name: 'dev', region: 'us-west-2', tags: { env: 'dev', team: 'infra' } },
      { name: 'untagged', region: 'us-west-2' },
      { name: 'prod', region: 'us-east-1', account: OTHER, tags: { env: 'prod', tier: 'gold-1' } },
      { name: 'lab', region: 'eu-west-1', account: OTHER, tags: { env: 'lab', tier: 'silver' } },
    ]);
    const roleArn = await createRole(moto, OTHER, 'discovery');
    const agent = await setupAgent(moto, tempDir('disc'), {
      group: 'aws-prod',
      kubernetes: true,
      matchers: [
        { types: ['eks'], regions: ['*'], tags: { env: ['prod', 'staging'], team: 'pay*' } },
        { types: ['eks'], regions: ['eu-west-1', 'us-west-2'], tags: { team: '^(search|infra)$' } },
        { types: ['eks'], regions: ['us-east-1', 'eu-west-1'], tags: { tier: 'gold-?' }, assume_role_arn: roleArn, external_id: 'ext-1' },
      ],
    });
    const run = await agent.kport(['discover', 'run', '--once']);
    assert.equal(run.exitCode, 0, String(run.stderr));
    assert.equal(String(run.stdout), 'Discovered 5 EKS clusters: 5 created, 0 updated, 0 deleted.');
    const clusters = await kubeClusters(agent);
    assert.deepEqual(
      clusters.map((c) => c.metadata.name),
      ['dev-eks-us-west-2-123456789012', 'europe', 'prod-eks-us-east-1-123456789012', 'prod-eks-us-east-1-222222222222', 'staging-eks-us-east-1-123456789012'],
    );
    const prodOther = clusters.find((c) => c.metadata.name === 'prod-eks-us-east-1-222222222222')!;
    assert.deepEqual(prodOther.metadata.labels, {
      env: 'prod',
      tier: 'gold-1',
      region: 'us-east-1',
      'account-id': OTHER,
      'kport.dev/cloud': 'AWS',
      'kport.dev/origin': 'cloud',
      'kport.dev/discovery-type': 'eks',
      'kport.internal/discovered-name': 'prod',
      'kport.internal/discovery-group-name': 'aws-prod',
    });
    assert.deepEqual(prodOther.spec.aws, { name: 'prod', region: 'us-east-1', account_id: OTHER, arn: `arn:aws:eks:us-east-1:${OTHER}:cluster/prod` });
    // A second poll with nothing changed writes nothing.
    const again = await agent.kport(['discover', 'run', '--once']);
    assert.equal(String(again.stdout), 'Discovered 5 EKS clusters: 0 created, 0 updated, 0 deleted.');
  });

  test('pagination past 100 clusters; a deleted cluster disappears and a changed tag updates labels on the next poll', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    await createClusters(
      moto,
      Array.from({ length: 130 }, (_, i) => ({ name: `c${String(i).padStart(3, '0')}`, region: 'us-east-2', tags: { env: 'prod' } })),
    );
    const agent = await setupAgent(moto, tempDir('disc'), { group: 'g', matchers: [{ types: ['eks'], regions: ['us-east-2'], tags: { env: 'prod' } }] });
    assert.equal(String((await agent.kport(['discover', 'run', '--once'])).stdout), 'Discovered 130 EKS clusters: 130 created, 0 updated, 0 deleted.');
    const eks = await eksAdmin(moto, 'us-east-2');
    await eks.send(new DeleteClusterCommand({ name: 'c007' }));
    await eks.send(new TagResourceCommand({ resourceArn: `arn:aws:eks:us-east-2:${OWN}:cluster/c042`, tags: { owner: 'alice' } }));
    assert.equal(String((await agent.kport(['discover', 'run', '--once'])).stdout), 'Discovered 129 EKS clusters: 0 created, 1 updated, 1 deleted.');
    const clusters = await kubeClusters(agent);
    assert.equal(clusters.length, 129);
    assert.ok(!clusters.some((c) => c.spec.aws.name === 'c007'));
    assert.equal(clusters.find((c) => c.spec.aws.name === 'c042')?.metadata.labels.owner, 'alice');
  });

  test('an agent of another discovery group never touches the first group, nor static clusters', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    await createClusters(moto, [{ name: 'prod', region: 'us-east-1', tags: { env: 'prod' } }]);
    const dir = tempDir('disc');
    const first = await setupAgent(moto, dir, {
      name: 'first',
      group: 'aws-prod',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } }],
    });
    const second = await setupAgent(moto, dir, {
      name: 'second',
      group: 'aws-other',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'nothing-matches' } }],
    });
    assert.equal((await first.kport(['discover', 'run', '--once'])).exitCode, 0);
    const r = await second.kport(['discover', 'run', '--once']);
    assert.equal(String(r.stdout), 'Discovered 0 EKS clusters: 0 created, 0 updated, 0 deleted.');
    // The same cluster found by the other group stays the first group's.
    const third = await setupAgent(moto, dir, {
      name: 'third',
      group: 'aws-other',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } }],
    });
    const taken = await third.kport(['discover', 'run', '--once']);
    assert.equal(String(taken.stdout), 'Discovered 1 EKS cluster: 0 created, 0 updated, 0 deleted.');
    assert.match(String(taken.stderr), /kube_cluster prod-eks-us-east-1-123456789012 belongs to another discovery group or is static: left alone/);
    const clusters = await kubeClusters(first);
    assert.deepEqual(
      clusters.map((c) => [c.metadata.name, c.metadata.labels['kport.internal/discovery-group-name']]),
      [['prod-eks-us-east-1-123456789012', 'aws-prod']],
    );
  });

  test('with IAM enforcement, an account that answers AccessDenied keeps its resources and shows its error; the rest is reconciled', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const keys = await createIamUserKeys(moto, 'discovery-agent');
    await createClusters(moto, [
      { name: 'a', region: 'us-east-1', tags: { env: 'prod' } },
      { name: 'b', region: 'us-east-1', tags: { env: 'prod' } },
      { name: 'x', region: 'us-east-1', account: OTHER, tags: { env: 'prod' } },
      { name: 'y', region: 'us-east-1', account: OTHER, tags: { env: 'prod' } },
    ]);
    const roleArn = await createRole(moto, OTHER, 'discovery', ['eks:DescribeCluster']);
    const agent = await setupAgent(moto, tempDir('disc'), {
      group: 'g',
      credentials: keys,
      matchers: [
        { types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } },
        { types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' }, assume_role_arn: roleArn },
      ],
    });
    assert.equal(String((await agent.kport(['discover', 'run', '--once'])).stdout), 'Discovered 4 EKS clusters: 4 created, 0 updated, 0 deleted.');
    // Both accounts lose a cluster; then moto starts enforcing IAM and the role may not list clusters.
    await (await eksAdmin(moto, 'us-east-1')).send(new DeleteClusterCommand({ name: 'b' }));
    await (await eksAdmin(moto, 'us-east-1', OTHER)).send(new DeleteClusterCommand({ name: 'y' }));
    await moto.enforceAuth(0);
    try {
      const run = await agent.kport(['discover', 'run', '--once']);
      assert.equal(run.exitCode, 1, String(run.stderr));
      assert.equal(String(run.stdout), 'Discovered 1 EKS cluster: 0 created, 0 updated, 1 deleted.');
      assert.match(
        String(run.stderr),
        /1 fetch failed; their clusters were kept as they were:\n {2}matcher 1 \/ account 222222222222 \/ us-east-1: AccessDenied: eks:ListClusters is not allowed/,
      );
      const names = (await kubeClusters(agent)).map((c) => c.metadata.name);
      assert.deepEqual(names, ['a-eks-us-east-1-123456789012', 'x-eks-us-east-1-222222222222', 'y-eks-us-east-1-222222222222']);
      const status = JSON.parse(String((await agent.kport(['get', 'discovery_service', '--format=json'])).stdout));
      assert.equal(status.length, 1);
      assert.deepEqual(
        status[0].spec.errors.map((e: { scope: string; error: string }) => [e.scope, e.error]),
        [['matcher 1 / account 222222222222 / us-east-1', 'AccessDenied: eks:ListClusters is not allowed; grant it (see `kport discover policy`)']],
      );
      assert.deepEqual(status[0].spec.clusters, { seen: 1, created: 0, updated: 0, deleted: 1 });
    } finally {
      await moto.disableAuth();
    }
  });

  test('an agent killed with SIGKILL mid-poll and restarted leaves no duplicate and no orphan', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const names = Array.from({ length: 300 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    const regionOf = (i: number) => ['us-east-1', 'eu-west-1'][i % 2]!;
    await createClusters(
      moto,
      names.map((name, i) => ({ name, region: regionOf(i), tags: { env: 'prod' } })),
    );
    const dir = tempDir('disc');
    const agent = await setupAgent(moto, dir, { group: 'g', matchers: [{ types: ['eks'], regions: ['us-east-1', 'eu-west-1'], tags: { env: 'prod' } }] });
    // Watch the agent's store from here and kill it while its writes are landing.
    const store = await SqliteBackend.open(join(dir, 'data', 'kport.db'), { pollMs: 2 });
    const victim = agent.kport(['discover', 'run']);
    let seen = 0;
    try {
      const stop = new AbortController();
      for await (const event of store.watch('/resources/kube_cluster/', stop.signal)) {
        if (event.type === 'put' && ++seen >= 1) {
          victim.kill('SIGKILL');
          stop.abort();
        }
      }
    } finally {
      victim.kill('SIGKILL');
      await victim;
    }
    const written = (await store.list('/resources/kube_cluster/')).length;
    await store.close();
    assert.ok(written > 0 && written < names.length, `killed part-way: ${written} of ${names.length} written`);
    await (await eksAdmin(moto, 'us-east-1')).send(new DeleteClusterCommand({ name: 'k000' }));
    const restarted = await agent.kport(['discover', 'run', '--once']);
    assert.equal(restarted.exitCode, 0, String(restarted.stderr));
    const expected = names.flatMap((n, i) => (n === 'k000' ? [] : [`${n}-eks-${regionOf(i)}-${OWN}`])).sort();
    assert.deepEqual((await kubeClusters(agent)).map((c) => c.metadata.name).sort(), expected);
  });

  test('SIGTERM stops a running agent cleanly: exit 0 and the heartbeat says stopped', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await setupAgent(moto, tempDir('disc'), { group: 'g', matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } }] });
    const proc = agent.kport(['discover', 'run']);
    await waitFor(
      'the first poll',
      async () =>
        /next poll at/.test(String((proc as unknown as { stderr: unknown }).stderr ?? '')) ||
        (await agent.kport(['get', 'discovery_service', '--format=json'])).stdout.includes('last_poll'),
    );
    proc.kill('SIGTERM');
    const done = await proc;
    assert.equal(done.exitCode, 0, String(done.stderr));
    const [status] = JSON.parse(String((await agent.kport(['get', 'discovery_service', '--format=json'])).stdout));
    assert.equal(status.spec.state, 'stopped');
  });

  test('refuses to start without a valid token, naming what is wrong', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await setupAgent(moto, tempDir('disc'), { group: 'g', kubernetes: true, matchers: [{ types: ['eks'], regions: ['us-east-1'] }] });
    const bogus = await agent.kport(['discover', 'run', '--once', '--token', 'deadbeefdeadbeefdeadbeefdeadbeef']);
    assert.equal(bogus.exitCode, 4);
    assert.match(String(bogus.stderr), /token expired or not found/);
    const discoveryOnly = String((await agent.kport(['tokens', 'add', '--type=discovery', '--format=text'])).stdout);
    const noKube = await agent.kport(['discover', 'run', '--once', '--token', discoveryOnly]);
    assert.equal(noKube.exitCode, 4);
    assert.match(String(noKube.stderr), /the token does not allow role kube/);
    const missing = await agent.kport(['discover', 'run', '--once', '--token', '/nonexistent/token']);
    assert.equal(missing.exitCode, 2);
    assert.match(String(missing.stderr), /Token file \/nonexistent\/token does not exist/);
  });
});

describe('kube credentials and kube ls for discovered EKS clusters', { concurrency: false }, () => {
  let moto: Moto;
  before(async (t) => {
    // The file's moto: the describe above resets it after each of its tests.
    if (havePeer(t as never, 'moto', [BINARIES.motoServer()])) moto = await fileMoto();
  });

  test('kube credentials prints an ExecCredential whose EKS token verifies with the caller keys', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const keys = await createIamUserKeys(moto, 'person');
    await createClusters(moto, [{ name: 'prod', region: 'us-east-1', tags: { env: 'prod', team: 'payments' } }]);
    const dir = tempDir('cred');
    const agent = await setupAgent(moto, dir, { group: 'g', credentials: keys, matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } }] });
    assert.equal((await agent.kport(['discover', 'run', '--once'])).exitCode, 0);
    const { writeFileSync, readFileSync } = await import('node:fs');
    const { stringify, parse } = await import('yaml');
    const config = parse(readFileSync(agent.config, 'utf8'));
    config.roles = [{ name: 'dev', kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] }];
    config.users = [{ name: 'alice', roles: ['dev'] }];
    writeFileSync(agent.config, stringify(config));
    const started = Date.now();
    const cred = await agent.kport(['kube', 'credentials', 'prod', '--user', 'alice'], {
      env: { AWS_ENDPOINT_URL_STS: 'https://sts.us-east-1.amazonaws.com' },
    });
    assert.equal(cred.exitCode, 0, String(cred.stderr));
    const exec = JSON.parse(String(cred.stdout));
    assert.equal(exec.kind, 'ExecCredential');
    assert.equal(exec.apiVersion, 'client.authentication.k8s.io/v1beta1');
    const expires = Date.parse(exec.status.expirationTimestamp);
    assert.ok(expires > started + 13 * 60_000 && expires < started + 15 * 60_000, exec.status.expirationTimestamp);
    const { verifyEksToken } = await import('../peers/aws.ts');
    assert.deepEqual(await verifyEksToken(exec.status.token, 'prod', keys.secretAccessKey), { valid: true, reason: '' });
    const ls = JSON.parse(String((await agent.kport(['kube', 'ls', '--user', 'alice', '--format', 'json'])).stdout));
    assert.deepEqual(
      ls.map((c: { kube_cluster_name: string }) => c.kube_cluster_name),
      ['prod-eks-us-east-1-123456789012'],
    );
    const table = String((await agent.kport(['kube', 'ls', 'team=payments', '--user', 'alice'])).stdout);
    assert.equal(
      table,
      'Kube Cluster Name\tLabels\tSelected\nprod-eks-us-east-1-123456789012\taccount-id=123456789012,env=prod,region=us-east-1,team=payments,kport.dev/cloud=AWS,kport.dev/discovery-type=eks,kport.dev/origin=cloud\t',
    );
    assert.equal(String((await agent.kport(['kube', 'ls', '--user', 'mallory', '--format', 'json'])).stdout), '[]');
  });
});
