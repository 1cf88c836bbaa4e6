// Whole-process time of `kport version` and `kport get kube_cluster --format json` with 1,000 and
// 10,000 resources, on sqlite and (when the etcd peer is provisioned) on a one-node etcd.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Backend } from '../src/backend/backend.ts';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { EtcdBackend } from '../src/backend/etcd.ts';
import { toKubeCluster } from '../src/discovery/convert.ts';
import { resourceKey } from '../src/resources/resource.ts';
import { encodeResource } from '../src/resources/store.ts';
import { startEtcd } from '../test/peers/etcd.ts';
import { BINARIES } from '../test/peers/versions.ts';
import { median, row, timeProcess } from './lib.ts';

const RUNS = Number(process.env.RUNS ?? 15);

async function seed(backend: Backend, count: number): Promise<void> {
  const items = Array.from({ length: count }, (_, i) =>
    toKubeCluster({ name: `cluster-${i}`, arn: `arn:aws:eks:us-east-1:123456789012:cluster/cluster-${i}`, region: ['us-east-1', 'eu-west-1', 'us-west-2', 'ap-south-1'][i % 4]!, accountId: '123456789012', status: 'ACTIVE', tags: { env: i % 3 ? 'prod' : 'dev', team: `team-${i % 17}` } }, 'bench'),
  );
  for (let i = 0; i < items.length; i += 200) {
    await Promise.all(items.slice(i, i + 200).map((r) => backend.put(resourceKey('kube_cluster', r.metadata.name), encodeResource(r))));
  }
}

function home(storage?: unknown): NodeJS.ProcessEnv {
  const dir = mkdtempSync(join(tmpdir(), 'kport-bench-'));
  const config = join(dir, 'kport.yaml');
  writeFileSync(config, stringify({ version: 'v3', teleport: { data_dir: join(dir, 'data'), ...(storage ? { storage } : {}) } }));
  return { HOME: dir, PATH: process.env.PATH, KPORT_CONFIG: config, dataDir: join(dir, 'data') };
}

const lines = ['| command | backend | resources | median ms | min ms |', '|---|---|---|---|---|'];
const report = (cmd: string, backend: string, n: number | string, times: number[]) => {
  lines.push(row([cmd, backend, n, median(times), Math.min(...times)]));
  process.stderr.write(`${lines.at(-1)}\n`);
};

const empty = home();
report('kport version', '-', '-', timeProcess(['version'], empty, RUNS));
report('kport get kube_cluster --format json', 'sqlite', 0, timeProcess(['get', 'kube_cluster', '--format', 'json'], empty, RUNS));

const etcd = existsSync(BINARIES.etcd()) ? await startEtcd({ members: 1 }) : undefined;
for (const n of [1000, 10000]) {
  const env = home();
  const sqlite = await SqliteBackend.open(join(env.dataDir!, 'kport.db'));
  await seed(sqlite, n);
  await sqlite.close();
  report('kport get kube_cluster --format json', 'sqlite', n, timeProcess(['get', 'kube_cluster', '--format', 'json'], env, RUNS));
  if (etcd) {
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: `/bench-${n}` };
    const etcdEnv = home(storage);
    const backend = await EtcdBackend.connect({ type: 'etcd', peers: etcd.endpoints, prefix: `/bench-${n}` });
    await seed(backend, n);
    await backend.close();
    report('kport get kube_cluster --format json', 'etcd (1 node)', n, timeProcess(['get', 'kube_cluster', '--format', 'json'], etcdEnv, RUNS));
  }
}
await etcd?.stop();
process.stdout.write(`${lines.join('\n')}\n\nnode ${process.version}, ${RUNS} runs each, ${new Date().toISOString()}\n`);
