// The server's per-call authorisation, one module: what each role may read and write (DESIGN.md §9).
// The same rules are exercised end to end, with real processes, in network-refusals.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refusal, type BackendCall, type HostCaller } from '../../src/server/policy.ts';

const discovery: HostCaller = { hostId: 'h1', roles: ['discovery'], group: 'prod' };
const kube: HostCaller = { hostId: 'k1', roles: ['kube'], group: '' };
const fence = { key: '/leaders/discovery/prod', value: 'h1/lease-1' };
const cluster = (name: string, group: string, spec: Record<string, unknown> = { aws: { name, region: 'us-east-1', account_id: '123456789012' } }, origin = 'cloud') =>
  JSON.stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { 'kport.dev/origin': origin, 'kport.internal/discovery-group-name': group } }, spec });
const item = (key: string, value: string) => ({ key, value, revision: 7 });
const beat = (host: string, group: string) => JSON.stringify({ kind: 'discovery_service', version: 'v1', metadata: { name: host }, spec: { host_id: host, discovery_group: group } });

test('a discovery agent writes its own group\'s cloud clusters, as the leader, and nothing else', () => {
  const allowed: Array<[BackendCall, ReturnType<typeof item>?]> = [
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence }],
    [{ op: 'cas', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), revision: 7, fence }, item('/resources/kube_cluster/a', cluster('a', 'prod'))],
    [{ op: 'delete', key: '/resources/kube_cluster/a', revision: 7, fence }, item('/resources/kube_cluster/a', cluster('a', 'prod'))],
    [{ op: 'create', key: '/leaders/discovery/prod', value: 'h1/lease-1', lease: 'lease-1' }],
    [{ op: 'delete', key: '/leaders/discovery/prod', revision: 7 }, item('/leaders/discovery/prod', 'h1/old-lease')],
    [{ op: 'put', key: '/resources/discovery_service/h1', value: beat('h1', 'prod'), ttl_ms: 60_000 }],
    [{ op: 'get', key: '/resources/kube_cluster/a' }],
    [{ op: 'list', prefix: '/resources/kube_cluster/' }],
    [{ op: 'get', key: '/leaders/discovery/prod' }],
    [{ op: 'grant', ttl_ms: 15_000 }],
  ];
  for (const [call, current] of allowed) assert.equal(refusal(discovery, call, current), undefined, JSON.stringify(call));

  const refused: Array<[BackendCall, RegExp, ReturnType<typeof item>?]> = [
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod') }, /only as the leader/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence: { key: '/leaders/discovery/other', value: 'h1/x' } }, /only as the leader/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence: { key: fence.key, value: 'h2/x' } }, /only as the leader/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'staging'), fence }, /own discovery group/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod', {}, 'static'), fence }, /own discovery group|exactly one of/],
    [{ op: 'create', key: '/resources/kube_cluster/b', value: cluster('a', 'prod'), fence }, /names a but writes/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: 'not json', fence }, /not a valid kube_cluster/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence, ttl_ms: 1000 }, /do not expire/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence, lease: 'l' }, /not bound to leases/],
    // Taking over another group's (or a static) cluster by rewriting it with our labels.
    [{ op: 'cas', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), revision: 7, fence }, /not a cloud cluster of discovery group "prod"/, item('/resources/kube_cluster/a', cluster('a', 'staging'))],
    [{ op: 'delete', key: '/resources/kube_cluster/s', fence }, /not a cloud cluster/, item('/resources/kube_cluster/s', cluster('s', 'prod', {}, 'static'))],
    [{ op: 'create', key: '/leaders/discovery/prod', value: 'h2/lease-1', lease: 'lease-1' }, /its own leadership/],
    [{ op: 'create', key: '/leaders/discovery/staging', value: 'h1/lease-1', lease: 'lease-1' }, /may not write/],
    [{ op: 'delete', key: '/leaders/discovery/prod', revision: 7 }, /its own leadership/, item('/leaders/discovery/prod', 'h2/lease')],
    [{ op: 'put', key: '/resources/discovery_service/h1', value: beat('h1', 'staging'), ttl_ms: 60_000 }, /only its own discovery_service heartbeat/],
    [{ op: 'put', key: '/resources/discovery_service/h1', value: beat('h1', 'prod') }, /TTL/],
    [{ op: 'put', key: '/resources/discovery_service/h2', value: beat('h2', 'prod'), ttl_ms: 60_000 }, /may not write/],
    [{ op: 'put', key: '/resources/kube_server/h1', value: '{}', ttl_ms: 60_000 }, /may not write/],
    [{ op: 'put', key: '/resources/token/t', value: '{}' }, /may not write/],
    [{ op: 'put', key: '/resources/user/u', value: '{}' }, /may not write/],
    [{ op: 'put', key: '/resources/role/r', value: '{}' }, /may not write/],
    [{ op: 'delete', key: '/resources/agent/k1' }, /may not write/],
    [{ op: 'put', key: '/authorities/host', value: '{}' }, /may not write/],
    [{ op: 'list', prefix: '/resources/' }, /may not read/],
    [{ op: 'list', prefix: '/resources/kube_cluster' }, /may not read/],
    [{ op: 'get', key: '/resources/token/t' }, /may not read/],
    [{ op: 'get', key: '/leaders/discovery/staging' }, /may not read/],
    [{ op: 'watch', prefix: '/' }, /may not read/],
    [{ op: 'grant', ttl_ms: 3_600_000 }, /a lease lives/],
  ];
  for (const [call, why, current] of refused) assert.match(refusal(discovery, call, current) ?? 'allowed', why, JSON.stringify(call));
});

test('a kube agent reads clusters and writes only its own kube_server heartbeat', () => {
  assert.equal(refusal(kube, { op: 'list', prefix: '/resources/kube_cluster/' }), undefined);
  assert.equal(refusal(kube, { op: 'put', key: '/resources/kube_server/k1', value: JSON.stringify({ kind: 'kube_server', metadata: { name: 'k1' }, spec: { host_id: 'k1' } }), ttl_ms: 60_000 }), undefined);
  assert.match(refusal(kube, { op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', ''), fence: { key: '/leaders/discovery/(none)', value: 'k1/l' } }) ?? '', /only discovery agents/);
  assert.match(refusal(kube, { op: 'grant', ttl_ms: 10_000 }) ?? '', /only discovery agents hold leases/);
  assert.match(refusal(kube, { op: 'put', key: '/resources/kube_server/k2', value: '{}', ttl_ms: 60_000 }) ?? '', /may not write/);
  assert.match(refusal(kube, { op: 'put', key: '/resources/discovery_service/k1', value: beat('k1', ''), ttl_ms: 60_000 }) ?? '', /may not write/);
  assert.match(refusal(kube, { op: 'get', key: '/leaders/discovery/(none)' }) ?? '', /may not read/);
});
