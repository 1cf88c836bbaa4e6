// The public half of the server's kube_identity key reaches Kubernetes agents (issue 21): in the join
// answer, kept in identity.json; an identity from before (without it) renews at start to get it.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { loadAuthorities } from '../../src/server/auth/authorities.ts';
import { kubeIdentityKey } from '../../src/join/network-identity.ts';
import { newSessionId, signIdentity, verifyIdentity } from '../../src/reversetunnel/identity.ts';
import { auditEvents, networkAgent, startServer } from '../helpers/network.ts';
import { startMoto } from '../peers/moto.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

test("a Kubernetes agent keeps the server's kube_identity certificate from its join; one whose identity lacks it renews at start and gets it", {
  timeout: 180_000,
}, async (t) => {
  if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
  const moto = await startMoto();
  const server = await startServer();
  const agent = await networkAgent(moto, server, {
    name: 'kube-id',
    group: 'kid',
    matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'none' } }],
    kubernetes: { enabled: 'yes', resources: [{ labels: { env: 'none' } }] },
  });
  const path = join(agent.dataDir, 'identity', 'identity.json');
  const identity = () => JSON.parse(readFileSync(path, 'utf8')) as { roles: string[]; credential: { kube_identity?: string; ca: string } };
  try {
    agent.start();
    await waitFor('the agent to join', async () => existsSync(path) || undefined, { timeoutMs: 60_000 });
    const joined = identity();
    assert.deepEqual(joined.roles, ['discovery', 'kube']);
    const pem = joined.credential.kube_identity;
    assert.ok(pem, 'the join answer carried kube_identity');
    // It is the server's own: what the server signs with its kube_identity key (sealed in its store) verifies with it.
    const store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
    let signer: CryptoKey;
    try {
      signer = (await loadAuthorities(store, join(server.dir, 'data'))).authorities.kube_identity.keys.privateKey;
    } finally {
      await store.close();
    }
    const claims = {
      person: 'alice',
      kubeUser: 'alice',
      kubeGroups: ['dev'],
      cluster: 'c',
      hostId: 'h',
      sessionId: newSessionId(),
      certExpires: Date.now() + 60_000,
    };
    const key = kubeIdentityKey({ credential: { kube_identity: pem } } as Parameters<typeof kubeIdentityKey>[0])();
    assert.ok(key);
    assert.equal((await verifyIdentity(key, (await signIdentity(signer, claims)).token, { hostId: 'h' })).person, 'alice');
    const { generateKeyPair } = await import('jose');
    const forged = await signIdentity((await generateKeyPair('ES256')).privateKey, claims);
    await assert.rejects(verifyIdentity(key, forged.token, { hostId: 'h' }), /signature verification failed/);
    assert.notEqual(new X509Certificate(pem).fingerprint256, new X509Certificate(joined.credential.ca).fingerprint256, 'not the server TLS CA');

    // An identity from before tunnels: the same agent, restarted without the key.
    agent.proc?.kill('SIGKILL');
    await agent.proc?.catch(() => undefined);
    const old = identity();
    delete old.credential.kube_identity;
    writeFileSync(path, JSON.stringify(old), { mode: 0o600 });
    const renewalsBefore = (await auditEvents(server)).filter((e) => e.spec.type === 'agent.renew').length;
    agent.start();
    const again = await waitFor('the early renewal to bring the key', async () => identity().credential.kube_identity, { timeoutMs: 60_000 });
    assert.equal(again, pem);
    assert.equal((await auditEvents(server)).filter((e) => e.spec.type === 'agent.renew' && e.spec.outcome === 'allowed').length, renewalsBefore + 1);
    assert.ok(agent.alive, agent.log);
  } finally {
    agent.proc?.kill('SIGKILL');
    await agent.proc?.catch(() => undefined);
    await server.stop('SIGKILL');
    await moto.stop();
  }
});
