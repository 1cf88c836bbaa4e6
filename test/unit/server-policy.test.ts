// The server's per-call authorisation, one module: what each role may read and write (docs/architecture.md §9).
// The same rules are exercised end to end, with real processes, in network-refusals.test.ts.
import { hostnameProblem, safeHostname } from '../../src/resources/heartbeat-limits.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { Heartbeat } from '../../src/discovery/heartbeat.ts';
import { runKubeServerHeartbeat } from '../../src/kube/server-heartbeat.ts';
import { agentEvent, agentItem, agentItems } from '../../src/server/auth/agent-view.ts';
import { refusal } from '../../src/server/auth/policy.ts';
import { callProblem, type BackendCall } from '../../src/server/auth/backend-call.ts';
import type { HostCaller } from '../../src/server/call/caller.ts';

const discovery: HostCaller = { hostId: 'h1', roles: ['discovery'], group: 'prod' };
const kube: HostCaller = { hostId: 'k1', roles: ['kube'], group: '' };
const fence = { key: '/leaders/discovery/prod', value: 'h1/lease-1' };
const cluster = (
  name: string,
  group: string,
  spec: Record<string, unknown> = { aws: { name, region: 'us-east-1', account_id: '123456789012' } },
  origin = 'cloud',
) =>
  JSON.stringify({
    kind: 'kube_cluster',
    version: 'v3',
    metadata: { name, labels: { 'kport.dev/origin': origin, 'kport.internal/discovery-group-name': group } },
    spec,
  });
const item = (key: string, value: string) => ({ key, value, revision: 7 });
const beatOf = (host: string, group: string, spec: Record<string, unknown> = {}) => ({
  kind: 'discovery_service',
  version: 'v1',
  metadata: { name: host, description: 'kport discovery agent on ip-10-0-0-1', expires: '2026-11-26T10:01:00.000Z' },
  spec: {
    host_id: host,
    hostname: 'ip-10-0-0-1',
    discovery_group: group,
    state: 'leader',
    started: '2026-11-26T10:00:00.000Z',
    clusters: { seen: 1, created: 1, updated: 0, deleted: 0 },
    errors: [],
    ...spec,
  },
});
const beat = (host: string, group: string, spec: Record<string, unknown> = {}) => JSON.stringify(beatOf(host, group, spec));
const kubeBeat = (host: string, spec: Record<string, unknown> = {}) =>
  JSON.stringify({
    kind: 'kube_server',
    version: 'v1',
    metadata: { name: host },
    spec: { host_id: host, hostname: 'node-1', clusters: ['a', 'b'], started: '2026-11-26T10:00:00.000Z', ...spec },
  });

test("a discovery agent writes its own group's cloud clusters, as the leader, and nothing else", () => {
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
    [
      { op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence: { key: '/leaders/discovery/other', value: 'h1/x' } },
      /only as the leader/,
    ],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence: { key: fence.key, value: 'h2/x' } }, /only as the leader/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'staging'), fence }, /own discovery group/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod', {}, 'static'), fence }, /own discovery group|exactly one of/],
    [{ op: 'create', key: '/resources/kube_cluster/b', value: cluster('a', 'prod'), fence }, /names a but writes/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: 'not json', fence }, /not a valid kube_cluster/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence, ttl_ms: 1000 }, /do not expire/],
    [{ op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), fence, lease: 'l' }, /not bound to leases/],
    // Taking over another group's (or a static) cluster by rewriting it with our labels.
    [
      { op: 'cas', key: '/resources/kube_cluster/a', value: cluster('a', 'prod'), revision: 7, fence },
      /not a cloud cluster of discovery group "prod"/,
      item('/resources/kube_cluster/a', cluster('a', 'staging')),
    ],
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
  assert.equal(refusal(kube, { op: 'put', key: '/resources/kube_server/k1', value: kubeBeat('k1'), ttl_ms: 60_000 }), undefined);
  assert.match(
    refusal(kube, { op: 'create', key: '/resources/kube_cluster/a', value: cluster('a', ''), fence: { key: '/leaders/discovery/(none)', value: 'k1/l' } }) ??
      '',
    /only discovery agents/,
  );
  assert.match(refusal(kube, { op: 'grant', ttl_ms: 10_000 }) ?? '', /only discovery agents hold leases/);
  assert.match(refusal(kube, { op: 'put', key: '/resources/kube_server/k2', value: '{}', ttl_ms: 60_000 }) ?? '', /may not write/);
  assert.match(refusal(kube, { op: 'put', key: '/resources/discovery_service/k1', value: beat('k1', ''), ttl_ms: 60_000 }) ?? '', /may not write/);
  assert.match(refusal(kube, { op: 'get', key: '/leaders/discovery/(none)' }) ?? '', /may not read/);
});

test('heartbeats: free text printable and bounded, state one of its values, no extra fields (issue 18, item 5)', () => {
  const put = (value: string): BackendCall => ({ op: 'put', key: '/resources/discovery_service/h1', value, ttl_ms: 60_000 });
  const error = (text: string) => ({ scope: 'matcher 0 / account 123456789012 / region us-east-1', error: text, at: '2026-11-26T10:00:00.000Z' });
  assert.equal(refusal(discovery, put(beat('h1', 'prod', { errors: [error('AccessDenied: not authorized to perform eks:ListClusters')] }))), undefined);
  assert.equal(refusal(discovery, put(beat('h1', 'prod', { hostname: 'ip-10-0-0-1.ec2_internal' }))), undefined, 'an RFC 1123 host name (and "_") is fine');
  // Printable, but it could pass for another agent's name in a table (issue 18, round 2, item G).
  assert.match(refusal(discovery, put(beat('h1', 'prod', { hostname: 'hôte-ünïcode.example' }))) ?? '', /may hold only letters, digits/);
  const refused: Array<[string, RegExp]> = [
    [beat('h1', 'prod', { hostname: 'evil\u001b]0;pwned\u0007' }), /spec\.hostname: the hostname holds|spec\.hostname holds the unprintable character U\+001B/],
    [beat('h1', 'prod', { hostname: 'ok\u202egnp.exe' }), /unprintable character U\+202E/],
    [beat('h1', 'prod', { hostname: '' }), /spec\.hostname/],
    [beat('h1', 'prod', { hostname: 'h'.repeat(254) }), /254 characters long; at most 253/],
    [beat('h1', 'prod', { state: 'leader\u001b[2J' }), /spec\.state/],
    [beat('h1', 'prod', { state: 'owned' }), /spec\.state/],
    [beat('h1', 'prod', { errors: [error('fake\r\nOK all good\u001b[2J')] }), /unprintable character U\+000D/],
    [beat('h1', 'prod', { errors: [error('x'.repeat(1025))] }), /at most 1024/],
    [beat('h1', 'prod', { errors: Array.from({ length: 101 }, () => error('x')) }), /spec\.errors/],
    [beat('h1', 'prod', { junk: 'x'.repeat(500_000) }), /junk|Unrecognized/],
    [beat('h1', 'prod', { clusters: { seen: -1, created: 0, updated: 0, deleted: 0 } }), /spec\.clusters\.seen/],
    [JSON.stringify({ ...beatOf('h1', 'prod'), metadata: { name: 'h1', description: 'on \u009b2J' } }), /metadata\.description/],
  ];
  for (const [value, why] of refused) assert.match(refusal(discovery, put(value)) ?? 'allowed', why, value.slice(0, 200));

  const kubePut = (value: string): BackendCall => ({ op: 'put', key: '/resources/kube_server/k1', value, ttl_ms: 60_000 });
  assert.match(refusal(kube, kubePut(kubeBeat('k1', { hostname: 'a\u0007b' }))) ?? 'allowed', /U\+0007/);
  assert.match(refusal(kube, kubePut(kubeBeat('k1', { clusters: ['ok', 'bad\u001b[31m'] }))) ?? 'allowed', /spec\.clusters\.1/);
  assert.match(refusal(kube, kubePut(kubeBeat('k1', { started: 'yesterday' }))) ?? 'allowed', /spec\.started/);
});

test('a key, prefix, lease or fence longer than 1 KiB is malformed before any policy (issue 18, item 4)', () => {
  const long = `/resources/kube_cluster/${'a'.repeat(1024)}`;
  assert.match(callProblem({ op: 'get', key: long }) ?? '', /a key is at most 1024 bytes \(this one has 1048\)/);
  assert.match(callProblem({ op: 'watch', prefix: long }) ?? '', /a prefix is at most 1024 bytes/);
  assert.match(callProblem({ op: 'keepalive', lease: 'l'.repeat(2000) }) ?? '', /a lease is at most/);
  assert.match(callProblem({ op: 'create', key: '/k', value: 'v', fence: { key: long, value: 'x' } }) ?? '', /a fence key is at most/);
  assert.equal(callProblem({ op: 'get', key: `/resources/kube_cluster/${'a'.repeat(253)}` }), undefined, 'the longest resource name passes');
  assert.equal(
    callProblem({ op: 'put', key: '/resources/discovery_service/h1', value: 'x'.repeat(100_000), ttl_ms: 1 }),
    undefined,
    'values are bounded by the body, not here',
  );
});

test('agents see a kube_cluster without its kubeconfig or any unknown field; a cloud cluster passes byte for byte (issue 18, item 1)', () => {
  const kubeconfig = 'apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: sekret-bearer-token}}]\n';
  const staticItem = item(
    '/resources/kube_cluster/s',
    JSON.stringify({
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 's', labels: { env: 'dev', 'kport.dev/origin': 'static' } },
      spec: { kubeconfig },
    }),
  );
  const seen = agentItem(staticItem);
  assert.ok(seen);
  assert.ok(!seen.value.includes('sekret'), seen.value);
  assert.deepEqual(JSON.parse(seen.value), {
    kind: 'kube_cluster',
    version: 'v3',
    metadata: { name: 's', labels: { env: 'dev', 'kport.dev/origin': 'static' } },
    spec: {},
  });
  assert.equal(seen.revision, 7, 'the revision is the stored one');

  const cloud = item(
    '/resources/kube_cluster/a',
    JSON.stringify({
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'a', description: 'AWS EKS cluster "a" in us-east-1', labels: { 'kport.dev/origin': 'cloud' } },
      spec: { aws: { name: 'a', region: 'us-east-1', account_id: '123456789012', arn: 'arn:aws:eks:us-east-1:123456789012:cluster/a' } },
    }),
  );
  assert.equal(agentItem(cloud), cloud, 'a cloud cluster is what the discovery engine wrote, so its compare-and-swap sees its own bytes');

  const sneaky = item(
    '/resources/kube_cluster/x',
    JSON.stringify({
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'x', token: 'sekret', labels: { a: { nested: 'sekret' } } },
      spec: { aws: { name: 'x', region: 'r', account_id: '1', session_token: 'sekret' }, client_key: 'sekret' },
      status: 'sekret',
    }),
  );
  assert.ok(!agentItem(sneaky)!.value.includes('sekret'), 'fields nobody listed stay at the server');
  assert.equal(agentItem(item('/resources/kube_cluster/bad', 'not json')), undefined, 'a value that is not JSON could hold anything');
  assert.deepEqual(
    agentItems([staticItem, item('/resources/kube_cluster/bad', '{'), cloud]).map((i) => i.key),
    ['/resources/kube_cluster/s', '/resources/kube_cluster/a'],
  );
  assert.ok(!JSON.stringify(agentEvent({ type: 'put', item: staticItem })).includes('sekret'));
  assert.deepEqual(agentEvent({ type: 'delete', key: '/resources/kube_cluster/s', revision: 8 }), {
    type: 'delete',
    key: '/resources/kube_cluster/s',
    revision: 8,
  });
  const leader = item('/leaders/discovery/prod', 'h1/lease-1');
  assert.equal(agentItem(leader), leader, 'other keys an agent may read pass as they are');
});

test('what real agents write passes the server: a discovery heartbeat with long, multi-line AWS errors and a kube_server heartbeat (issue 18, item 5)', async () => {
  const backend = new MemoryBackend();
  const hb = new Heartbeat(backend, { hostId: 'h1', discoveryGroup: 'prod', ttlMs: 60_000, now: () => new Date() });
  const failures = Array.from({ length: 150 }, (_, i) => ({
    scope: `matcher 0 / account 123456789012 / region r-${i}`,
    error: `AccessDenied:\n${'not authorized '.repeat(200)}\u001b[2J`,
    at: new Date().toISOString(),
  }));
  await hb.update({
    state: 'leader',
    last_poll: new Date().toISOString(),
    last_poll_duration_ms: 12.5,
    next_poll: new Date().toISOString(),
    clusters: { seen: 3, created: 1, updated: 0, deleted: 0 },
    errors: failures,
  });
  const written = (await backend.get('/resources/discovery_service/h1'))!;
  assert.equal(refusal(discovery, { op: 'put', key: written.key, value: written.value, ttl_ms: 60_000 }), undefined, written.value.slice(0, 300));
  const spec = JSON.parse(written.value).spec;
  assert.equal(spec.errors.length, 100);
  assert.match(spec.errors[0].error, /^AccessDenied: not authorized/);

  const stop = new AbortController();
  const beating = runKubeServerHeartbeat({
    backend,
    hostId: 'k1',
    service: { enabled: true, resources: [{ labels: { '*': '*' } }] } as never,
    signal: stop.signal,
    intervalMs: 60_000,
  });
  const beat = await (async () => {
    for (let i = 0; i < 100; i++) {
      const item = await backend.get('/resources/kube_server/k1');
      if (item) return item;
      await sleep(10);
    }
    throw new Error('no kube_server heartbeat');
  })();
  stop.abort();
  await beating;
  assert.equal(refusal(kube, { op: 'put', key: beat.key, value: beat.value, ttl_ms: 180_000 }), undefined, beat.value);
});

test('an agent makes its OS hostname an RFC 1123 host name before it sends it, whatever the OS says', () => {
  for (const raw of [
    'vm (8d5d1fa8)          g1',
    'ｖｍ',
    '\u3164',
    'v\u0301m',
    '-rf',
    `${'a'.repeat(70)}.${'b'.repeat(300)}`,
    '',
    'ip-10-0-0-1.ec2.internal',
  ]) {
    const sent = safeHostname(raw);
    assert.equal(hostnameProblem('the hostname', sent), undefined, `${JSON.stringify(raw)} became ${JSON.stringify(sent)}`);
  }
  assert.equal(safeHostname('ip-10-0-0-1.ec2.internal'), 'ip-10-0-0-1.ec2.internal');
});
