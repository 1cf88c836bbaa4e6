import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { accessFor, resolveImpersonation } from '../../src/kube/access.ts';
import { requestInfo } from '../../src/kube/request-info.ts';
import { createResource } from '../../src/resources/store.ts';
import type { KubeCluster } from '../../src/resources/kube-cluster.ts';

const cluster = (labels: Record<string, string>): KubeCluster => ({ kind: 'kube_cluster', version: 'v3', metadata: { name: 'c', labels }, spec: { kubeconfig: 'x' } });

test('roles from config and resources allow clusters by label; users default to the kport user', async () => {
  const backend = new MemoryBackend();
  await createResource(backend, { kind: 'role', version: 'v1', metadata: { name: 'from-resource' }, spec: { kubernetes_labels: { team: 'pay*' }, kubernetes_groups: ['payments'], kubernetes_users: [] } });
  await createResource(backend, { kind: 'user', version: 'v2', metadata: { name: 'alice' }, spec: { roles: ['from-resource'] } });
  const access = await accessFor('alice', { roles: [{ name: 'dev', kubernetes_labels: { env: ['dev', 'prod'] }, kubernetes_groups: ['developers'], kubernetes_users: [] }], users: [{ name: 'alice', roles: ['dev', 'missing-role'] }] }, backend);
  assert.deepEqual(access.roles.sort(), ['dev', 'from-resource']);
  assert.deepEqual(access.forCluster(cluster({ env: 'prod', team: 'payments' })), { users: ['alice'], groups: ['developers', 'payments', 'system:authenticated'] });
  assert.deepEqual(access.forCluster(cluster({ env: 'prod' })), { users: ['alice'], groups: ['developers', 'system:authenticated'] });
  assert.equal(access.forCluster(cluster({ env: 'staging' })), undefined);
  const nobody = await accessFor('mallory', { roles: [], users: [] }, backend);
  assert.equal(nobody.forCluster(cluster({ env: 'prod' })), undefined);
});

test('impersonation headers: allowed narrowing passes, anything else is refused', () => {
  const access = { users: ['alice', 'alice-admin'], groups: ['dev', 'ops', 'system:authenticated'] };
  const none = { user: [], groups: [], other: [] };
  assert.deepEqual(resolveImpersonation(access, none, { user: 'alice' }), { ok: true, user: 'alice', groups: ['dev', 'ops', 'system:authenticated'] });
  assert.match((resolveImpersonation(access, none) as { message: string }).message, /several Kubernetes users/);
  assert.deepEqual(resolveImpersonation(access, { user: ['alice-admin'], groups: ['ops'], other: [] }), { ok: true, user: 'alice-admin', groups: ['ops'] });
  assert.deepEqual(resolveImpersonation(access, { user: [''], groups: ['dev'], other: [] }, { user: 'alice' }), { ok: true, user: 'alice', groups: ['dev'] });
  assert.equal(resolveImpersonation(access, { user: ['root'], groups: [], other: [] }).ok, false);
  assert.equal(resolveImpersonation(access, { user: ['alice'], groups: ['system:masters'], other: [] }).ok, false);
  assert.equal(resolveImpersonation(access, { user: ['alice', 'alice-admin'], groups: [], other: [] }).ok, false);
  assert.match((resolveImpersonation(access, { user: ['alice'], groups: [], other: ['impersonate-uid'] }) as { message: string }).message, /impersonate-uid is not allowed/);
});

test('request info for the audit log', () => {
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces/team-a/pods?watch=true'), { verb: 'watch', apiGroup: '', namespace: 'team-a', resource: 'pods', subresource: '', name: '' });
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces/team-a/pods/p/log?follow=true'), { verb: 'get', apiGroup: '', namespace: 'team-a', resource: 'pods', subresource: 'log', name: 'p' });
  assert.deepEqual(requestInfo('POST', '/api/v1/namespaces/team-a/pods/p/exec?command=sh'), { verb: 'create', apiGroup: '', namespace: 'team-a', resource: 'pods', subresource: 'exec', name: 'p' });
  assert.deepEqual(requestInfo('DELETE', '/apis/apps/v1/namespaces/x/deployments'), { verb: 'deletecollection', apiGroup: 'apps', namespace: 'x', resource: 'deployments', subresource: '', name: '' });
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces'), { verb: 'list', apiGroup: '', namespace: '', resource: 'namespaces', subresource: '', name: '' });
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces/default'), { verb: 'get', apiGroup: '', namespace: 'default', resource: 'namespaces', subresource: '', name: 'default' });
  assert.equal(requestInfo('GET', '/version').verb, 'get');
});
