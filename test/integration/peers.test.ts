// Smoke tests proving each test peer is the real thing (docs/architecture.md §8).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { CreateClusterCommand, EKSClient, ListClustersCommand } from '@aws-sdk/client-eks';
import { Etcd3 } from 'etcd3';
import { BINARIES } from '../peers/versions.ts';
import { havePeer } from '../peers/process.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { startEtcd } from '../peers/etcd.ts';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { EKS_TOKEN_PREFIX, createEksToken, decodeEksToken } from '../../src/aws/eks-token.ts';
import { classifyAwsError } from '../../src/aws/errors.ts';
import { createIamUserKeys, verifyEksToken } from '../peers/aws.ts';

const run = promisify(execFile);

describe('moto', { concurrency: false }, () => {
  let moto: Moto;
  before(async (t) => {
    if (!havePeer(t as never, 'moto', [BINARIES.motoServer()])) return;
    moto = await startMoto();
  });
  after(() => moto?.stop());

  test('EKS clusters created in two regions list per region through the SDK', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const client = (region: string) => new EKSClient({ region, endpoint: moto.endpoint, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' } });
    for (const [region, name] of [
      ['us-east-1', 'a'],
      ['eu-west-1', 'b'],
      ['eu-west-1', 'c'],
    ] as const) {
      await client(region).send(new CreateClusterCommand({ name, roleArn: 'arn:aws:iam::123456789012:role/eks', resourcesVpcConfig: {} }));
    }
    assert.deepEqual((await client('us-east-1').send(new ListClustersCommand({}))).clusters, ['a']);
    assert.deepEqual((await client('eu-west-1').send(new ListClustersCommand({}))).clusters?.sort(), ['b', 'c']);
    await moto.reset();
    assert.deepEqual((await client('eu-west-1').send(new ListClustersCommand({}))).clusters, []);
  });

  test('an EKS token (presigned STS GetCallerIdentity) verifies against moto keys; a tampered one does not', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const keys = await createIamUserKeys(moto, 'kport-proxy');
    const { token } = await createEksToken({ clusterName: 'prod', region: 'us-east-1', credentials: keys, stsEndpoint: 'https://sts.us-east-1.amazonaws.com' });
    assert.deepEqual(await verifyEksToken(token, 'prod', keys.secretAccessKey), { valid: true, reason: '' });
    assert.equal((await verifyEksToken(token, 'other-cluster', keys.secretAccessKey)).valid, false, 'the cluster name is signed');
    const url = decodeEksToken(token);
    const flipped = url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    const tampered = EKS_TOKEN_PREFIX + Buffer.from(flipped).toString('base64url');
    assert.deepEqual(await verifyEksToken(tampered, 'prod', keys.secretAccessKey), { valid: false, reason: 'signature does not match' });
  });

  test('with IAM enforcement on, moto refuses unknown keys and denied actions', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const keys = await createIamUserKeys(moto, 'limited', ['sts:GetCallerIdentity'], ['eks:ListClusters']);
    await moto.enforceAuth(0);
    try {
      const eks = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
        new EKSClient({ region: 'us-east-1', endpoint: moto.endpoint, credentials });
      const denied = await eks(keys)
        .send(new ListClustersCommand({}))
        .then(() => undefined, classifyAwsError);
      assert.equal(denied?.kind, 'access-denied', JSON.stringify(denied));
      const unknown = await eks({ accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'x' })
        .send(new ListClustersCommand({}))
        .then(() => undefined, classifyAwsError);
      assert.equal(unknown?.status, 403, JSON.stringify(unknown));
      const sts = new STSClient({ region: 'us-east-1', endpoint: moto.endpoint, credentials: keys });
      assert.match((await sts.send(new GetCallerIdentityCommand({}))).Arn ?? '', /user\/limited$/);
    } finally {
      await moto.disableAuth();
    }
  });
});

describe('kube-apiserver and kubectl', { concurrency: false }, () => {
  let api: KubeApiserver;
  before(async (t) => {
    if (!havePeer(t as never, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()])) return;
    api = await startKubeApiserver();
  });
  after(() => api?.stop());

  test('kubectl get namespaces lists default and kube-system', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl()])) return;
    const { stdout } = await run(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.admin), 'get', 'namespaces', '-o', 'name']);
    const names = stdout.trim().split('\n');
    assert.ok(names.includes('namespace/default'), stdout);
    assert.ok(names.includes('namespace/kube-system'), stdout);
  });

  test('RBAC denies the low-privilege proxy identity what it is not granted', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl()])) return;
    const denied = await run(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.proxy), 'get', 'pods', '-n', 'default']).then(
      () => undefined,
      (err: { stderr: string }) => err.stderr,
    );
    assert.match(denied ?? '', /Forbidden.*"system:serviceaccount|forbidden: User "kport-proxy" cannot list resource "pods"/);
    const { stdout } = await run(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.proxy), 'auth', 'can-i', 'get', 'pods']).catch((e) => e);
    assert.equal(stdout.trim(), 'no');
  });
});

describe('etcd', { concurrency: false }, () => {
  test('put and get on one node', async (t) => {
    if (!havePeer(t, 'etcd', [BINARIES.etcd()])) return;
    const etcd = await startEtcd({ members: 1 });
    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      await client.put('/smoke').value('hello');
      assert.equal(await client.get('/smoke').string(), 'hello');
    } finally {
      client.close();
      await etcd.stop();
    }
  });

  test('a three-node cluster keeps serving with one member down, and the member rejoins', async (t) => {
    if (!havePeer(t, 'etcd', [BINARIES.etcd()])) return;
    const etcd = await startEtcd({ members: 3 });
    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      await client.put('/before').value('1');
      await etcd.members[0]!.stop();
      await client.put('/during').value('2');
      assert.equal(await client.get('/before').string(), '1');
      assert.equal(await client.get('/during').string(), '2');
      await etcd.members[0]!.start();
      const single = new Etcd3({ hosts: [etcd.members[0]!.clientUrl] });
      try {
        const { waitFor } = await import('../peers/process.ts');
        assert.equal(
          await waitFor('the restarted member to catch up', () =>
            single
              .get('/during')
              .string()
              .then((v) => v ?? false),
          ),
          '2',
        );
      } finally {
        single.close();
      }
    } finally {
      client.close();
      await etcd.stop();
    }
  });
});
