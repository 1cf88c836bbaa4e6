// Which agents the routing picks for a cluster (src/server/kubeproxy/kube-agents.ts), on the in-memory backend
// and real loopback tunnels: heartbeats written straight to the store, as the server's policy would
// never let a claim through, so this checks the routing's own rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { KUBE_CLUSTER, LABEL, KUBECONFIG_ORIGIN, type KubeCluster } from '../../src/resources/kube-cluster.ts';
import { KUBE_SERVER } from '../../src/resources/kube-server.ts';
import { AGENT } from '../../src/resources/agent.ts';
import { upsertResource } from '../../src/resources/store.ts';
import { KubeAgents } from '../../src/server/kubeproxy/kube-agents.ts';
import { openLoopbackTunnel } from '../../src/reversetunnel/loopback-tunnel.ts';
import { TunnelRegistry } from '../../src/reversetunnel/tunnel-registry.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';
import { waitFor } from '../peers/process.ts';

test('a heartbeat claims nothing by itself: a kubeconfig_file cluster goes only to its agent, a static one only to the server, an EKS one to every agent that lists it', async () => {
  const backend = new MemoryBackend();
  const hub = new WatchHub(backend);
  const tunnels = new TunnelRegistry();
  const closes = ['agent-a', 'agent-b', 'server-host'].map((host) => openLoopbackTunnel(tunnels, host, () => {}));
  const agents = new KubeAgents(backend, hub, tunnels, 'server-host');
  try {
    const cluster = (name: string, spec: KubeCluster['spec'], labels: Record<string, string> = {}): KubeCluster => ({
      kind: KUBE_CLUSTER,
      version: 'v3',
      metadata: { name, labels },
      spec,
    });
    const alpha = cluster('alpha', {}, { [LABEL.origin]: KUBECONFIG_ORIGIN, [LABEL.agentHost]: 'agent-a' });
    const statik = cluster('static', { kubeconfig: 'apiVersion: v1' });
    const eks = cluster('eks', { aws: { name: 'eks', region: 'us-east-1', account_id: '123456789012' } });
    const bare = cluster('bare', {});
    const all = ['alpha', 'static', 'eks', 'bare'];
    // Every host claims every cluster.
    for (const host of ['agent-a', 'agent-b', 'server-host']) {
      await upsertResource(backend, {
        kind: KUBE_SERVER,
        version: 'v1',
        metadata: { name: host, expires: new Date(Date.now() + 90_000).toISOString() },
        spec: { host_id: host, hostname: 'h', clusters: all, started: new Date().toISOString() },
      });
    }
    await agents.ready;
    await waitFor('the heartbeats seen', async () => agents.candidates(eks).length === 3, { timeoutMs: 5000 });
    const sorted = (c: KubeCluster) => agents.candidates(c).sort();
    assert.deepEqual(sorted(alpha), ['agent-a']);
    assert.deepEqual(sorted(statik), ['server-host']);
    assert.deepEqual(sorted(eks), ['agent-a', 'agent-b', 'server-host']);
    assert.deepEqual(sorted(bare), []);
    // Still only the agent that registered it, and only while its heartbeat lists it.
    await upsertResource(backend, {
      kind: KUBE_SERVER,
      version: 'v1',
      metadata: { name: 'agent-a', expires: new Date(Date.now() + 90_000).toISOString() },
      spec: { host_id: 'agent-a', hostname: 'h', clusters: ['eks'], started: new Date().toISOString() },
    });
    await waitFor("agent-a's new heartbeat seen", async () => agents.candidates(alpha).length === 0, { timeoutMs: 5000 });
  } finally {
    agents.close();
    hub.close();
    for (const close of closes) close();
  }
});

test("agents joined with one token are one service: they serve each other's kubeconfig_file clusters; an agent of another token does not", async () => {
  const backend = new MemoryBackend();
  const hub = new WatchHub(backend);
  const tunnels = new TunnelRegistry();
  const hosts = ['agent-a', 'agent-a2', 'agent-b'];
  const closes = hosts.map((host) => openLoopbackTunnel(tunnels, host, () => {}));
  const agents = new KubeAgents(backend, hub, tunnels, 'server-host');
  try {
    const tokens: Record<string, string> = { 'agent-a': 'tok-ha', 'agent-a2': 'tok-ha', 'agent-b': 'tok-other' };
    for (const host of hosts) {
      await upsertResource(backend, {
        kind: AGENT,
        version: 'v1',
        metadata: { name: host },
        spec: { host_id: host, hostname: 'h', roles: ['kube'], joined: new Date().toISOString(), token_name: tokens[host]!, credential_hash: 'x' },
      });
      await upsertResource(backend, {
        kind: KUBE_SERVER,
        version: 'v1',
        metadata: { name: host, expires: new Date(Date.now() + 90_000).toISOString() },
        spec: { host_id: host, hostname: 'h', clusters: ['alpha'], started: new Date().toISOString() },
      });
    }
    const alpha: KubeCluster = {
      kind: KUBE_CLUSTER,
      version: 'v3',
      metadata: { name: 'alpha', labels: { [LABEL.origin]: KUBECONFIG_ORIGIN, [LABEL.agentHost]: 'agent-a' } },
      spec: {},
    };
    await agents.ready;
    await waitFor('both agents of the token serving alpha', async () => agents.candidates(alpha).length === 2, { timeoutMs: 5000 });
    assert.deepEqual(agents.candidates(alpha).sort(), ['agent-a', 'agent-a2']);
    assert.equal(agents.sameJoin('agent-a', 'agent-b'), false);
  } finally {
    agents.close();
    hub.close();
    for (const close of closes) close();
  }
});

test('with proxy peering, an agent with a tunnel here comes first, then those another live server reaches; one neither holds, or whose heartbeat expired, is no candidate', async () => {
  const backend = new MemoryBackend();
  const hub = new WatchHub(backend);
  const tunnels = new TunnelRegistry();
  const closes = [openLoopbackTunnel(tunnels, 'local', () => {})];
  const reached = new Set(['peered', 'peered-2', 'expired']);
  // peered-2's tunnel records name two servers: it is listed once per holder, the two together (PeerClients.open takes the next holder).
  const agents = new KubeAgents(backend, hub, tunnels, 'server-host', Date.now, { holders: (host) => (reached.has(host) ? (host === 'peered-2' ? 2 : 1) : 0) });
  try {
    const eks: KubeCluster = {
      kind: KUBE_CLUSTER,
      version: 'v3',
      metadata: { name: 'eks' },
      spec: { aws: { name: 'eks', region: 'us-east-1', account_id: '123456789012' } },
    };
    for (const host of ['local', 'peered', 'peered-2', 'expired', 'nowhere']) {
      const expires = host === 'expired' ? Date.now() - 1000 : Date.now() + 90_000;
      await upsertResource(backend, {
        kind: KUBE_SERVER,
        version: 'v1',
        metadata: { name: host, expires: new Date(expires).toISOString() },
        spec: { host_id: host, hostname: 'h', clusters: ['eks'], started: new Date().toISOString() },
      });
    }
    await agents.ready;
    await waitFor('the heartbeats seen', async () => agents.candidates(eks).length === 4, { timeoutMs: 5000 });
    for (let i = 0; i < 20; i++) {
      const hosts = agents.candidates(eks);
      assert.equal(hosts[0], 'local');
      assert.ok(['local,peered,peered-2,peered-2', 'local,peered-2,peered-2,peered'].includes(hosts.join(',')), hosts.join(','));
    }
    reached.delete('peered');
    assert.deepEqual(agents.candidates(eks).sort(), ['local', 'peered-2', 'peered-2']);
  } finally {
    agents.close();
    hub.close();
    for (const close of closes) close();
  }
});
