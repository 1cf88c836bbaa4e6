// Whole-process time of `kport version` and `kport get kube_cluster --format json` with 1,000 and
// 10,000 resources, on sqlite and (when the etcd peer is provisioned) on a one-node etcd; then the
// single executable (scripts/sea.ts, built if its inputs changed) beside `node bin/kport.js`.
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
import { buildSea } from '../scripts/sea.ts';
import { KPORT, median, row, timeCommand, timeProcess } from './lib.ts';

const RUNS = Number(process.env.RUNS ?? 15);

async function seed(backend: Backend, count: number): Promise<void> {
  const items = Array.from({ length: count }, (_, i) =>
    toKubeCluster(
      {
        name: `cluster-${i}`,
        arn: `arn:aws:eks:us-east-1:123456789012:cluster/cluster-${i}`,
        region: ['us-east-1', 'eu-west-1', 'us-west-2', 'ap-south-1'][i % 4]!,
        accountId: '123456789012',
        status: 'ACTIVE',
        tags: { env: i % 3 ? 'prod' : 'dev', team: `team-${i % 17}` },
      },
      'bench',
    ),
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
report('kport get kube_cluster --format json', 'sqlite', '0', timeProcess(['get', 'kube_cluster', '--format', 'json'], empty, RUNS));

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

// kube ls beside `kubectl config get-contexts`, with what a platform engineer has: 1,000 clusters
// in the store and a kubeconfig of 1,000 contexts (and of one).
function kubeconfigOf(dir: string, contexts: number): string {
  const path = join(dir, `kubeconfig-${contexts}`);
  const names = Array.from({ length: contexts }, (_, i) => `arn:aws:eks:us-east-1:123456789012:cluster/team-${i}`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: names.map((name, i) => ({
        name,
        cluster: { server: `https://${i}.eks.example.com`, 'certificate-authority-data': Buffer.alloc(1100, i % 251).toString('base64') },
      })),
      users: names.map((name) => ({
        name,
        user: { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'aws', args: ['eks', 'get-token', '--cluster-name', name] } },
      })),
      contexts: names.map((name) => ({ name, context: { cluster: name, user: name } })),
      'current-context': names[contexts - 1],
    }),
  );
  return path;
}
const lsEnv = home();
const lsStore = await SqliteBackend.open(join(lsEnv.dataDir!, 'kport.db'));
await seed(lsStore, 1000);
await lsStore.close();
// What one TAB costs when completing a cluster name (kube login <TAB>).
report('kport __complete kube_cluster (shell completion)', 'sqlite', 1000, timeProcess(['__complete', 'kube_cluster'], lsEnv, RUNS));
writeFileSync(
  lsEnv.KPORT_CONFIG!,
  stringify({
    version: 'v3',
    teleport: { data_dir: lsEnv.dataDir },
    roles: [{ name: 'all', kubernetes_labels: { '*': '*' } }],
    users: [{ name: 'bench', roles: ['all'] }],
  }),
);
for (const contexts of [1000, 1]) {
  const kubeconfig = kubeconfigOf(lsEnv.HOME!, contexts);
  const env = { ...lsEnv, KUBECONFIG: kubeconfig };
  const kport = timeProcess(['kube', 'ls', '--user', 'bench'], env, RUNS);
  const kubectl = existsSync(BINARIES.kubectl()) ? timeCommand(BINARIES.kubectl(), ['config', 'get-contexts'], env, RUNS) : undefined;
  report(`kport kube ls (KUBECONFIG of ${contexts} context${contexts === 1 ? '' : 's'})`, 'sqlite', 1000, kport);
  if (kubectl)
    report(
      `kubectl config get-contexts (same file)${contexts === 1000 ? ` -> kport/kubectl ${(median(kport) / median(kubectl)).toFixed(2)}x` : ''}`,
      '-',
      '-',
      kubectl,
    );
}
// The single executable against the same CLI under Node, run alternately so load hits both alike.
const binary = await buildSea(process.arch, { ifChanged: true });
const sideBySide = (label: string, args: string[], env: NodeJS.ProcessEnv) => {
  const viaNode: number[] = [];
  const viaBinary: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    viaNode.push(...timeCommand(process.execPath, [KPORT, ...args], env, 1));
    viaBinary.push(...timeCommand(binary, args, env, 1));
  }
  report(`${label}: node bin/kport.js`, '-', '-', viaNode);
  report(`${label}: single executable -> binary/node ${(median(viaBinary) / median(viaNode)).toFixed(2)}x`, '-', '-', viaBinary);
};
sideBySide('kport version', ['version'], empty);
sideBySide('kport kube ls, 1,000 clusters (KUBECONFIG of 1,000 contexts)', ['kube', 'ls', '--user', 'bench'], {
  ...lsEnv,
  KUBECONFIG: kubeconfigOf(lsEnv.HOME!, 1000),
});
process.stdout.write(`${lines.join('\n')}\n\nnode ${process.version}, ${RUNS} runs each, ${new Date().toISOString()}\n`);
