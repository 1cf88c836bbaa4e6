import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { resolveImpersonation } from '../../src/kube/access.ts';
import { accessFor } from '../../src/kube/access-checker.ts';
import { extraHeader, forwardedHeaders, sendsGroup } from '../../src/kube/forward-headers.ts';
import { isLongRunning, requestInfo, unsafePathReason } from '../../src/kube/request-info.ts';
import { describeConnectError } from '../../src/core/net-errors.ts';
import { createResource } from '../../src/resources/store.ts';
import type { KubeCluster } from '../../src/resources/kube-cluster.ts';

const cluster = (labels: Record<string, string>): KubeCluster => ({
  kind: 'kube_cluster',
  version: 'v3',
  metadata: { name: 'c', labels },
  spec: { kubeconfig: 'x' },
});

test('roles from config and resources allow clusters by label; users default to the kport user', async () => {
  const backend = new MemoryBackend();
  await createResource(backend, {
    kind: 'role',
    version: 'v1',
    metadata: { name: 'from-resource' },
    spec: { kubernetes_labels: { team: 'pay*' }, kubernetes_groups: ['payments'], kubernetes_users: [] },
  });
  await createResource(backend, { kind: 'user', version: 'v2', metadata: { name: 'alice' }, spec: { roles: ['from-resource'] } });
  const access = await accessFor(
    'alice',
    {
      roles: [{ name: 'dev', kubernetes_labels: { env: ['dev', 'prod'] }, kubernetes_groups: ['developers'], kubernetes_users: [] }],
      users: [{ name: 'alice', roles: ['dev', 'missing-role'] }],
    },
    backend,
  );
  assert.deepEqual(access.roles.sort(), ['dev', 'from-resource']);
  assert.deepEqual(access.forCluster(cluster({ env: 'prod', team: 'payments' })), {
    users: ['alice'],
    groups: ['developers', 'payments', 'system:authenticated'],
  });
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
  assert.match(
    (resolveImpersonation(access, { user: ['alice'], groups: [], other: ['impersonate-uid'] }) as { message: string }).message,
    /impersonate-uid is not allowed/,
  );
});

test('system:authenticated is left to the API server exactly when it adds the group itself', () => {
  const named = { user: 'alice', groups: ['dev', 'system:authenticated'] };
  assert.deepEqual(
    named.groups.filter((g) => sendsGroup(named, g)),
    ['dev'],
  );
  const anonymous = { user: 'system:anonymous', groups: ['system:authenticated'] };
  assert.deepEqual(
    anonymous.groups.filter((g) => sendsGroup(anonymous, g)),
    ['system:authenticated'],
  );
  const unauthenticated = { user: 'alice', groups: ['system:unauthenticated', 'system:authenticated'] };
  assert.deepEqual(
    unauthenticated.groups.filter((g) => sendsGroup(unauthenticated, g)),
    ['system:unauthenticated', 'system:authenticated'],
  );
});

test('request info for the audit log', () => {
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces/team-a/pods?watch=true'), {
    verb: 'watch',
    apiGroup: '',
    namespace: 'team-a',
    resource: 'pods',
    subresource: '',
    name: '',
  });
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces/team-a/pods/p/log?follow=true'), {
    verb: 'get',
    apiGroup: '',
    namespace: 'team-a',
    resource: 'pods',
    subresource: 'log',
    name: 'p',
  });
  assert.deepEqual(requestInfo('POST', '/api/v1/namespaces/team-a/pods/p/exec?command=sh'), {
    verb: 'create',
    apiGroup: '',
    namespace: 'team-a',
    resource: 'pods',
    subresource: 'exec',
    name: 'p',
  });
  assert.deepEqual(requestInfo('DELETE', '/apis/apps/v1/namespaces/x/deployments'), {
    verb: 'deletecollection',
    apiGroup: 'apps',
    namespace: 'x',
    resource: 'deployments',
    subresource: '',
    name: '',
  });
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces'), { verb: 'list', apiGroup: '', namespace: '', resource: 'namespaces', subresource: '', name: '' });
  assert.deepEqual(requestInfo('GET', '/api/v1/namespaces/default'), {
    verb: 'get',
    apiGroup: '',
    namespace: 'default',
    resource: 'namespaces',
    subresource: '',
    name: 'default',
  });
  assert.equal(requestInfo('GET', '/version').verb, 'get');
});

test('long-running requests (watches, followed logs, proxied streams, sessions) are told from short ones', () => {
  for (const path of [
    '/api/v1/namespaces/team-a/pods?watch=true',
    '/apis/apps/v1/deployments?labelSelector=a%3Db&watch=1&resourceVersion=5',
    '/api/v1/watch/namespaces/team-a/pods',
    '/apis/apps/v1/watch/deployments',
    '/api/v1/namespaces/team-a/pods/p/log?container=c&follow=true',
    '/api/v1/namespaces/team-a/services/s:80/proxy/metrics',
    '/api/v1/namespaces/team-a/pods/p/exec?command=sh',
    '/api/v1/namespaces/team-a/pods/p/portforward',
  ]) {
    assert.equal(isLongRunning(path), true, path);
  }
  for (const path of [
    '/api/v1/namespaces/default',
    '/api/v1/namespaces/team-a/pods?watch=false',
    '/api/v1/namespaces/team-a/pods?allowWatchBookmarks=true',
    '/api/v1/namespaces/team-a/pods/p/log?follow=false',
    '/api/v1/namespaces/team-a/pods/p/log',
    '/api/v1/namespaces/watch/pods',
    '/apis/proxy.example.com/v1/things',
    '/version',
  ]) {
    assert.equal(isLongRunning(path), false, path);
  }
});

test('request paths: dot segments, encoded slashes and control characters are refused; ordinary paths pass', () => {
  for (const path of [
    '/api/v1/namespaces/default/pods',
    '/apis/apps/v1/deployments?watch=1&labelSelector=a%3Db',
    '/api/v1/namespaces/default/pods/x%2Dy',
    '/version',
    '/api/v1/namespaces/a..b/pods',
  ]) {
    assert.equal(unsafePathReason(path), undefined, path);
  }
  const refused: Array<[string, RegExp]> = [
    ['/api/v1/namespaces/default/pods/x/../../secrets', /dot segment/],
    ['/api/v1/namespaces/default/pods/x/%2e%2E/secrets', /dot segment/],
    ['/api/v1/./namespaces', /dot segment/],
    ['/api/v1/namespaces/default/pods/%2e', /dot segment/],
    ['/api/v1/namespaces/default/pods/x%2F..%2Fsecrets', /encodes a slash/],
    ['/api/v1/namespaces/default/pods/x%5C..', /encodes a slash/],
    ['/api/v1/namespaces/default/pods/x%0aGET', /control character/],
    ['/api/v1/namespaces/default/pods/%E0%A4%A', /not valid percent-encoding/],
    ['api/v1/pods', /must start with/],
    // Unencoded, too: the quick scan for ordinary paths must not let these through.
    ['/api/v1/namespaces/..', /dot segment/],
    ['/api/v1/namespaces/default/pods/x\\y', /encodes a slash/],
    ['/api/v1/namespaces/a\tb', /control character/],
  ];
  for (const [path, reason] of refused) assert.match(unsafePathReason(path) ?? '', reason, path);
  // The audit names what the API server reads: percent-encoding decoded.
  assert.equal(requestInfo('GET', '/api/v1/namespaces/team%2Da/pods/x%2Dy').name, 'x-y');
  assert.equal(requestInfo('GET', '/api/v1/namespaces/team%2Da/pods/x%2Dy').namespace, 'team-a');
});

test('connection failures are described by their cause, through wrappers', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED', address: '127.0.0.1', port: 6443 });
  assert.equal(describeConnectError(new TypeError('fetch failed', { cause: refused })), 'connection refused (ECONNREFUSED 127.0.0.1:6443)');
  const dns = Object.assign(new Error('getaddrinfo ENOTFOUND x.invalid'), { code: 'ENOTFOUND', hostname: 'x.invalid' });
  assert.equal(describeConnectError(dns), 'DNS name not found (ENOTFOUND x.invalid)');
  const tls = Object.assign(new Error('self-signed certificate; if the root CA is installed locally, try running Node.js with --use-system-ca'), {
    code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
  });
  assert.equal(
    describeConnectError(Object.assign(new Error('The pending stream has been canceled'), { code: 'ERR_HTTP2_STREAM_CANCEL', cause: tls })),
    'TLS verification failed (self-signed certificate)',
  );
  assert.equal(describeConnectError(new Error('something else')), undefined);
});

test("user extras go out as Impersonate-Extra-<key>, the key percent-encoded as client-go does and lower-cased for HTTP/2; the client's own never pass", () => {
  assert.equal(extraHeader('kport.dev/original-user'), 'impersonate-extra-kport.dev%2foriginal-user');
  assert.equal(extraHeader('Team Zoé'), 'impersonate-extra-team%20zo%c3%a9');
  const list = forwardedHeaders(
    ['host', 'k'],
    { 'impersonate-extra-kport.dev%2foriginal-user': 'mallory', accept: 'application/json' },
    { user: 'u', groups: ['g'] },
    'Bearer t',
    { 'kport.dev/original-user': ['alice'], 'kport.dev/session-id': ['s-1'] },
  );
  const pairs = list.flatMap((_, i) => (i % 2 === 0 ? [`${list[i]}: ${list[i + 1]}`] : []));
  assert.deepEqual(pairs, [
    'host: k',
    'impersonate-user: u',
    'impersonate-group: g',
    'impersonate-extra-kport.dev%2foriginal-user: alice',
    'impersonate-extra-kport.dev%2fsession-id: s-1',
    'authorization: Bearer t',
    'accept: application/json',
  ]);
});
