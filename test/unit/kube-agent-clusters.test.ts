// A Kubernetes agent's kubeconfig_file clusters (issue 21): what the server lets a kube agent write
// (policy, one module), and what ServedClusters registers and serves, on the in-memory backend.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { ServedClusters } from '../../src/kube/served-clusters.ts';
import { listResources, upsertResource } from '../../src/resources/store.ts';
import { refusal } from '../../src/server/auth/policy.ts';
import type { BackendCall } from '../../src/server/auth/backend-call.ts';
import type { HostCaller } from '../../src/server/call/caller.ts';
import type { KubeCluster } from '../../src/resources/kube-cluster.ts';

const kube: HostCaller = { hostId: 'k1', roles: ['kube'], group: '' };
const both: HostCaller = { hostId: 'k1', roles: ['discovery', 'kube'], group: 'prod' };
const KEY = (name: string) => `/resources/kube_cluster/${name}`;
const own = (name: string, host = 'k1', extra: { labels?: Record<string, string>; spec?: Record<string, unknown>; metadata?: Record<string, unknown> } = {}) =>
  JSON.stringify({
    kind: 'kube_cluster',
    version: 'v3',
    metadata: { name, labels: { env: 'lab', ...extra.labels, 'kport.dev/origin': 'kubeconfig', 'kport.internal/kube-agent-host-id': host }, ...extra.metadata },
    spec: extra.spec ?? {},
  });
const cloud = JSON.stringify({
  kind: 'kube_cluster',
  version: 'v3',
  metadata: { name: 'a', labels: { 'kport.dev/origin': 'cloud', 'kport.internal/discovery-group-name': 'prod' } },
  spec: { aws: { name: 'a', region: 'us-east-1', account_id: '123456789012' } },
});
const item = (key: string, value: string) => ({ key, value, revision: 7 });

test("a kube agent writes and deletes only kubeconfig_file clusters of its own, valid, at most 1,000, never another origin's", () => {
  const allowed: Array<[HostCaller, BackendCall, ReturnType<typeof item>?, number?]> = [
    [kube, { op: 'put', key: KEY('a'), value: own('a') }],
    [kube, { op: 'create', key: KEY('a'), value: own('a') }, undefined, 999],
    [kube, { op: 'cas', key: KEY('a'), value: own('a', 'k1', { labels: { env: 'b' } }), revision: 7 }, item(KEY('a'), own('a'))],
    [kube, { op: 'delete', key: KEY('a'), revision: 7 }, item(KEY('a'), own('a'))],
    [both, { op: 'put', key: KEY('a'), value: own('a') }],
    // A replacement of its own record past the count is no new record.
    [kube, { op: 'put', key: KEY('a'), value: own('a') }, item(KEY('a'), own('a')), 1000],
  ];
  for (const [caller, call, current, count] of allowed) assert.equal(refusal(caller, call, current, count), undefined, JSON.stringify(call));
  const refused: Array<[BackendCall, RegExp, ReturnType<typeof item>?, number?]> = [
    [{ op: 'put', key: KEY('a'), value: own('a') }, /may not replace .*not a cluster of its kubeconfig_file; rename that context/, item(KEY('a'), cloud)],
    [{ op: 'delete', key: KEY('a') }, /may not write kube_cluster/, item(KEY('a'), cloud)],
    [{ op: 'put', key: KEY('a'), value: own('a') }, /Kubernetes agent k2's/, item(KEY('a'), own('a', 'k2'))],
    [{ op: 'delete', key: KEY('a') }, /Kubernetes agent k2's/, item(KEY('a'), own('a', 'k2'))],
    [{ op: 'put', key: KEY('a'), value: own('a', 'k2') }, /labelled with its own host id k1/],
    [{ op: 'put', key: KEY('b'), value: own('a') }, /names a but writes/],
    [{ op: 'create', key: KEY('a'), value: own('a') }, /at most 1000 kubeconfig_file clusters; it has 1000/, undefined, 1000],
    [{ op: 'put', key: KEY('a'), value: own('a', 'k1', { spec: { kubeconfig: 'apiVersion: v1' } }) }, /not a valid kube_cluster/],
    [
      { op: 'put', key: KEY('a'), value: own('a', 'k1', { spec: { aws: { name: 'a', region: 'us-east-1', account_id: '123456789012' } } }) },
      /exactly one of|neither spec.aws/,
    ],
    [{ op: 'put', key: KEY('a'), value: own('a', 'k1', { labels: { env: 'lab\u001b[2J' } }) }, /not valid|printable|control/],
    [{ op: 'put', key: KEY('a'), value: own('a', 'k1', { metadata: { expires: '2030-01-01T00:00:00Z' } }) }, /without metadata.expires/],
    [{ op: 'put', key: KEY('a'), value: own('a'), ttl_ms: 1000 }, /do not expire/],
    [{ op: 'put', key: KEY('a'), value: own('a'), fence: { key: '/leaders/discovery/prod', value: 'k1/x' } }, /without a fence/],
    // Without the kubeconfig origin a kube agent is no discovery agent.
    [{ op: 'put', key: KEY('a'), value: cloud }, /only discovery agents do/],
  ];
  for (const [call, why, current, count] of refused) assert.match(refusal(kube, call, current, count ?? 0) ?? 'allowed', why, JSON.stringify(call));
  // A discovery agent never takes a kubeconfig_file cluster over (not a cloud cluster of its group).
  assert.match(
    refusal(
      { hostId: 'd1', roles: ['discovery'], group: 'prod' },
      { op: 'put', key: KEY('a'), value: cloud, fence: { key: '/leaders/discovery/prod', value: 'd1/x' } },
      item(KEY('a'), own('a')),
    ) ?? 'allowed',
    /not a cloud cluster/,
  );
});

function kubeconfig(dir: string, contexts: string[]): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: contexts.map((c) => ({ name: c, cluster: { server: `https://127.0.0.1:6443/${c}`, 'certificate-authority': 'ca.crt' } })),
      users: [
        { name: 'u', user: { token: 'secret-token' } },
        { name: 'execer', user: { exec: { command: 'aws' } } },
      ],
      contexts: [
        ...contexts.map((c) => ({ name: c, context: { cluster: c, user: 'u' } })),
        { name: 'with-exec', context: { cluster: contexts[0], user: 'execer' } },
        { name: 'arn:aws:eks:x', context: { cluster: contexts[0], user: 'u' } },
      ],
    }),
  );
  return path;
}

test("ServedClusters registers each usable context as a kube_cluster without its kubeconfig, serves them, removes those that left the file, and never overwrites another origin's", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kport-served-'));
  writeFileSync(join(dir, 'ca.crt'), 'not read until a request');
  const backend = new MemoryBackend();
  await upsertResource(backend, JSON.parse(cloud.replace(/"a"/g, '"gamma"')) as KubeCluster);
  const warnings: string[] = [];
  const path = kubeconfig(dir, ['alpha', 'beta', 'gamma']);
  const served = new ServedClusters({
    backend,
    hostId: 'k1',
    service: { enabled: true, resources: [], labels: { env: 'lab' }, kubeconfig_file: path },
    kubeconfigFile: path,
    warn: (m) => warnings.push(m),
  });
  await served.refresh();
  const stored = async () => Object.fromEntries((await listResources<KubeCluster>(backend, 'kube_cluster')).map((c) => [c.metadata.name, c]));
  let now = await stored();
  assert.deepEqual(Object.keys(now).sort(), ['alpha', 'beta', 'gamma']);
  assert.deepEqual(now.alpha!.spec, {}, 'no kubeconfig, no aws: the kubeconfig stays at the agent');
  assert.deepEqual(now.alpha!.metadata.labels, { env: 'lab', 'kport.dev/origin': 'kubeconfig', 'kport.internal/kube-agent-host-id': 'k1' });
  assert.ok(now.gamma!.spec.aws, 'the discovered gamma is as it was');
  assert.deepEqual(served.names(), ['alpha', 'beta']);
  assert.ok(
    warnings.some((w) => /kube_cluster "gamma" already exists \(discovered from AWS\), so context "gamma" .* is not served: rename the context/.test(w)),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.some((w) => /context "with-exec": exec credential plugins are not supported/.test(w)),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.some((w) => /context "arn:aws:eks:x": it cannot name a kube_cluster/.test(w)),
    warnings.join('\n'),
  );
  const up = await served.upstream('alpha');
  assert.equal(up?.url.href, 'https://127.0.0.1:6443/alpha');
  assert.equal(await up?.authorization(), 'Bearer secret-token');
  assert.equal(await served.upstream('gamma'), undefined, 'not ours: the discovered one is served by its own agents');
  assert.equal(await served.upstream('nope'), undefined);

  // The file loses beta: its record goes, alpha stays at the same revision.
  const alphaRevision = now.alpha!.metadata.revision;
  await new Promise((r) => setTimeout(r, 20));
  kubeconfig(dir, ['alpha', 'gamma']);
  await served.refresh();
  now = await stored();
  assert.deepEqual(Object.keys(now).sort(), ['alpha', 'gamma']);
  assert.equal(now.alpha!.metadata.revision, alphaRevision, 'an unchanged record is not rewritten');
  assert.equal(await served.upstream('beta'), undefined);

  // Another agent's cluster of the same name is left alone too.
  const other = new ServedClusters({
    backend,
    hostId: 'k2',
    service: { enabled: true, resources: [{ labels: { '*': '*' } }], labels: {}, kubeconfig_file: path },
    kubeconfigFile: path,
    warn: (m) => warnings.push(m),
  });
  await other.refresh();
  assert.equal((await stored()).alpha!.metadata.labels?.['kport.internal/kube-agent-host-id'], 'k1');
  assert.ok(warnings.some((w) => /"alpha" already exists \(registered by Kubernetes agent k1 with other labels\)/.test(w)));
  assert.equal(await other.upstream('alpha'), undefined, "k2 never serves k1's cluster, whatever its resources select");

  // An agent with the same kubeconfig_file and the same labels serves k1's clusters with it (high availability), and rewrites nothing.
  const before = JSON.stringify(await stored());
  const twin = new ServedClusters({
    backend,
    hostId: 'k3',
    service: { enabled: true, resources: [], labels: { env: 'lab' }, kubeconfig_file: path },
    kubeconfigFile: path,
    warn: (m) => warnings.push(m),
  });
  await twin.refresh();
  assert.deepEqual(twin.names(), ['alpha'], 'alpha served with k1; gamma is still the discovered one');
  assert.equal((await twin.upstream('alpha'))?.url.href, 'https://127.0.0.1:6443/alpha');
  assert.equal(JSON.stringify(await stored()), before, "k1's record is left as it was");
  assert.ok(
    warnings.some((w) =>
      /"alpha" already exists \(registered by Kubernetes agent k1 with other labels\), .*: rename the context, or give this agent the same kubernetes_service.labels/.test(
        w,
      ),
    ),
    warnings.join('\n'),
  );
});

test('a kubeconfig_file that cannot be read stops the service at start with a sentence naming the key', () => {
  const backend = new MemoryBackend();
  assert.throws(
    () =>
      new ServedClusters({
        backend,
        hostId: 'k1',
        service: { enabled: true, resources: [], labels: {} },
        kubeconfigFile: '/nonexistent/kubeconfig',
        warn: () => {},
      }),
    /kubernetes_service.kubeconfig_file \/nonexistent\/kubeconfig cannot be read \(no such file\): correct the path/,
  );
});
