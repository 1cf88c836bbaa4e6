// kwok as the kubelet of a real kube-apiserver (docs/architecture.md §8): it simulates a node
// and its pods, and serves the kubelet's exec, logs and port-forward endpoints by running local
// commands, so exec/logs/port-forward go end to end (kubectl -> proxy -> apiserver -> "kubelet").
// The apiserver must be started with `kubeletClient: true`. Everything kwok needs (its "fast"
// Stages, the ClusterExec/ClusterLogs/ClusterPortForward rules) comes from its config file: no CRDs.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createCA } from '../../src/kube/pki.ts';
import type { KubeApiserver } from './kube.ts';
import { freePort, spawnPeer, tempDir, waitFor } from './process.ts';
import { BINARIES } from './versions.ts';

const KWOK_API = 'kwok.x-k8s.io/v1alpha1';

export interface Kwok {
  /** The one simulated node, Ready. */
  node: string;
  dir: string;
  /** Creates a pod bound to the node (no scheduler runs) and waits until it is Running. */
  createPod(namespace: string, name: string, opts?: { ports?: number[] }): Promise<void>;
  deletePod(namespace: string, name: string): Promise<void>;
  stop(): Promise<void>;
}

/** Every `kubectl exec` in any pod runs its command here, on the test machine, with these variables. */
export function clusterExec(envs: Record<string, string> = {}): object {
  return {
    kind: 'ClusterExec',
    apiVersion: KWOK_API,
    metadata: { name: 'exec' },
    spec: { execs: [{ local: { envs: Object.entries(envs).map(([name, value]) => ({ name, value })) } }] },
  };
}

/** Every container's logs are this CRI-format file (`<RFC3339Nano> stdout F <line>`); `logs -f` follows it. */
export function clusterLogs(logsFile: string): object {
  return { kind: 'ClusterLogs', apiVersion: KWOK_API, metadata: { name: 'logs' }, spec: { logs: [{ logsFile, follow: true }] } };
}

/** Every pod port forwards to this local TCP port. */
export function clusterPortForward(port: number): object {
  return {
    kind: 'ClusterPortForward',
    apiVersion: KWOK_API,
    metadata: { name: 'port-forward' },
    spec: { forwards: [{ target: { address: '127.0.0.1', port } }] },
  };
}

/** One CRI log line as the kubelet writes it. */
export function criLogLine(line: string, stream: 'stdout' | 'stderr' = 'stdout', at = new Date()): string {
  return `${at.toISOString().replace('Z', '000000Z')} ${stream} F ${line}\n`;
}

/** Starts kwok against `api` with the given ClusterExec/ClusterLogs/ClusterPortForward rules and a node kwok-node-0. */
export async function startKwok(api: KubeApiserver, rules: object[]): Promise<Kwok> {
  const dir = tempDir('kwok');
  const node = 'kwok-node-0';
  // The apiserver does not verify the kubelet's serving cert (no --kubelet-certificate-authority): any CA will do.
  const ca = await createCA('kport-test-kwok-ca');
  const serving = await ca.issue({ commonName: node, ips: ['127.0.0.1'], usage: 'server' });
  writeFileSync(join(dir, 'kwok.crt'), serving.cert);
  writeFileSync(join(dir, 'kwok.key'), serving.key, { mode: 0o600 });
  const port = await freePort();
  const configuration = {
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokConfiguration',
    options: {
      manageAllNodes: true,
      nodeIP: '127.0.0.1',
      nodePort: port,
      serverAddress: `127.0.0.1:${port}`,
      tlsCertFile: join(dir, 'kwok.crt'),
      tlsPrivateKeyFile: join(dir, 'kwok.key'),
      enableDebuggingHandlers: true,
      // Without them kwok v0.8.0 exits at start: "playStageParallelism must be greater than 0".
      podPlayStageParallelism: 4,
      nodePlayStageParallelism: 4,
    },
  };
  const stages = BINARIES.kwokStages().map((f) => readFileSync(f, 'utf8'));
  const config = join(dir, 'kwok.yaml');
  writeFileSync(config, [stringify(configuration), ...stages, ...rules.map((r) => stringify(r))].join('\n---\n'));
  const peer = spawnPeer('kwok', BINARIES.kwok(), ['--kubeconfig', api.kubeconfig(api.admin, 'kwok'), '--config', config], { dir, env: { HOME: dir } });

  const created = await api.request(api.admin, '/api/v1/nodes', {
    method: 'POST',
    body: { apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { 'kubernetes.io/hostname': node, type: 'kwok' } } },
  });
  if (created.status !== 201) throw new Error(`creating node ${node}: ${created.status} ${JSON.stringify(created.body)}`);
  const ready = (conditions: Array<{ type: string; status: string }> = []) => conditions.some((c) => c.type === 'Ready' && c.status === 'True');
  await waitFor(`kwok node ${node} Ready`, async () => ready((await api.request(api.admin, `/api/v1/nodes/${node}`)).body?.status?.conditions), {
    peer,
    timeoutMs: 60_000,
  });

  return {
    node,
    dir,
    async createPod(namespace, name, opts = {}) {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace },
        spec: {
          nodeName: node,
          containers: [{ name: 'main', image: 'fake', ports: (opts.ports ?? []).map((containerPort) => ({ containerPort })) }],
        },
      };
      const res = await api.request(api.admin, `/api/v1/namespaces/${namespace}/pods`, { method: 'POST', body: pod });
      if (res.status !== 201) throw new Error(`creating pod ${namespace}/${name}: ${res.status} ${JSON.stringify(res.body)}`);
      await waitFor(
        `pod ${namespace}/${name} Running`,
        async () => (await api.request(api.admin, `/api/v1/namespaces/${namespace}/pods/${name}`)).body?.status?.phase === 'Running',
        {
          peer,
          timeoutMs: 60_000,
        },
      );
    },
    async deletePod(namespace, name) {
      await api.request(api.admin, `/api/v1/namespaces/${namespace}/pods/${name}?gracePeriodSeconds=0`, { method: 'DELETE' });
    },
    async stop() {
      await peer.stop();
    },
  };
}
