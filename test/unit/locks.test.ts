// Locks as records of their own (src/people/locks.ts), on the in-memory store: what holds them,
// whatever happens to the user record.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { activeLock, listLocks, lockUser, unlockUser } from '../../src/people/locks.ts';
import { checkNotLocked } from '../../src/people/login.ts';
import { addUser, removeUser } from '../../src/people/users.ts';
import { upsertResource } from '../../src/resources/store.ts';

const now = new Date('2026-03-01T12:00:00Z');
const at = (ms: number) => new Date(now.getTime() + ms);

test('a lock is keyed by the name in any case, outlives users rm and ends at its expiry even in a store that sweeps late', async () => {
  const backend = new MemoryBackend();
  await addUser(backend, { name: 'Alice', roles: ['access'] }, now);
  assert.deepEqual(await lockUser(backend, { name: 'ALICE', ttlMs: 60_000, message: 'm' }, now), { until: at(60_000).toISOString(), user_exists: true });
  assert.equal((await activeLock(backend, 'alice', now.getTime()))?.spec.user, 'ALICE');
  assert.ok(await activeLock(backend, 'Alice', now.getTime()));
  await removeUser(backend, 'Alice');
  assert.ok(await activeLock(backend, 'Alice', now.getTime()), 'still locked after users rm');
  assert.equal(await activeLock(backend, 'alice', at(60_000).getTime()), undefined, 'not past its expiry');
  assert.deepEqual(await listLocks(backend, at(60_000)), []);
  assert.equal((await lockUser(backend, { name: 'nobody' }, now)).user_exists, false, 'a name nobody has may be locked');
});

test('a lock set before names were compared without case is still found, and unlock lifts it whatever case it names', async () => {
  const backend = new MemoryBackend();
  await backend.put('/resources/lock/Bob', JSON.stringify({ kind: 'lock', version: 'v2', metadata: { name: 'Bob' }, spec: { created: now.toISOString() } }));
  assert.ok(await activeLock(backend, 'Bob', now.getTime()));
  assert.equal(await unlockUser(backend, 'bob', now), true);
  assert.equal(await activeLock(backend, 'Bob', now.getTime()), undefined);
  assert.equal(await unlockUser(backend, 'bob', now), false, 'nothing left to lift');
});

test('a lock records the OIDC subject of the user record and, given that subject at login, holds for the person under another name', async () => {
  const backend = new MemoryBackend();
  const oidc = { issuer: 'https://idp.example.com', subject: 'sub-123' };
  await upsertResource(backend, { kind: 'user', version: 'v2', metadata: { name: 'olga' }, spec: { roles: ['access'], auth: 'oidc', oidc } });
  await lockUser(backend, { name: 'olga' }, now);
  assert.equal(await activeLock(backend, 'olga-renamed', now.getTime()), undefined, 'by name alone, another name is another person');
  assert.equal((await activeLock(backend, 'olga-renamed', now.getTime(), oidc))?.spec.user, 'olga');
  assert.equal(
    await activeLock(backend, 'olga-renamed', now.getTime(), { ...oidc, issuer: 'https://other.example.com' }),
    undefined,
    'a subject counts only at its issuer',
  );
});

test('a login refused by a lock set under another name says which name to unlock', async () => {
  const backend = new MemoryBackend();
  const oidc = { issuer: 'https://idp.example.com', subject: 'sub-9' };
  await upsertResource(backend, { kind: 'user', version: 'v2', metadata: { name: 'olga' }, spec: { roles: ['access'], auth: 'oidc', oidc } });
  await lockUser(backend, { name: 'olga', message: 'on leave' }, now);
  await assert.rejects(checkNotLocked(backend, 'olgaz', now.getTime(), oidc), (err: Error) => {
    assert.match(
      err.message,
      /^user olgaz is locked \(locked as olga, the same account at the identity provider\) \(on leave\): ask an editor to run kport users unlock olga\.$/,
    );
    return true;
  });
  await assert.rejects(checkNotLocked(backend, 'Olga', now.getTime()), /user Olga is locked \(on leave\): ask an editor to run kport users unlock Olga\./);
});
