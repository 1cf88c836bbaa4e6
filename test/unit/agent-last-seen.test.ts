// An agent's record says where and when it was last heard from without a store write per minute
// (issue 29: at 10,000 agents, once a minute was 167 writes a second): rewritten when its address
// changes, else at most every 10 minutes, timed by the record so every server of a store agrees.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { AGENT, type Agent } from '../../src/resources/agent.ts';
import { resourceKey } from '../../src/resources/resource.ts';
import { encodeResource } from '../../src/resources/store.ts';
import { AgentCalls } from '../../src/server/auth/agent-calls.ts';

test('last_seen: rewritten when the address changes or 10 minutes after the record says, never at every call; two servers agree', async () => {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const backend = new MemoryBackend({ now: () => now });
  const agent: Agent = {
    kind: AGENT,
    version: 'v1',
    metadata: { name: 'h1' },
    spec: {
      host_id: 'h1',
      hostname: 'vm',
      roles: ['kube'],
      joined: new Date(now).toISOString(),
      token_name: 'tok',
      credential_type: 'x509',
      credential_hash: 'kh',
      address: '10.0.0.1:5000',
      last_seen: new Date(now).toISOString(),
    },
  };
  await backend.put(resourceKey(AGENT, 'h1'), encodeResource(agent));
  const server = () =>
    new AgentCalls({ backend, audit: {} as never, now: () => new Date(now), watches: {} as never, kube: { cluster: () => undefined, sameJoin: () => false } });
  const [a, b] = [server(), server()];
  const caller = { hostId: 'h1', roles: ['kube'], group: '', keyHash: 'kh', notAfter: now + 86_400_000 };
  const revision = async () => (await backend.get(resourceKey(AGENT, 'h1')))!.revision;
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  const first = await revision();
  // A call every 30 s for 9.5 minutes, alternating servers, from another port of the same address: no write.
  for (let i = 0; i < 19; i++) {
    now += 30_000;
    await (i % 2 ? a : b).caller(caller, `10.0.0.1:${6000 + i}`);
    await settle();
  }
  assert.equal(await revision(), first, 'no write within 10 minutes from the same address');
  // Past 10 minutes: one write, through whichever server is asked; the other then agrees it is fresh.
  now += 60_000;
  await a.caller(caller, '10.0.0.1:7000');
  await settle();
  const refreshed = await revision();
  assert.ok(refreshed > first);
  await b.caller(caller, '10.0.0.1:7001');
  await settle();
  assert.equal(await revision(), refreshed);
  // Another address: written at once.
  now += 1000;
  await b.caller(caller, '10.0.0.2:7000');
  await settle();
  const moved = JSON.parse((await backend.get(resourceKey(AGENT, 'h1')))!.value) as Agent;
  assert.equal(moved.spec.address, '10.0.0.2:7000');
  assert.equal(moved.spec.last_seen, new Date(now).toISOString());
});
