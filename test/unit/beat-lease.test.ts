// A kube_server heartbeat is stored on a lease: an unchanged one only keeps the lease alive (no
// store revision), a changed one, or one RECORD_REFRESH_MS after the last write, rewrites it, and
// the record goes one TTL after the last heartbeat (issue 29: store writes at 10,000 agents).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { RECORD_REFRESH_MS, storeHeartbeat } from '../../src/server/auth/beat-lease.ts';

const KEY = '/resources/kube_server/h1';
const TTL = 90_000;
const beat = (clusters: string[], at: number) =>
  JSON.stringify({
    kind: 'kube_server',
    version: 'v1',
    metadata: { name: 'h1', description: 'd', expires: new Date(at + TTL).toISOString() },
    spec: { host_id: 'h1', hostname: 'vm', clusters, started: 'then', last_heartbeat: new Date(at).toISOString() },
  });

test('kube_server heartbeats: written on change or every RECORD_REFRESH_MS, kept alive by their lease in between, gone one TTL after the last', async () => {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const backend = new MemoryBackend({ now: () => now });
  const put = async () => storeHeartbeat(backend, KEY, beat(['a'], now), TTL, await backend.get(KEY), now);

  const first = await put();
  assert.ok(first?.lease, 'on a lease');
  assert.equal(JSON.parse(first.value).metadata.expires, undefined, 'no expiry in the record: its lease is its life');
  // Unchanged beats every 30 s for longer than the TTL: no new revision, and the record lives on.
  for (let i = 0; i < 6; i++) {
    now += 30_000;
    assert.equal((await put())?.revision, first.revision);
  }
  assert.equal((await backend.get(KEY))?.revision, first.revision, 'kept alive past its TTL without a write');
  // What it says changed: written at once, on the same lease.
  now += 30_000;
  const changed = await storeHeartbeat(backend, KEY, beat(['a', 'b'], now), TTL, await backend.get(KEY), now);
  assert.ok(changed && changed.revision > first.revision);
  assert.equal(changed.lease, first.lease);
  assert.equal(JSON.parse(changed.value).spec.last_heartbeat, new Date(now).toISOString(), "the server's time of the write");
  // Unchanged for RECORD_REFRESH_MS: rewritten, so Last Heartbeat is never older than that.
  let rewritten = changed;
  for (let waited = 0; waited <= RECORD_REFRESH_MS; waited += 30_000) {
    now += 30_000;
    rewritten = (await storeHeartbeat(backend, KEY, beat(['a', 'b'], now), TTL, await backend.get(KEY), now))!;
  }
  assert.ok(rewritten.revision > changed.revision, 'refreshed');
  assert.ok(now - Date.parse(JSON.parse((await backend.get(KEY))!.value).spec.last_heartbeat) < RECORD_REFRESH_MS);
  // The agent stops: gone one TTL later; its next heartbeat writes it again on a new lease.
  now += TTL + 1;
  assert.equal(await backend.get(KEY), undefined);
  const again = await put();
  assert.ok(again?.lease && again.lease !== first.lease);
});
