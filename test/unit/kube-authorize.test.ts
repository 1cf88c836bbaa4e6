import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeCluster } from '../../src/resources/kube-cluster.ts';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { parseRole } from '../../src/resources/role-check.ts';
import { authorizeKube, reauthorizeKube } from '../../src/server/kubeproxy/kube-authorize.ts';
import type { Person } from '../../src/server/auth/people-routes.ts';

// The server's one Kubernetes request authoriser: a person's current roles and a request (its
// cluster, Impersonate-* headers, verb) in, allow with the Kubernetes user and groups, or refuse, out.

const role = (name: string, allow: Record<string, unknown>, options?: Record<string, unknown>) =>
  parseRole({ kind: 'role', version: 'v7', metadata: { name }, spec: { allow, ...(options && { options }) } });
const dev = role('dev', { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['devs', 'viewers'], kubernetes_users: ['alice'] });
const recorded = role('recorded', { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['devs'] }, { require_session_recording: 'yes' });
const person = (...roles: ReturnType<typeof parseRole>[]) => ({ caller: { person: 'alice' }, roles: new RoleSet(roles, 'alice') }) as unknown as Person;
const cluster = (name: string, labels: Record<string, string>) =>
  ({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels }, spec: {} }) as unknown as KubeCluster;
const lab = cluster('lab', { env: 'dev' });
const prod = cluster('prod', { env: 'prod' });

test('an allowed cluster: the Kubernetes user and groups from the roles, the path to send', () => {
  const got = authorizeKube(person(dev), { method: 'GET', headers: {}, route: { name: 'lab', path: '/api/v1/pods' }, cluster: lab });
  assert.ok(!('refused' in got));
  assert.deepEqual(
    { user: got.user, groups: got.groups, path: got.path, cluster: got.cluster.metadata.name },
    { user: 'alice', groups: ['devs', 'viewers', 'system:authenticated'], path: '/api/v1/pods', cluster: 'lab' },
  );
});

test('a cluster the roles do not allow is refused exactly as a missing one; only the audit reason tells them apart', () => {
  const denied = authorizeKube(person(dev), { method: 'GET', headers: {}, route: { name: 'prod', path: '/api' }, cluster: prod });
  const missing = authorizeKube(person(dev), { method: 'GET', headers: {}, route: { name: 'prod', path: '/api' }, cluster: undefined });
  assert.ok('refused' in denied && 'refused' in missing);
  assert.deepEqual({ ...denied.refused, reason: '' }, { ...missing.refused, reason: '' });
  assert.equal(denied.refused.code, 403);
  assert.match(denied.refused.reason ?? '', /do not allow kube_cluster "prod"/);
  assert.match(missing.refused.reason ?? '', /no kube_cluster "prod"/);
});

test('an Impersonate-Group the roles do not give is refused; one they give narrows the groups', () => {
  const refused = authorizeKube(person(dev), {
    method: 'GET',
    headers: { 'impersonate-group': 'system:masters' },
    route: { name: 'lab', path: '/api' },
    cluster: lab,
  });
  assert.ok('refused' in refused);
  assert.equal(refused.refused.code, 403);
  const narrowed = authorizeKube(person(dev), {
    method: 'GET',
    headers: { 'impersonate-group': 'viewers' },
    route: { name: 'lab', path: '/api' },
    cluster: lab,
  });
  assert.ok(!('refused' in narrowed));
  assert.deepEqual(narrowed.groups, ['viewers']);
});

test('an unsafe path is a 400; a kubelet command under require_session_recording is a 403 naming the path, but not for an upgrade (the recorder decides those)', () => {
  const unsafe = authorizeKube(person(dev), { method: 'GET', headers: {}, route: { name: 'lab', path: '/api/../../x' }, cluster: lab });
  assert.ok('refused' in unsafe);
  assert.equal(unsafe.refused.code, 400);
  const path = '/api/v1/nodes/n1/proxy/run/default/p/c?cmd=ls';
  const run = authorizeKube(person(recorded), { method: 'POST', headers: {}, route: { name: 'lab', path }, cluster: lab });
  assert.ok('refused' in run);
  assert.equal(run.refused.code, 403);
  assert.equal(run.refused.path, path);
  assert.ok(!('refused' in authorizeKube(person(recorded), { method: 'POST', headers: {}, route: { name: 'lab', path }, cluster: lab, upgrade: true })));
  assert.ok(!('refused' in authorizeKube(person(dev), { method: 'POST', headers: {}, route: { name: 'lab', path }, cluster: lab })));
});

test('reauthorizeKube: an open request stays while the roles give the same identity, and ends when they no longer do', () => {
  const open = { cluster: 'lab', headers: {}, user: 'alice', groups: ['devs', 'viewers', 'system:authenticated'] };
  assert.equal(reauthorizeKube(person(dev), { env: 'dev' }, open), undefined);
  assert.match(reauthorizeKube(person(recorded), { env: 'dev' }, open) ?? '', /as the Kubernetes user and groups it was sent as/);
  assert.equal(reauthorizeKube(person(dev), undefined, open), 'the roles of alice no longer allow kube_cluster "lab"');
});
