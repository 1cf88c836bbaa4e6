// Network mode, part 1 (issue 12): a real `kport server start`, agents on their own data dirs that
// join it with a token and discover from moto through it, failover, a server killed mid-poll.
import assert from 'node:assert/strict';
import { randomUUID, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateClusterCommand, DeleteClusterCommand } from '@aws-sdk/client-eks';
import { createClusters, eksAdmin } from '../peers/aws.ts';
import type { Moto } from '../peers/moto.ts';
import { startEtcd } from '../peers/etcd.ts';
import { Etcd3 } from 'etcd3';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { setupAgent } from '../helpers/agent.ts';
import { fileMoto } from '../helpers/file-peers.ts';
import { auditEvents, networkAgent, serverClusters, startServer, waitForNetworkLeader, type NetworkAgent, type TestServer } from '../helpers/network.ts';

const OWN = '123456789012';
const prodMatchers = [{ types: ['eks'], regions: ['us-east-1', 'eu-west-1'], tags: { env: 'prod' } }];
const stagingMatchers = [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'staging' } }];
/** A resource as compared between modes: everything but the store's revision. */
const comparable = (rs: Array<{ metadata: Record<string, unknown> }>) =>
  JSON.stringify(rs.map((r) => ({ ...r, metadata: { ...r.metadata, revision: undefined } })));
const clusterNames = async (server: TestServer) => (await serverClusters(server)).map((c) => c.metadata.name).sort();

describe('network mode: agents that join a server and hold no store', { concurrency: false, timeout: 600_000 }, () => {
  let moto: Moto;
  let server: TestServer;
  const agents: NetworkAgent[] = [];
  before(async (t) => {
    if (!havePeer(t as never, 'moto', [BINARIES.motoServer()])) return;
    moto = await fileMoto();
    await createClusters(moto, [
      ...Array.from({ length: 12 }, (_, i) => ({ name: `p${i}`, region: i % 2 ? 'us-east-1' : 'eu-west-1', tags: { env: 'prod' } })),
      ...Array.from({ length: 4 }, (_, i) => ({ name: `s${i}`, region: 'us-east-1', tags: { env: 'staging' } })),
    ]);
    server = await startServer();
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) for (const a of agents) process.stderr.write(`--- ${a.name}\n${a.log.split('\n').slice(-20).join('\n')}\n`);
    if (process.env.KPORT_TEST_DEBUG) process.stderr.write(`--- server\n${server?.log.split('\n').slice(-30).join('\n')}\n`);
    for (const a of agents) a.proc?.kill('SIGKILL');
    await Promise.all(agents.map((a) => a.proc?.catch(() => undefined)));
    await server?.stop('SIGKILL');
  });

  test('two agents of one group and one of another discover through the server what local mode discovers; a killed leader is replaced within 2 lease TTLs', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    for (const name of ['a1', 'a2']) agents.push(await networkAgent(moto, server, { name, group: 'prod', matchers: prodMatchers }));
    agents.push(await networkAgent(moto, server, { name: 'b1', group: 'staging', matchers: stagingMatchers }));
    for (const a of agents) a.start();

    // The same clusters, labels and specs as local mode finds with the same matchers.
    const local = await setupAgent(moto, tempDir('local'), { group: 'prod', matchers: prodMatchers });
    for (const [group, matchers] of [
      ['prod', prodMatchers],
      ['staging', stagingMatchers],
    ] as const) {
      const other = await setupAgent(moto, local.dir, { group, name: group, matchers });
      const run = await other.kport(['discover', 'run', '--once', '-c', other.config]);
      assert.equal(run.exitCode, 0, String(run.stderr));
    }
    const localRes = await local.kport(['get', 'kube_cluster', '--format=json']);
    const expected = JSON.parse(String(localRes.stdout)) as Array<{ metadata: { name: string } }>;
    assert.equal(expected.length, 16);
    await waitFor('both groups to be discovered through the server', async () => comparable(await serverClusters(server)) === comparable(expected), {
      timeoutMs: 60_000,
    });

    // None of them opened a store: their data dirs hold only the identity (0600) and the lock.
    for (const a of agents) {
      const files = readdirSync(a.dataDir, { recursive: true }).map(String);
      assert.ok(!files.some((f) => /\.db|sqlite/.test(f)), `${a.name} has no store: ${files.join(', ')}`);
      for (const f of ['identity.json', 'key.pem']) assert.equal(statSync(join(a.dataDir, 'identity', f)).mode & 0o777, 0o600);
    }
    const listed = await server.kport(['agents', 'ls', '--format=json']);
    const records = JSON.parse(String(listed.stdout)) as Array<{
      spec: { host_id: string; hostname: string; roles: string[]; address?: string; last_seen?: string; credential_hash?: string };
    }>;
    assert.deepEqual(records.map((r) => r.spec.host_id).sort(), agents.map((a) => a.hostId()).sort());
    assert.ok(
      records.every(
        (r) => r.spec.roles.join() === 'discovery' && r.spec.address?.startsWith('127.0.0.1:') && r.spec.last_seen && r.spec.credential_hash === undefined,
      ),
    );

    // The leader of prod is killed; AWS changes; the other one takes over within two lease TTLs.
    const prod = agents.slice(0, 2);
    const leader = await waitForNetworkLeader(prod);
    const east = await eksAdmin(moto, 'us-east-1');
    await east.send(new DeleteClusterCommand({ name: 'p1' }));
    await east.send(new CreateClusterCommand({ name: 'p-new', roleArn: `arn:aws:iam::${OWN}:role/eks`, resourcesVpcConfig: {}, tags: { env: 'prod' } }));
    leader.proc!.kill('SIGKILL');
    const killedAt = Date.now();
    const successor = await waitForNetworkLeader(prod, { not: leader, timeoutMs: 20_000 });
    const failoverMs = Date.now() - killedAt;
    t.diagnostic(`failover through the server took ${failoverMs} ms with a 2000 ms lease`);
    assert.ok(failoverMs <= 2 * 2000 + 1000, `failover in ${failoverMs} ms`);
    const want = [...expected.map((c) => c.metadata.name).filter((n) => !n.startsWith('p1-')), `p-new-eks-us-east-1-${OWN}`].sort();
    await waitFor('the successor to reconcile', async () => JSON.stringify(await clusterNames(server)) === JSON.stringify(want), { timeoutMs: 30_000 });
    t.diagnostic(`${successor.name} took over from ${leader.name}`);
  });

  test('a server killed with SIGKILL mid-poll and restarted: agents resume without a token within 10 s; nothing lost or duplicated', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const running = agents.filter((a) => a.alive);
    assert.ok(running.length >= 2);
    // No token to fall back on: a restart must use the identity.
    for (const a of running) rmSync(join(a.dir, 'token'));
    const before = await clusterNames(server);
    const leader = await waitForNetworkLeader(running.filter((a) => a.name.startsWith('a')));
    const polls = (leader.log.match(/poll started/g) ?? []).length;
    await waitFor('a poll to start', async () => (leader.log.match(/poll started/g) ?? []).length > polls, { timeoutMs: 10_000 });
    await server.stop('SIGKILL');
    const east = await eksAdmin(moto, 'us-east-1');
    await east.send(new CreateClusterCommand({ name: 'p-after', roleArn: `arn:aws:iam::${OWN}:role/eks`, resourcesVpcConfig: {}, tags: { env: 'prod' } }));
    await east.send(new DeleteClusterCommand({ name: 's1' }));
    await server.start();
    const readyAt = Date.now();
    // Every agent is heard from again through the new server process within 10 s: its heartbeat was
    // written after the server was ready (a heartbeat's expiry is its write time plus its TTL).
    const ttlMs = 2 * 2000 + 60_000;
    const beatsAfterRestart = async () => {
      const res = await server.kport(['get', 'discovery_service', '--format=json']);
      const beats = JSON.parse(String(res.stdout)) as Array<{ spec: { host_id: string }; metadata: { expires: string } }>;
      return running.every((a) => beats.some((b) => b.spec.host_id === a.hostId() && Date.parse(b.metadata.expires) >= readyAt + ttlMs)) || undefined;
    };
    await waitFor('every agent to heartbeat through the restarted server', beatsAfterRestart, { timeoutMs: 10_000 });
    t.diagnostic(`every agent heartbeat again ${Date.now() - readyAt} ms after the restarted server was ready`);
    const want = [...before.filter((n) => !n.startsWith('s1-')), `p-after-eks-us-east-1-${OWN}`].sort();
    await waitFor('discovery to resume through the restarted server', async () => JSON.stringify(await clusterNames(server)) === JSON.stringify(want), {
      timeoutMs: 30_000,
    });
    const status = await server.kport(['get', 'discovery_service', '--format=json']);
    const beats = JSON.parse(String(status.stdout)) as Array<{ spec: { host_id: string }; metadata: { expires: string } }>;
    const resumedMs = Date.now() - readyAt;
    t.diagnostic(`discovery resumed ${resumedMs} ms after the restarted server was ready`);
    assert.ok(resumedMs <= 10_000 + 2_000 * 2, `resumed in ${resumedMs} ms`);
    for (const a of running) assert.ok(a.alive, `${a.name} survived the server restart`);
    for (const a of running)
      assert.ok(
        beats.some((b) => b.spec.host_id === a.hostId()),
        `${a.name} heartbeats`,
      );
  });
});

describe('network mode: host certificates are renewed at two thirds of their life', { timeout: 120_000 }, () => {
  test('an agent with a 6 s certificate renews it with the same key and roles and keeps working; kube_server heartbeats; the server runs discovery and kubernetes_service in-process when enabled', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const moto = await fileMoto();
    await createClusters(moto, [
      { name: 'r0', region: 'us-east-1', tags: { env: 'renew' } },
      { name: 'i0', region: 'us-east-1', tags: { env: 'inproc' } },
    ]);
    // The server discovers group "inproc" itself, on its own store, as Teleport's guide runs it.
    const server = await startServer({
      hostCertTtl: '6s',
      env: moto.env,
      discovery: {
        enabled: 'yes',
        discovery_group: 'inproc',
        poll_interval: '2s',
        leader_lease_ttl: '2s',
        aws: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'inproc' } }],
      },
      kubernetes: { enabled: 'yes', resources: [{ labels: { env: 'inproc' } }] },
    });
    // A discovery and Kubernetes agent: its certificate carries both roles.
    const agent = await networkAgent(moto, server, {
      name: 'renew',
      group: 'renew',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'renew' } }],
      kubernetes: { enabled: 'yes', resources: [{ labels: { env: 'renew' } }] },
    });
    try {
      agent.start();
      await waitFor('the agent to join', async () => existsSync(join(agent.dataDir, 'identity', 'identity.json')) || undefined, { timeoutMs: 30_000 });
      const identity = () =>
        JSON.parse(readFileSync(join(agent.dataDir, 'identity', 'identity.json'), 'utf8')) as {
          host_id: string;
          roles: string[];
          credential: { cert: string; expires: string };
        };
      const first = identity();
      const key = readFileSync(join(agent.dataDir, 'identity', 'key.pem'), 'utf8');
      await waitFor(
        'two renewals',
        async () => (await auditEvents(server)).filter((e) => e.spec.type === 'agent.renew' && e.spec.outcome === 'allowed').length >= 2 || undefined,
        { timeoutMs: 30_000 },
      );
      const renewed = identity();
      assert.notEqual(renewed.credential.cert, first.credential.cert, 'a new certificate');
      assert.equal(renewed.host_id, first.host_id);
      assert.deepEqual(renewed.roles, ['discovery', 'kube']);
      assert.equal(readFileSync(join(agent.dataDir, 'identity', 'key.pem'), 'utf8'), key, 'the same key');
      assert.ok(new X509Certificate(renewed.credential.cert).publicKey.equals(new X509Certificate(first.credential.cert).publicKey));
      // Past the first certificate's end, the agent still works on the renewed one.
      await sleep(Math.max(0, Date.parse(first.credential.expires) - Date.now()) + 500);
      assert.ok(agent.alive, agent.log);
      await waitFor(
        'both groups discovered',
        async () => JSON.stringify(await clusterNames(server)) === JSON.stringify([`i0-eks-us-east-1-${OWN}`, `r0-eks-us-east-1-${OWN}`]) || undefined,
        { timeoutMs: 20_000 },
      );
      // Each Kubernetes service says which clusters it serves: the agent its own, the server's in-process one its own.
      const served = async () => {
        const res = await server.kport(['get', 'kube_server', '-o', 'json']);
        return Object.fromEntries(
          (JSON.parse(String(res.stdout)) as Array<{ spec: { host_id: string; clusters: string[] } }>).map((k) => [k.spec.host_id, k.spec.clusters]),
        );
      };
      await waitFor(
        'both kube_server heartbeats to name their clusters',
        async () => {
          const now = await served();
          return (
            (now[renewed.host_id]?.join() === `r0-eks-us-east-1-${OWN}` && Object.values(now).some((c) => c.join() === `i0-eks-us-east-1-${OWN}`)) || undefined
          );
        },
        { timeoutMs: 40_000 },
      );
      const marks = agent.log.length;
      await waitFor('a poll after the first certificate expired', async () => /poll done/.test(agent.log.slice(marks)) || undefined, { timeoutMs: 10_000 });
    } finally {
      agent.proc?.kill('SIGKILL');
      await agent.proc?.catch(() => undefined);
      await server.stop('SIGKILL');
    }
  });
});

describe('network mode on etcd', { timeout: 180_000 }, () => {
  test('a server on etcd: an agent joins with a --uses 1 token and discovers; no etcd key holds a token secret, an agent key or a CA key in clear', async (t) => {
    if (!havePeer(t, 'etcd and moto', [BINARIES.etcd(), BINARIES.motoServer()])) return;
    const [moto, etcd] = await Promise.all([fileMoto(), startEtcd({ members: 1 })]);
    const prefix = `/kport-${randomUUID()}`;
    const server = await startServer({ storage: { type: 'etcd', peers: etcd.endpoints, prefix } });
    let agent: NetworkAgent | undefined;
    try {
      await createClusters(moto, [
        { name: 'e0', region: 'us-east-1', tags: { env: 'etcd' } },
        { name: 'e1', region: 'us-east-1', tags: { env: 'etcd' } },
      ]);
      const secret = await server.token('discovery', ['--uses=1']);
      agent = await networkAgent(moto, server, {
        name: 'etcd',
        group: 'etcd',
        token: secret,
        matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'etcd' } }],
      });
      const run = await agent.start(['discover', 'run', '--once']);
      assert.equal(run.exitCode, 0, agent.log);
      assert.deepEqual(await clusterNames(server), [`e0-eks-us-east-1-${OWN}`, `e1-eks-us-east-1-${OWN}`]);
      const tokens = await server.kport(['tokens', 'ls', '-o', 'json']);
      assert.deepEqual(JSON.parse(String(tokens.stdout)), [], 'the single use deleted the token in the join transaction');
      const client = new Etcd3({ hosts: etcd.endpoints });
      try {
        const all = await client.getAll().prefix(prefix).strings();
        assert.ok(Object.keys(all).some((k) => k.includes('/authorities/host')) && Object.keys(all).some((k) => k.includes('/resources/agent/')));
        const dump = JSON.stringify(all);
        const key = readFileSync(join(agent.dataDir, 'identity', 'key.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
        assert.ok(!dump.includes(secret), 'a token secret in etcd');
        assert.ok(!dump.includes(key.slice(0, 40)) && !dump.includes(key.slice(-40)), 'the agent key in etcd');
        assert.ok(!dump.includes('PRIVATE KEY'), 'a private key in clear in etcd');
      } finally {
        client.close();
      }
    } finally {
      agent?.proc?.kill('SIGKILL');
      await server.stop('SIGKILL');
      await etcd.stop();
    }
  });
});
