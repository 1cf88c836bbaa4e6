// Resource kinds are described once (src/resources/kinds.ts) and everything that decides by kind
// derives from the descriptors (issue 28, "resources by kind and verb").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { KIND_NAMES, KINDS, kindOfKey } from '../../src/resources/kinds.ts';
import { RESOURCE_KINDS, lookupKind } from '../../src/commands/resource/registry.ts';
import { resourceKey } from '../../src/resources/resource.ts';
import { getResource, listResources, StoredResourceError } from '../../src/resources/store.ts';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { BUILTIN_ROLES } from '../../src/resources/builtin-roles.ts';
import { checkRole, RULE_RESOURCES } from '../../src/resources/role-check.ts';
import { agentRefusal, personRefusal, personView } from '../../src/server/auth/gate.ts';

const caller = { hostId: 'h1', roles: ['discovery', 'kube'], group: 'g' };
const editor = new RoleSet(
  BUILTIN_ROLES.filter((r) => r.metadata.name === 'editor'),
  'p',
);

test('every kind of the descriptors is in the CLI registry, the role rules and the gate, and its key layout goes both ways', () => {
  assert.deepEqual(
    RESOURCE_KINDS.map((k) => k.kind),
    KINDS.map((k) => k.kind),
  );
  for (const kind of KINDS) {
    assert.equal(lookupKind(kind.typed ?? kind.kind).kind, kind.kind);
    for (const alias of kind.aliases) assert.equal(lookupKind(alias).kind, kind.kind);
    assert.ok(KIND_NAMES.includes(kind.typed ?? kind.kind));
    assert.ok(RULE_RESOURCES.includes(kind.rule), `${kind.rule} is a rule resource`);
    assert.equal(
      checkRole({ kind: 'role', version: 'v7', metadata: { name: 'r' }, spec: { allow: { rules: [{ resources: [kind.rule], verbs: ['read'] }] } } }).problems
        .length,
      0,
    );
    const key = kind.key('some-name');
    assert.deepEqual(kindOfKey(key), { kind, name: 'some-name' });
    assert.equal(kind.nameOf(key), 'some-name');
  }
});

test('a key no kind lays out is out of reach of people and agents, whatever their roles', () => {
  for (const key of ['/secrets/users/alice', '/authorities/user', '/resources/nokind/x', '/resources/kube_cluster', '/invites/abc']) {
    assert.equal(kindOfKey(key), undefined);
    assert.equal(personRefusal(editor, { op: 'get', key }), `may not read ${key}`);
    assert.equal(agentRefusal(caller, { op: 'get', key }), `may not read ${key}`);
    assert.equal(agentRefusal(caller, { op: 'put', key, value: '{}' }), `may not write ${key}`);
    assert.equal(personView(editor, { key, value: '{}', revision: 1 }), undefined);
  }
});

test('a stored record that fails its kind schema is an error naming kind and name, not a cast (issue 28)', async () => {
  const backend = new MemoryBackend();
  // A token whose roles are not a list, a cluster that is not JSON, a user whose record names another user.
  await backend.put(resourceKey('token', 'tok-1'), JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 'tok-1' }, spec: { roles: 'discovery' } }));
  await backend.put(resourceKey('kube_cluster', 'c1'), 'not json');
  await backend.put(resourceKey('user', 'alice'), JSON.stringify({ kind: 'user', version: 'v2', metadata: { name: 'mallory' }, spec: { roles: [] } }));
  for (const [kind, name, problem] of [
    ['token', 'tok-1', /spec\.roles/],
    ['kube_cluster', 'c1', /not JSON/],
    ['user', 'alice', /names "mallory"/],
  ] as const) {
    const err = await getResource(backend, kind, name).then(
      () => assert.fail(`${kind}/${name} read as if it were one`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StoredResourceError, String(err));
    assert.equal(err.kind, kind);
    assert.equal(err.resource, name);
    assert.match(err.message, new RegExp(`^The stored ${kind} "${name}" cannot be read \\(`));
    assert.match(err.message, problem);
    assert.match(err.message, new RegExp(`kport rm ${kind}/${name}\\.$`));
    await assert.rejects(listResources(backend, kind), StoredResourceError);
  }
});

test('records kport writes read back through their schemas with their revision', async () => {
  const backend = new MemoryBackend();
  const token = {
    kind: 'token',
    version: 'v2',
    metadata: { name: 'tok-2', expires: '2030-01-01T00:00:00.000Z' },
    spec: { roles: ['kube'], verifier: 'scrypt$x', uses_remaining: 1, later_field: true },
  };
  const put = await backend.put(resourceKey('token', 'tok-2'), JSON.stringify(token));
  const read = await getResource(backend, 'token', 'tok-2');
  // Fields a later kport adds are kept, not dropped: a record read and written back loses nothing.
  assert.deepEqual(read, { ...token, metadata: { ...token.metadata, revision: put.revision } });
});

test('text from a closed set that kport does not know (a hand edit, hostile text) still reads, to be shown safely', async () => {
  const backend = new MemoryBackend();
  const beat = {
    kind: 'discovery_service',
    version: 'v1',
    metadata: { name: 'h1' },
    spec: {
      host_id: 'h1',
      hostname: 'h',
      discovery_group: '',
      state: '\u001b[31mmine',
      started: 'x',
      clusters: { seen: 0, created: 0, updated: 0, deleted: 0 },
      errors: [],
    },
  };
  await backend.put(resourceKey('discovery_service', 'h1'), JSON.stringify(beat));
  assert.equal(
    (await getResource<{ kind: string; version: string; metadata: { name: string }; spec: { state: string } }>(backend, 'discovery_service', 'h1'))?.spec.state,
    '\u001b[31mmine',
  );
});

test('what the server shows people and agents of a record still reads as its kind (a view never drops what the schema needs)', () => {
  const samples: Record<string, unknown> = {
    agent: {
      kind: 'agent',
      version: 'v1',
      metadata: { name: 'h1' },
      spec: {
        host_id: 'h1',
        hostname: 'n1',
        roles: ['kube'],
        joined: '2026-01-01T00:00:00.000Z',
        token_name: 'tok-1',
        credential_hash: 'ab',
        credential_type: 'x509',
      },
    },
    token: { kind: 'token', version: 'v2', metadata: { name: 'tok-1', expires: '2030-01-01T00:00:00.000Z' }, spec: { roles: ['kube'], verifier: 'scrypt$x' } },
    kube_cluster: {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'lab', labels: { env: 'lab' } },
      spec: { kubeconfig: 'apiVersion: v1\nkind: Config\nclusters: []\n' },
    },
  };
  for (const descriptor of KINDS) {
    const views = [descriptor.people.view, descriptor.agents.view].filter((v) => v !== undefined);
    if (views.length === 0) continue;
    const sample = samples[descriptor.kind];
    assert.ok(sample, `a sample record of ${descriptor.kind}, whose views this test reads back`);
    const item = { key: resourceKey(descriptor.kind, (sample as { metadata: { name: string } }).metadata.name), value: JSON.stringify(sample), revision: 1 };
    for (const view of views) {
      const shown = view(item);
      if (!shown) continue;
      const parsed = descriptor.stored.safeParse(JSON.parse(shown.value));
      assert.ok(parsed.success, `${descriptor.kind} as shown: ${parsed.success ? '' : parsed.error.message}`);
    }
  }
});
