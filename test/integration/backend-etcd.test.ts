// The same backend contract as sqlite, against a real one-node etcd.
import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EtcdBackend } from '../../src/backend/etcd.ts';
import { backendContract } from '../helpers/backend-contract.ts';
import { watchCacheContract } from '../helpers/watch-cache-contract.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { BINARIES } from '../peers/versions.ts';
import { havePeer } from '../peers/process.ts';

let etcd: EtcdCluster | undefined;
before(async (t) => {
  if (havePeer(t as never, 'etcd', [BINARIES.etcd()])) etcd = await startEtcd({ members: 1 });
});
after(() => etcd?.stop());

const connect = (prefix: string) => EtcdBackend.connect({ type: 'etcd', peers: etcd!.endpoints, prefix });

backendContract('etcd', {
  open: () => connect(`/contract-${randomUUID()}`),
  shared: async () => {
    const prefix = `/shared-${randomUUID()}`;
    return { arg: `etcd:${etcd!.endpoints.join(',')}@${prefix}`, open: () => connect(prefix) };
  },
});

watchCacheContract('etcd', () => connect(`/cache-${randomUUID()}`));

test('an unreachable etcd is one clear error naming the peers tried', async () => {
  const { freePort } = await import('../peers/process.ts');
  const peers = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
  await assert.rejects(EtcdBackend.connect({ type: 'etcd', peers, prefix: '/x' }), (err: Error) => {
    assert.ok(err.message.startsWith(`Cannot reach etcd at ${peers.join(', ')} (connect ECONNREFUSED 127.0.0.1:`), err.message);
    assert.ok(err.message.endsWith('): check teleport.storage.peers and that etcd is running.'), err.message);
    return true;
  });
});
