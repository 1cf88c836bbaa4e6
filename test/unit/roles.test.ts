import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { loadRoleDefinitions } from '../../src/roles/load.ts';
import { BUILTIN_ROLES } from '../../src/resources/builtin-roles.ts';
import { parseRole } from '../../src/resources/role-check.ts';
import type { RoleV7 } from '../../src/resources/role.ts';
import { createResource } from '../../src/resources/store.ts';

const problems = (doc: unknown) => {
  try {
    parseRole(doc, 'role.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('expected the role to be refused');
};

// From Teleport's "Kubernetes Access Controls" guide (enroll-resources/kubernetes-access/controls), pasted as printed.
const TELEPORT_DOCS_KUBE_ACCESS = `kind: role
metadata:
  name: kube-access
version: v7
spec:
  allow:
    kubernetes_labels:
      'region': '*'
      'platform': 'minikube'
    kubernetes_resources:
      - kind: pod
        namespace: "production"
        name: "^webapp-[a-z0-9-]+$"
      - kind: pod
        namespace: "development"
        name: "*"
    kubernetes_groups:
    - developers
    kubernetes_users:
    - minikube
  deny: {}
`;

// The same guide's kubernetes_labels example, with its "# ..." placeholder, as printed.
const TELEPORT_DOCS_LABELS = `kind: role
metadata:
  name: kube-access
version: v7
spec:
  allow:
    kubernetes_labels:
      'region': '*'
      'environment': 'development'
    # ...
  deny: {}
`;

test("a role pasted from Teleport's docs reads as v7", () => {
  const role = parseRole(parse(TELEPORT_DOCS_LABELS));
  assert.deepEqual(role, {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'kube-access' },
    spec: { allow: { kubernetes_labels: { region: '*', environment: 'development' } } },
  });
  const full = parseRole(
    parse(`kind: role
version: v6
metadata: { name: dev, description: developers }
spec:
  allow:
    kubernetes_labels: { env: [dev, staging], team: '^pay.*$' }
    kubernetes_groups: [developers]
    kubernetes_resources: [{ kind: '*', namespace: '*', name: '*' }]
    rules: [{ resources: [event, session], verbs: [list, read] }]
  deny:
    kubernetes_labels: { env: prod }
    kubernetes_groups: [system:masters]
  options: { max_session_ttl: 8h }
`),
  );
  assert.equal(full.version, 'v7');
  assert.deepEqual(full.spec.deny, { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['system:masters'] });
  assert.deepEqual(full.spec.options, { max_session_ttl: '8h' });
  assert.deepEqual(full.spec.allow.rules, [{ resources: ['event', 'session'], verbs: ['list', 'read'] }]);
});

test("the docs' kube-access role that narrows pods is refused with the reason, not widened", () => {
  const message = problems(parse(TELEPORT_DOCS_KUBE_ACCESS));
  assert.match(message, /spec\.allow\.kubernetes_resources: kport does not narrow access inside a cluster .*ignoring it would grant more than the role says/);
  assert.match(
    problems({ kind: 'role', metadata: { name: 'x' }, spec: { deny: { kubernetes_resources: [{ kind: '*', namespace: '*', name: '*' }] } } }),
    /spec\.deny\.kubernetes_resources: kport cannot deny single Kubernetes objects/,
  );
});

test("today's flat shapes (config entry, v1 resource) read as the allow side", () => {
  const expected: RoleV7 = {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'dev' },
    spec: { allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } },
  };
  assert.deepEqual(parseRole({ name: 'dev', kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'], kubernetes_users: [] }), expected);
  assert.deepEqual(
    parseRole({ kind: 'role', version: 'v1', metadata: { name: 'dev' }, spec: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } }),
    expected,
  );
  assert.deepEqual(
    parseRole({ kind: 'role', metadata: { name: 'dev' }, spec: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } }),
    expected,
  );
  // What kport prints reads back unchanged.
  assert.deepEqual(parseRole(expected), expected);
});

test('bad roles: every problem named by key path, with did-you-mean, traits, versions, verbs', () => {
  const message = problems({
    kind: 'role',
    version: 'v7',
    metadata: { name: 'dev' },
    spec: {
      allow: {
        kubernetes_label: { env: 'prod' },
        kubernetes_groups: ['{{internal.kubernetes_groups}}'],
        rules: [
          { resources: ['tokens'], verbs: ['lst'] },
          { resources: ['role'], verbs: ['read'], where: 'x' },
        ],
      },
      options: { max_session_ttl: 'forever', forward_agent: true },
    },
  });
  assert.match(message, /spec\.allow\.kubernetes_label: unknown key: did you mean kubernetes_labels\?/);
  assert.match(message, /spec\.allow\.kubernetes_groups: \{\{internal\.kubernetes_groups\}\} is a Teleport trait template, and kport users have no traits/);
  assert.match(message, /spec\.allow\.rules\[0\]\.resources: unknown resource "tokens": did you mean token\?/);
  assert.match(message, /spec\.allow\.rules\[0\]\.verbs: unknown verb "lst": did you mean list\?/);
  assert.match(message, /spec\.allow\.rules\[1\]: kport cannot evaluate where/);
  assert.match(message, /spec\.options\.max_session_ttl: expected a duration such as 8h or 30m, got "forever"/);
  assert.match(message, /spec\.options\.forward_agent: unknown key \(kport reads max_session_ttl and require_session_recording only\)/);
  assert.match(
    problems({ kind: 'role', version: 'v3', metadata: { name: 'x' }, spec: { allow: {} } }),
    /version: kport reads Teleport roles of version v5, v6, v7, v8 \(got "v3"\)/,
  );
  assert.match(problems({ kind: 'role', metadata: { name: 'x' }, spec: { alow: {} } }), /spec\.alow: unknown key: did you mean allow\?/);
  assert.match(
    problems({ kind: 'role', metadata: { name: 'x' }, spec: { allow: { kubernetes_labels: { env: '^(a$' } } } }),
    /not a regular expression RE2 accepts/,
  );
  assert.match(problems({ kind: 'role', metadata: { name: 'bad name' }, spec: {} }), /metadata\.name: names may contain only/);
});

const role = (name: string, spec: RoleV7['spec']): RoleV7 => ({ kind: 'role', version: 'v7', metadata: { name }, spec });

test('rules: deny wins over allow, * matches any resource or verb, event means audit', () => {
  const editor = new RoleSet([BUILTIN_ROLES.find((r) => r.metadata.name === 'editor')!], 'ed');
  assert.equal(editor.allows('token', 'create'), true);
  assert.equal(editor.allows('audit', 'read'), false);
  const auditor = new RoleSet([BUILTIN_ROLES.find((r) => r.metadata.name === 'auditor')!], 'au');
  assert.equal(auditor.allows('audit', 'list'), true);
  assert.equal(auditor.allows('session', 'read'), true);
  assert.equal(auditor.allows('audit', 'delete'), false);
  assert.equal(auditor.allows('token', 'list'), false);
  const all = role('all', { allow: { rules: [{ resources: ['*'], verbs: ['*'] }] } });
  const noTokens = role('no-tokens', { allow: {}, deny: { rules: [{ resources: ['token'], verbs: ['create', 'delete'] }] } });
  const set = new RoleSet([all, noTokens], 'x');
  assert.equal(set.allows('user', 'delete'), true);
  assert.equal(set.allows('token', 'list'), true);
  assert.equal(set.allows('token', 'create'), false);
  assert.equal(new RoleSet([all, role('deny-all', { allow: {}, deny: { rules: [{ resources: ['*'], verbs: ['*'] }] } })], 'x').allows('role', 'read'), false);
  assert.equal(new RoleSet([role('events', { allow: { rules: [{ resources: ['event'], verbs: ['read'] }] } })], 'x').allows('audit', 'read'), true);
  assert.equal(new RoleSet([], 'x').allows('audit', 'read'), false);
});

test('kube access: union of matching allows, users default to the person, deny removes clusters, groups and users', () => {
  const dev = role('dev', { allow: { kubernetes_labels: { env: ['dev', 'prod'] }, kubernetes_groups: ['developers', 'viewers'] } });
  const pay = role('pay', { allow: { kubernetes_labels: { team: 'pay*' }, kubernetes_groups: ['payments'] } });
  const set = new RoleSet([dev, pay], 'alice');
  assert.deepEqual(set.kubeAccess({ env: 'prod', team: 'payments' }), {
    users: ['alice'],
    groups: ['developers', 'viewers', 'payments', 'system:authenticated'],
  });
  assert.equal(set.kubeAccess({ env: 'staging' }), undefined);
  const noProd = role('no-prod', { allow: {}, deny: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['viewers'] } });
  const denied = new RoleSet([dev, pay, noProd], 'alice');
  assert.equal(denied.kubeAccess({ env: 'prod', team: 'payments' }), undefined, 'a matching deny removes the cluster whatever allows it');
  assert.deepEqual(denied.kubeAccess({ env: 'dev' }), { users: ['alice'], groups: ['developers', 'system:authenticated'] });
  const admins = role('admins', { allow: { kubernetes_labels: { '*': '*' }, kubernetes_users: ['admin', 'alice'] }, deny: { kubernetes_users: ['admin'] } });
  assert.deepEqual(new RoleSet([admins], 'alice').kubeAccess({}), { users: ['alice'], groups: ['system:authenticated'] });
  assert.equal(
    new RoleSet([admins, role('nobody', { allow: {}, deny: { kubernetes_users: ['*'] } })], 'alice').kubeAccess({}),
    undefined,
    'no Kubernetes user left: out of reach',
  );
  assert.equal(
    new RoleSet([role('empty', { allow: { kubernetes_labels: {} } })], 'alice').kubeAccess({ env: 'prod' }),
    undefined,
    'empty labels match nothing',
  );
  const access = new RoleSet([BUILTIN_ROLES.find((r) => r.metadata.name === 'access')!], 'bob');
  assert.deepEqual(access.kubeAccess({ anything: 'x' }), { users: ['bob'], groups: ['system:authenticated'] });
  assert.deepEqual(access.kubeAccess({}), { users: ['bob'], groups: ['system:authenticated'] });
});

test('max_session_ttl: the shortest of the roles that set it, never above the default', () => {
  const ttl = (t: string) => role(t, { allow: {}, options: { max_session_ttl: t } });
  const twelve = 12 * 3_600_000;
  assert.equal(new RoleSet([], 'x').maxSessionTtlMs(twelve), twelve);
  assert.equal(new RoleSet([ttl('8h'), ttl('30m'), role('none', { allow: {} })], 'x').maxSessionTtlMs(twelve), 30 * 60_000);
  assert.equal(new RoleSet([ttl('30h')], 'x').maxSessionTtlMs(twelve), twelve);
  assert.equal(new RoleSet([ttl('1h30m')], 'x').maxSessionTtlMs(twelve), 90 * 60_000);
});

test('definitions: built-ins win, config wins over stored, old flat resources still read, an unreadable one denies everything', async () => {
  const backend = new MemoryBackend();
  await createResource(backend, {
    kind: 'role',
    version: 'v1',
    metadata: { name: 'flat' },
    spec: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['g'], kubernetes_users: [] },
  });
  await createResource(backend, { kind: 'role', version: 'v7', metadata: { name: 'editor' }, spec: { allow: { kubernetes_labels: { '*': '*' } } } });
  await createResource(backend, { kind: 'role', version: 'v7', metadata: { name: 'both' }, spec: { allow: { kubernetes_groups: ['stored'] } } });
  await createResource(backend, {
    kind: 'role',
    version: 'v7',
    metadata: { name: 'broken' },
    spec: { allow: { kubernetes_groups: 'x' }, deny: { bogus: true } },
  });
  const defs = await loadRoleDefinitions(backend, [{ name: 'both', kubernetes_labels: {}, kubernetes_groups: ['config'], kubernetes_users: [] }]);
  assert.deepEqual([...defs.keys()].sort(), ['access', 'auditor', 'both', 'broken', 'editor', 'flat']);
  assert.deepEqual(defs.get('flat')!.spec, { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['g'] } });
  assert.equal(defs.get('editor'), BUILTIN_ROLES[0]);
  assert.deepEqual(defs.get('both')!.spec.allow.kubernetes_groups, ['config']);
  const broken = new RoleSet([defs.get('access')!, defs.get('broken')!], 'x');
  assert.equal(broken.kubeAccess({ env: 'dev' }), undefined);
});

test("a role's kube_cluster rule covers the clusters its own kubernetes_labels match: all when it has none, none when they are {}, and a deny label removes a cluster from every rule", () => {
  const rule = [{ resources: ['kube_cluster'], verbs: ['*'] }];
  const role = (name: string, allow: Record<string, unknown>, deny: Record<string, unknown> = {}) =>
    ({ kind: 'role', version: 'v7', metadata: { name }, spec: { allow: { rules: rule, ...allow }, deny } }) as unknown as RoleV7;
  const set = (...roles: RoleV7[]) => new RoleSet(roles, 'p');
  const prod = { env: 'prod' };
  const lab = { env: 'lab' };
  assert.equal(set(role('all', {})).allowsLabelled('kube_cluster', 'update', lab), true);
  assert.equal(set(role('none', { kubernetes_labels: {} })).allowsLabelled('kube_cluster', 'read', lab), false);
  assert.equal(set(role('none', { kubernetes_labels: {} })).allowsLabelled('kube_cluster', 'delete', prod), false);
  assert.equal(set(role('prod', { kubernetes_labels: prod })).allowsLabelled('kube_cluster', 'delete', prod), true);
  assert.equal(set(role('prod', { kubernetes_labels: prod })).allowsLabelled('kube_cluster', 'delete', lab), false);
  assert.equal(set(role('all', {}), role('no-lab', {}, { kubernetes_labels: lab })).allowsLabelled('kube_cluster', 'read', lab), false);
  assert.equal(set(role('all', {}), role('no-lab', {}, { kubernetes_labels: lab })).allowsLabelled('kube_cluster', 'read', prod), true);
});
