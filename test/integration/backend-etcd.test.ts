// The same backend contract as sqlite, against a real one-node etcd.
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { EtcdBackend } from '../../src/backend/etcd.ts';
import { backendContract } from '../helpers/backend-contract.ts';
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
