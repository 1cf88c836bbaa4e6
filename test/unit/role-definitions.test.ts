// The server's role definitions for people's calls: kept from the store's watch, decoded once per
// change of the stored roles; the server's own role writes seen at the very next call, another
// writer's as soon as the watch reports them.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { ROLE } from '../../src/resources/role.ts';
import { deleteResource, upsertResource } from '../../src/resources/store.ts';
import { ObservedBackend } from '../../src/server/cache/observed-backend.ts';
import { RoleDefinitions } from '../../src/server/cache/role-definitions.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';

const role = (name: string, env: string) =>
  ({ kind: ROLE, version: 'v7', metadata: { name }, spec: { allow: { kubernetes_labels: { env }, kubernetes_groups: ['developers'] } } }) as never;

test("RoleDefinitions: the same decoded map while no role changed; an edit, a new role and a removal by the server show at the next call, another writer's once the watch reports it", async () => {
  const store = new MemoryBackend();
  const hub = new WatchHub(store);
  const server = new ObservedBackend(store, hub);
  await upsertResource(store, role('dev', 'dev'));
  const roles = new RoleDefinitions({
    backend: server,
    hub,
    configRoles: [{ name: 'from-config', kubernetes_labels: { env: 'x' }, kubernetes_groups: [], kubernetes_users: [] } as never],
  });
  try {
    const first = await roles.current();
    assert.deepEqual(first.get('dev')?.spec.allow.kubernetes_labels, { env: 'dev' });
    assert.ok(first.has('from-config') && first.has('editor'), 'config and built-in roles too');
    assert.equal(await roles.current(), first, 'nothing changed: not decoded again');

    await upsertResource(server, role('dev', 'staging'));
    const edited = await roles.current();
    assert.deepEqual(edited.get('dev')?.spec.allow.kubernetes_labels, { env: 'staging' });

    await upsertResource(server, role('ops', 'prod'));
    assert.ok((await roles.current()).has('ops'));

    await deleteResource(server, ROLE, 'dev');
    assert.equal((await roles.current()).has('dev'), false);

    // Not through the server: the watch brings it.
    await upsertResource(store, role('elsewhere', 'prod'));
    const deadline = Date.now() + 1000;
    while (!(await roles.current()).has('elsewhere') && Date.now() < deadline) await sleep(10);
    assert.ok((await roles.current()).has('elsewhere'), 'within a second');
  } finally {
    roles.close();
    hub.close();
  }
});

test('RoleDefinitions: a stored role that is not even JSON denies everything rather than failing every call', async () => {
  const store = new MemoryBackend();
  const hub = new WatchHub(store);
  await store.put('/resources/role/broken', '{not json');
  const roles = new RoleDefinitions({ backend: store, hub, configRoles: [] });
  try {
    const broken = (await roles.current()).get('broken');
    assert.deepEqual(broken?.spec.deny?.kubernetes_labels, { '*': '*' });
  } finally {
    roles.close();
    hub.close();
  }
});
