// Issue 21: a Kubernetes agent's own kubeconfig_file. A real `kport server start`, an agent
// (`kport discover run`, the built CLI) that joins it with the kube role: each context becomes a
// kube_cluster it registers through the server, without the kubeconfig; its kube_server heartbeat
// names them; a context removed from the file is removed; another origin's cluster of the same name
// is never overwritten; `kport get kube_server` shows the agent; `agents rm` removes its clusters.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { networkAgent, pinnedCa, serverClusters, startServer, type NetworkAgent, type TestServer } from '../helpers/network.ts';
import { createCsr, generateKeys, keyPem } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import { ServerClient } from '../../src/client/server-client.ts';

function writeKubeconfig(path: string, contexts: string[]): void {
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: contexts.map((c) => ({ name: c, cluster: { server: `https://127.0.0.1:1/${c}` } })),
      users: [{ name: 'u', user: { token: 'agent-only-secret' } }],
      contexts: contexts.map((c) => ({ name: c, context: { cluster: c, user: 'u' } })),
    }),
    { mode: 0o600 },
  );
}

describe('a Kubernetes agent serves the contexts of its own kubeconfig_file', { concurrency: false, timeout: 300_000 }, () => {
  let moto: Moto;
  let server: TestServer;
  let agent: NetworkAgent;
  let kubeconfig: string;
  before(async (t) => {
    if (!havePeer(t as never, 'moto', [BINARIES.motoServer()])) return;
    moto = await startMoto();
    server = await startServer();
    // A static cluster an editor created, whose name the agent's file also uses.
    const staticFile = join(server.dir, 'gamma.yaml');
    writeFileSync(
      staticFile,
      stringify({
        kind: 'kube_cluster',
        version: 'v3',
        metadata: { name: 'gamma', labels: { team: 'ops' } },
        spec: {
          kubeconfig: stringify({
            apiVersion: 'v1',
            clusters: [{ name: 'g', cluster: { server: 'https://127.0.0.1:2' } }],
            users: [{ name: 'g', user: { token: 't' } }],
            contexts: [{ name: 'g', context: { cluster: 'g', user: 'g' } }],
            'current-context': 'g',
          }),
        },
      }),
    );
    const created = await server.kport(['create', '-f', staticFile]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    const dir = tempDir('kubeconfig-agent');
    kubeconfig = join(dir, 'clusters.kubeconfig');
    writeKubeconfig(kubeconfig, ['alpha', 'beta', 'gamma']);
    agent = await networkAgent(moto, server, {
      name: 'kc',
      group: 'kc',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'none' } }],
      pollInterval: '1m',
      kubernetes: { enabled: 'yes', kubeconfig_file: kubeconfig, labels: { env: 'lab' } },
    });
    agent.start();
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) process.stderr.write(`--- agent\n${agent?.log}\n--- server\n${server?.log.slice(-3000)}\n`);
    agent?.proc?.kill('SIGKILL');
    await agent?.proc?.catch(() => undefined);
    await server?.stop('SIGKILL');
    await moto?.stop();
  });

  const byName = async () => Object.fromEntries((await serverClusters(server)).map((c) => [c.metadata.name, c]));
  const heartbeat = async () => {
    const res = await server.kport(['get', 'kube_server', '-o', 'json']);
    return (JSON.parse(String(res.stdout)) as Array<{ spec: { host_id: string; hostname: string; clusters: string[]; last_heartbeat?: string } }>).find(
      (k) => k.spec.host_id === agent.hostId(),
    );
  };

  test("each context is a kube_cluster labelled by kubernetes_service.labels, without its kubeconfig; the heartbeat names them; gamma stays the editor's", async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const clusters = await waitFor(
      'alpha and beta registered',
      async () => {
        const now = await byName();
        return now.alpha && now.beta ? now : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const hostId = agent.hostId();
    for (const name of ['alpha', 'beta']) {
      assert.deepEqual(clusters[name]!.spec, {}, `${name}: no kubeconfig and no aws in the server's store`);
      assert.deepEqual(clusters[name]!.metadata.labels, { env: 'lab', 'kport.dev/origin': 'kubeconfig', 'kport.internal/kube-agent-host-id': hostId });
    }
    assert.deepEqual(clusters.gamma!.metadata.labels, { team: 'ops' }, 'the static gamma is as the editor made it');
    assert.equal(clusters.gamma!.spec.kubeconfig, '<redacted>');
    assert.match(
      agent.log,
      /kube_cluster "gamma" already exists \(a static cluster created with kport create\), so context "gamma" of kubernetes_service.kubeconfig_file is not served: rename the context/,
    );
    const beat = await waitFor(
      'the heartbeat to name alpha and beta',
      async () => ((await heartbeat())?.spec.clusters.join() === 'alpha,beta' ? heartbeat() : undefined),
      { timeoutMs: 45_000 },
    );
    assert.ok(beat?.spec.last_heartbeat && Math.abs(Date.parse(beat.spec.last_heartbeat) - Date.now()) < 120_000, JSON.stringify(beat));
    // The table, piped: host id, hostname, clusters, and the last heartbeat as RFC 3339.
    const table = await server.kport(['get', 'kube_server']);
    assert.equal(table.exitCode, 0, String(table.stderr));
    const row = String(table.stdout)
      .split('\n')
      .find((l) => l.startsWith(hostId));
    assert.match(row ?? '', new RegExp(`^${hostId}\\t${beat!.spec.hostname}\\talpha,beta\\t\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`), String(table.stdout));
    // No secret of the file ever reached the server's store.
    assert.ok(!(await server.kport(['get', 'kube_cluster', '-o', 'yaml'])).stdout.includes('agent-only-secret'));
  });

  test('a context removed from the file: its kube_cluster goes and the heartbeat stops naming it', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    writeKubeconfig(kubeconfig, ['alpha', 'gamma']);
    await waitFor('beta removed', async () => (!(await byName()).beta ? true : undefined), { timeoutMs: 30_000 });
    await waitFor('the heartbeat to name only alpha', async () => ((await heartbeat())?.spec.clusters.join() === 'alpha' ? true : undefined), {
      timeoutMs: 30_000,
    });
    assert.ok(agent.alive, agent.log);
  });

  test("a kube agent's own calls: it may not overwrite a static cluster, carry a kubeconfig, or write another agent's record (403, nothing changes)", async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const ca = await pinnedCa(server);
    const pair = await generateKeys();
    const joiner = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
    const issued = await joiner.rawCall<{ host_id: string; cert: string }>('/v1/join', {
      token: await server.token('kube'),
      roles: ['kube'],
      hostname: 'raw-kube',
      csr: await createCsr(pair, 'raw-kube'),
    });
    joiner.close();
    const raw = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: issued.cert, key: await keyPem(pair.privateKey) });
    const record = (name: string, host: string, spec: Record<string, unknown> = {}) =>
      JSON.stringify({
        kind: 'kube_cluster',
        version: 'v3',
        metadata: { name, labels: { 'kport.dev/origin': 'kubeconfig', 'kport.internal/kube-agent-host-id': host } },
        spec,
      });
    const refused = async (body: unknown) => {
      const err = await raw.rawCall('/v1/backend', body).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApiError, `allowed: ${JSON.stringify(body)}`);
      assert.equal(err.status, 403);
      return err.message;
    };
    try {
      const before = JSON.stringify(await byName());
      assert.match(
        await refused({ op: 'put', key: '/resources/kube_cluster/gamma', value: record('gamma', issued.host_id) }),
        /may not replace \/resources\/kube_cluster\/gamma: it is not a cluster of its kubeconfig_file; rename that context/,
      );
      assert.match(await refused({ op: 'delete', key: '/resources/kube_cluster/gamma' }), /only discovery agents do/);
      assert.match(
        await refused({ op: 'put', key: '/resources/kube_cluster/alpha', value: record('alpha', issued.host_id) }),
        /Kubernetes agent .*'s; rename that context/,
      );
      assert.match(await refused({ op: 'put', key: '/resources/kube_cluster/mine', value: record('mine', agent.hostId()) }), /labelled with its own host id/);
      assert.match(
        await refused({
          op: 'put',
          key: '/resources/kube_cluster/mine',
          value: record('mine', issued.host_id, { aws: { name: 'x', region: 'us-east-1', account_id: '123456789012' } }),
        }),
        /not a valid kube_cluster|neither/,
      );
      assert.equal(JSON.stringify(await byName()), before, 'nothing changed');
      // Its own record, as the contract says: allowed.
      await raw.rawCall('/v1/backend', { op: 'put', key: '/resources/kube_cluster/mine', value: record('mine', issued.host_id) });
      assert.ok((await byName()).mine);
    } finally {
      raw.close();
    }
  });

  test("agents rm: the removed agent's clusters go with it", async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const rm = await server.kport(['agents', 'rm', agent.hostId()]);
    assert.equal(rm.exitCode, 0, String(rm.stderr));
    const now = await byName();
    assert.equal(now.alpha, undefined);
    assert.ok(now.gamma, "the editor's gamma stays");
  });
});
