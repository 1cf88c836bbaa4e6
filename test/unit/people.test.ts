import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { inviteTtl, MAX_INVITE_TTL_MS } from '../../src/people/invites.ts';
import { oidcUser } from '../../src/people/login.ts';
import { MAX_PASSWORD_BYTES, passwordMatches, passwordProblem, passwordVerifier } from '../../src/people/passwords.ts';
import { LoginThrottle } from '../../src/people/throttle.ts';
import { acceptedStep, newTotpSecret, totpCode } from '../../src/people/totp.ts';
import { addUser, listUsers, lockUser, removeUser } from '../../src/people/users.ts';
import { createAuthority, generateKeys, hostClaims, issueLeaf, userClaims } from '../../src/pki/certs.ts';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { BUILTIN_ROLES, type RoleV7 } from '../../src/roles/role.ts';
import { PersonPolicy } from '../../src/server/person-policy.ts';

const builtin = (name: string) => BUILTIN_ROLES.find((r) => r.metadata.name === name)!;
const policy = (...roles: RoleV7[]) => new PersonPolicy('p', new RoleSet(roles, 'p'));
const item = (key: string, value: unknown) => ({ key, value: JSON.stringify(value), revision: 1 });

describe('people service', () => {
  test('passwords: at least 12 characters, at most 1024 bytes, refused before hashing; scrypt verifiers with their own salt', async () => {
    assert.match(passwordProblem('short')!, /at least 12/);
    assert.match(passwordProblem('x'.repeat(MAX_PASSWORD_BYTES + 1))!, /at most 1024 bytes/);
    await assert.rejects(passwordVerifier('x'.repeat(10 << 20)), /at most 1024 bytes/);
    const a = await passwordVerifier('a long enough password');
    const b = await passwordVerifier('a long enough password');
    assert.notEqual(a, b, 'each verifier has its own salt');
    assert.ok(!a.includes('a long enough password'));
    assert.equal(await passwordMatches(a, 'a long enough password'), true);
    assert.equal(await passwordMatches(a, 'another long password'), false);
    assert.equal(await passwordMatches(undefined, 'a long enough password'), false, 'no user: a decoy is checked and fails');
    assert.equal(await passwordMatches(a, 'x'.repeat(10 << 20)), false);
  });

  test('TOTP: the current code and one step either side; a code counts once', () => {
    const secret = newTotpSecret();
    const now = 1_800_000_000_000;
    const step = Math.floor(now / 30_000);
    assert.equal(acceptedStep(secret, totpCode(secret, now), undefined, now), step);
    assert.equal(acceptedStep(secret, totpCode(secret, now - 30_000), undefined, now), step - 1);
    assert.equal(acceptedStep(secret, totpCode(secret, now + 30_000), undefined, now), step + 1);
    const old = totpCode(secret, now - 90_000);
    if (![-30_000, 0, 30_000].some((d) => totpCode(secret, now + d) === old)) assert.equal(acceptedStep(secret, old, undefined, now), undefined);
    assert.equal(acceptedStep(secret, totpCode(secret, now), step, now), undefined, 'replayed');
    assert.equal(acceptedStep(secret, totpCode(secret, now - 30_000), step, now), undefined, 'an older code after a newer one');
    assert.equal(acceptedStep(secret, totpCode(secret, now + 30_000), step, now), step + 1);
    assert.equal(acceptedStep(secret, '12345', undefined, now), undefined);
  });

  test('throttle: the 6th attempt for a user within a minute is refused unchecked; 20 per source; a minute later it is allowed again', () => {
    let now = 0;
    const throttle = new LoginThrottle(() => now);
    for (let i = 0; i < 5; i++) {
      assert.equal(throttle.blocked('alice', '10.0.0.1'), undefined);
      throttle.failed('alice', '10.0.0.1');
    }
    assert.match(throttle.blocked('alice', '10.0.0.9')!, /5 failed logins for user alice/);
    assert.equal(throttle.blocked('bob', '10.0.0.9'), undefined);
    for (let i = 0; i < 15; i++) throttle.failed(`u${i}`, '10.0.0.1');
    assert.match(throttle.blocked('carol', '10.0.0.1')!, /20 failed logins for 10\.0\.0\.1/);
    now = 60_001;
    assert.equal(throttle.blocked('alice', '10.0.0.1'), undefined);
  });

  test('invites last 1 h by default, at most 48 h', () => {
    assert.equal(inviteTtl(undefined), 3_600_000);
    assert.equal(inviteTtl(MAX_INVITE_TTL_MS), MAX_INVITE_TTL_MS);
    assert.throws(() => inviteTtl(MAX_INVITE_TTL_MS + 1), /1 min to 48 h/);
  });

  test('users: every role must exist; the invite is stored only as its hash; rm takes secrets and invites, not the lock', async () => {
    const backend = new MemoryBackend();
    await assert.rejects(addUser(backend, { name: 'a', roles: ['nope'] }, new Date()), /no role named nope/);
    await assert.rejects(addUser(backend, { name: '-rf', roles: ['access'] }, new Date()), /refused/);
    const { invite } = await addUser(backend, { name: 'a', roles: ['access'] }, new Date());
    await assert.rejects(addUser(backend, { name: 'a', roles: ['access'] }, new Date()), /already exists/);
    const everything = JSON.stringify(await backend.list('/'));
    assert.ok(!everything.includes(invite));
    await lockUser(backend, { name: 'a', ttlMs: 3_600_000, message: 'away' }, new Date());
    assert.equal((await listUsers(backend, new Date()))[0]!.locked?.message, 'away');
    assert.equal(await removeUser(backend, 'a'), true);
    assert.deepEqual((await backend.list('/')).map((i) => i.key), ['/resources/lock/a']);
  });
});

test('an OIDC login never takes a local user\'s name; an OIDC user keeps its uid across logins and expires with its certificate', async () => {
  const backend = new MemoryBackend();
  await addUser(backend, { name: 'alice', roles: ['access'] }, new Date());
  await assert.rejects(oidcUser(backend, { user: 'alice', roles: ['editor'], expires: new Date(Date.now() + 3_600_000) }, new Date()), /alice is a local kport user/);
  const first = await oidcUser(backend, { user: 'olga', roles: ['access'], expires: new Date(Date.now() + 3_600_000) }, new Date());
  const again = await oidcUser(backend, { user: 'olga', roles: ['auditor'], expires: new Date(Date.now() + 3_600_000) }, new Date());
  assert.equal(again.uid, first.uid);
  const listed = (await listUsers(backend, new Date())).find((u) => u.name === 'olga');
  assert.deepEqual([listed?.auth, listed?.roles], ['oidc', ['auditor']]);
});

describe('user certificates', () => {
  test('a host certificate has no user claims and a user certificate no host claims', async () => {
    const ca = await createAuthority('ca', 3_600_000);
    const keys = await generateKeys();
    const user = Buffer.from((await issueLeaf(ca, keys.publicKey, { commonName: 'alice', usage: 'client', validForMs: 60_000, user: { roles: ['access'] } })).rawData);
    const host = Buffer.from((await issueLeaf(ca, keys.publicKey, { commonName: 'h', usage: 'client', validForMs: 60_000, host: { roles: ['discovery'], discovery_group: '' } })).rawData);
    const both = Buffer.from((await issueLeaf(ca, keys.publicKey, { commonName: 'h', usage: 'client', validForMs: 60_000, host: { roles: ['discovery'], discovery_group: '' }, user: { roles: ['editor'] } })).rawData);
    assert.deepEqual(userClaims(user), { user: 'alice', roles: ['access'] });
    assert.equal(hostClaims(user), undefined);
    assert.equal(userClaims(host), undefined);
    assert.equal(userClaims(both), undefined);
    assert.equal(hostClaims(both), undefined);
  });
});

describe('person policy', () => {
  const dev: RoleV7 = { kind: 'role', version: 'v7', metadata: { name: 'dev' }, spec: { allow: { kubernetes_labels: { env: 'dev' } } } };
  const cluster = (name: string, env: string) => item(`/resources/kube_cluster/${name}`, { kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: { kubeconfig: 'secret' } });

  test('never secrets, authorities, joins, invites, leader keys or leases, whatever the roles', () => {
    const all: RoleV7 = { kind: 'role', version: 'v7', metadata: { name: 'all' }, spec: { allow: { rules: [{ resources: ['*'], verbs: ['*'] }] } } };
    const p = policy(all);
    for (const key of ['/secrets/users/a', '/authorities/user', '/joins/x', '/invites/x', '/leaders/discovery/g']) {
      assert.ok(p.refusal({ op: 'get', key }), key);
      assert.ok(p.refusal({ op: 'put', key, value: '{}' }), key);
      assert.ok(p.refusal({ op: 'list', prefix: key }), key);
    }
    assert.ok(p.refusal({ op: 'list', prefix: '/' }));
    assert.ok(p.refusal({ op: 'list', prefix: '/resources/' }));
    assert.ok(p.refusal({ op: 'grant', ttl_ms: 5000 }));
    assert.ok(p.refusal({ op: 'put', key: '/resources/audit_event/x', value: '{}' }));
    assert.match(p.refusal({ op: 'put', key: '/resources/user/x', value: JSON.stringify({ kind: 'user', metadata: { name: 'x' }, spec: { roles: ['editor'] } }) })!, /kport users/);
  });

  test('kube_cluster reads are filtered by kubernetes_labels and never carry a kubeconfig', () => {
    const p = policy(dev);
    const shown = p.views([cluster('a', 'dev'), cluster('b', 'prod')]);
    assert.deepEqual(shown.map((i) => i.key), ['/resources/kube_cluster/a']);
    assert.equal(JSON.parse(shown[0]!.value).spec.kubeconfig, undefined);
    assert.equal(policy(builtin('auditor')).view(cluster('a', 'dev')), undefined);
    assert.equal(JSON.parse(policy(builtin('editor')).view(cluster('b', 'prod'))!.value).spec.kubeconfig, undefined);
  });

  test('editor writes tokens, valid roles and static clusters; access and auditor write nothing', () => {
    const editor = policy(builtin('editor'));
    const token = { op: 'create' as const, key: '/resources/token/t', value: JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 't' }, spec: { roles: ['kube'] } }) };
    assert.equal(editor.refusal(token), undefined);
    assert.match(policy(builtin('access')).refusal(token)!, /may not create token/);
    assert.match(policy(builtin('auditor')).refusal(token)!, /may not create token/);
    assert.match(editor.refusal({ ...token, value: token.value.replace('"t"', '"u"') })!, /named t/);
    assert.match(editor.refusal({ op: 'put', key: '/resources/role/r', value: JSON.stringify({ kind: 'role', version: 'v7', metadata: { name: 'r' }, spec: { allow: { bogus: 1 } } }) })!, /not valid/);
    const eks = { kind: 'kube_cluster', version: 'v3', metadata: { name: 'e' }, spec: { aws: { name: 'e', region: 'us-east-1', account_id: '123456789012' } } };
    assert.match(editor.refusal({ op: 'put', key: '/resources/kube_cluster/e', value: JSON.stringify(eks) })!, /only static/);
    assert.equal(editor.refusal({ op: 'delete', key: '/resources/agent/h' }), undefined);
    assert.match(editor.refusal({ op: 'put', key: '/resources/agent/h', value: '{}' })!, /only remove/);
    assert.equal(JSON.parse(editor.view(item('/resources/token/t', { kind: 'token', spec: { roles: [], verifier: 'scrypt$x' } }))!.value).spec.verifier, undefined);
  });

  test('auditor lists audit events and discovery status, and nothing else', () => {
    const p = policy(builtin('auditor'));
    assert.equal(p.refusal({ op: 'list', prefix: '/resources/audit_event/' }), undefined);
    assert.equal(p.refusal({ op: 'list', prefix: '/resources/discovery_service/' }), undefined);
    assert.ok(p.refusal({ op: 'get', key: '/leaders/discovery/prod' }), 'leader keys hold a fence: the server reads them for the person');
    for (const kind of ['token', 'user', 'role', 'agent', 'lock']) assert.ok(p.refusal({ op: 'list', prefix: `/resources/${kind}/` }), kind);
  });
});
