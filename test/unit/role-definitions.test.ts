// The server's role definitions for people's calls: decoded once per change of the stored roles,
// and every change (edit, removal, a new role) seen at the very next call.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { ROLE } from '../../src/resources/role.ts';
import { deleteResource, upsertResource } from '../../src/resources/store.ts';
import { RoleDefinitions } from '../../src/server/role-definitions.ts';

const role = (name: string, env: string) => ({ kind: ROLE, version: 'v7', metadata: { name }, spec: { allow: { kubernetes_labels: { env }, kubernetes_groups: ['developers'] } } }) as never;

test('RoleDefinitions: the same decoded map while no role changed; an edit, a new role and a removal show at the next call', async () => {
  const backend = new MemoryBackend();
  await upsertResource(backend, role('dev', 'dev'));
  const roles = new RoleDefinitions(backend, [{ name: 'from-config', kubernetes_labels: { env: 'x' }, kubernetes_groups: [], kubernetes_users: [] } as never]);
  const first = await roles.current();
  assert.deepEqual(first.get('dev')?.spec.allow.kubernetes_labels, { env: 'dev' });
  assert.ok(first.has('from-config') && first.has('editor'), 'config and built-in roles too');
  assert.equal(await roles.current(), first, 'nothing changed: not decoded again');

  await upsertResource(backend, role('dev', 'staging'));
  const edited = await roles.current();
  assert.deepEqual(edited.get('dev')?.spec.allow.kubernetes_labels, { env: 'staging' });

  await upsertResource(backend, role('ops', 'prod'));
  assert.ok((await roles.current()).has('ops'));

  await deleteResource(backend, ROLE, 'dev');
  assert.equal((await roles.current()).has('dev'), false);
});
