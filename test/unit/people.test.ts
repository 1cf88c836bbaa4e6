import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { createInvite, inviteTtl, MAX_INVITE_TTL_MS } from '../../src/people/invites.ts';
import { oidcUser } from '../../src/people/oidc-user.ts';
import { MAX_PASSWORD_BYTES, passwordMatches, passwordNeedsRehash, passwordProblem, passwordVerifier } from '../../src/people/passwords.ts';
import {
  FORGET_MS,
  FREE_PAIR_FAILURES,
  FREE_USER_FAILURES,
  KNOWN_ADDRESS_MS,
  LoginThrottle,
  MAX_ENTRIES,
  MAX_SOURCE_FAILURES,
  WINDOW_MS,
  type ThrottleAlert,
} from '../../src/people/throttle.ts';
import { acceptedStep, newTotpSecret, totpCode } from '../../src/people/totp.ts';
import { addUser, listUsers, lockUser, removeUser } from '../../src/people/users.ts';
import { createAuthority, generateKeys, hostClaims, issueLeaf, userClaims } from '../../src/pki/certs.ts';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { BUILTIN_ROLES } from '../../src/resources/builtin-roles.ts';
import type { RoleV7 } from '../../src/resources/role.ts';
import { PersonPolicy } from '../../src/server/auth/person-policy.ts';

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

  test('passwords are hashed in NFKC: set composed (NFC), typed decomposed (NFD) or in compatibility forms, they pass; verifiers from before still pass as typed, in NFC or NFD, and are marked to be replaced', async () => {
    const nfc = 'Crème brûlée für Ångström'.normalize('NFC');
    const nfd = nfc.normalize('NFD');
    assert.notEqual(nfc, nfd);
    const verifier = await passwordVerifier(nfc);
    assert.match(verifier, /^scrypt-nfkc\$/);
    assert.equal(passwordNeedsRehash(verifier), false);
    for (const typed of [nfc, nfd]) assert.equal(await passwordMatches(verifier, typed), true, JSON.stringify(typed));
    assert.equal(
      await passwordMatches(await passwordVerifier('ｆｕｌｌｗｉｄｔｈ　ｐａｓｓ'), 'fullwidth pass'),
      true,
      'NFKC: fullwidth letters are their ASCII letters',
    );
    assert.equal(await passwordMatches(verifier, 'Creme brulee fur Angstrom'), false);
    // A verifier made before normalisation hashed the password as typed (here: decomposed).
    const salt = randomBytes(16);
    const legacy = `scrypt$16384$8$1$${salt.toString('base64url')}$${scryptSync(nfd, salt, 32, { N: 16384, r: 8, p: 1 }).toString('base64url')}`;
    assert.equal(passwordNeedsRehash(legacy), true);
    for (const typed of [nfd, nfc]) assert.equal(await passwordMatches(legacy, typed), true, JSON.stringify(typed));
    assert.equal(await passwordMatches(legacy, 'Creme brulee fur Angstrom'), false);
    assert.match(
      passwordProblem(`${'e\u0301'.repeat(10)}x`)!,
      /at least 12 characters/,
      'lengths count the password as hashed: 10 accented letters and an x are 11 characters, not 21',
    );
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

  test('throttle: past 5 failures one user from one address waits a minute, then twice as long after each failure, up to an hour; other addresses are not held back; a success starts over', () => {
    let now = 0;
    const alerts: ThrottleAlert[] = [];
    const throttle = new LoginThrottle({ now: () => now, alert: (a) => alerts.push(a) });
    for (let i = 0; i < FREE_PAIR_FAILURES; i++) {
      assert.equal(throttle.blocked('alice', '10.0.0.1'), undefined);
      throttle.failed('alice', '10.0.0.1');
    }
    assert.equal(
      throttle.blocked('alice', '10.0.0.1'),
      '5 failed logins for user alice from 10.0.0.1: try again from there in 60 s (this attempt was not checked)',
    );
    assert.match(throttle.blocked('Alice', '10.0.0.1')!, /for user alice from 10\.0\.0\.1/, 'a name is one user whatever its case');
    assert.equal(throttle.blocked('alice', '10.0.0.2'), undefined, 'strangers at another address do not hold alice back');
    assert.deepEqual(alerts, [{ scope: 'pair', user: 'alice', source: '10.0.0.1', failures: 5, waitMs: 60_000 }]);
    // Each failure after a wait doubles the next one, up to an hour; the clock is moved, never slept through.
    const waits: number[] = [];
    for (let failures = FREE_PAIR_FAILURES; failures < FREE_PAIR_FAILURES + 9; failures++) {
      const start = now;
      while (throttle.blocked('alice', '10.0.0.1')) now += 1000;
      waits.push((now - start) / 1000);
      throttle.failed('alice', '10.0.0.1');
    }
    assert.deepEqual(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    assert.match(throttle.blocked('alice', '10.0.0.1')!, /^14 failed logins for user alice from 10\.0\.0\.1: try again from there in 60 min/);
    assert.deepEqual(
      alerts.filter((a) => a.scope === 'pair').map((a) => [a.failures, a.waitMs]),
      [
        [5, 60_000],
        [11, 3_600_000],
      ],
      'an alert when the wait begins and when it reaches an hour',
    );
    throttle.succeeded('alice', '10.0.0.1');
    assert.equal(throttle.blocked('alice', '10.0.0.1'), undefined, 'a login that passed starts the pair over');
    // A count with no failure for a day is forgotten.
    for (let i = 0; i < FREE_PAIR_FAILURES - 1; i++) throttle.failed('bob', '10.0.0.3');
    now += FORGET_MS;
    throttle.failed('bob', '10.0.0.3');
    assert.equal(throttle.blocked('bob', '10.0.0.3'), undefined);
  });

  test('throttle: failures for a user from many addresses hold back every address it has not logged in from, never one it has; 20 per source address for any users', () => {
    let now = 1_000_000;
    const alerts: ThrottleAlert[] = [];
    const throttle = new LoginThrottle({ now: () => now, alert: (a) => alerts.push(a) });
    throttle.succeeded('carol', '192.0.2.7');
    for (let s = 0; s < FREE_USER_FAILURES / FREE_PAIR_FAILURES; s++) for (let i = 0; i < FREE_PAIR_FAILURES; i++) throttle.failed('carol', `10.1.0.${s}`);
    assert.deepEqual(
      alerts.find((a) => a.scope === 'user'),
      { scope: 'user', user: 'carol', source: '10.1.0.3', failures: 20, waitMs: 60_000, sources: 4 },
    );
    assert.equal(
      throttle.blocked('carol', '10.9.9.9'),
      '20 failed logins for user carol from several addresses: from an address it has not logged in from lately, try again in 60 s, or log in from one it has (this attempt was not checked)',
    );
    assert.equal(throttle.blocked('carol', '192.0.2.7'), undefined, 'carol at her own address is not held back by strangers');
    now += KNOWN_ADDRESS_MS;
    for (let i = 0; i < FREE_USER_FAILURES; i++) throttle.failed('carol', `10.2.0.${i}`);
    assert.match(throttle.blocked('carol', '192.0.2.7')!, /from several addresses/, 'an address is hers for 30 days after her last login from it');
    for (let i = 0; i < MAX_SOURCE_FAILURES; i++) throttle.failed(`u${i}`, '10.3.0.1');
    assert.match(throttle.blocked('dave', '10.3.0.1')!, /^20 failed logins from 10\.3\.0\.1 within a minute: try again in 60 s/);
    now += WINDOW_MS;
    assert.equal(throttle.blocked('dave', '10.3.0.1'), undefined);
  });

  test('throttle: its tables stay bounded, and a flood of other names and addresses does not push out a wait', () => {
    const now = 0;
    const throttle = new LoginThrottle({ now: () => now });
    for (let i = 0; i < FREE_PAIR_FAILURES; i++) throttle.failed('erin', '10.0.0.1');
    for (let i = 0; i < MAX_ENTRIES + 20_000; i++) throttle.failed(`n${i}`, `s${i}`);
    assert.ok(throttle.size <= 3 * MAX_ENTRIES + 10, `entries: ${throttle.size}`);
    assert.match(throttle.blocked('erin', '10.0.0.1')!, /5 failed logins for user erin/);
  });

  test('invites last 1 h by default, at most 48 h', () => {
    assert.equal(inviteTtl(undefined), 3_600_000);
    assert.equal(inviteTtl(MAX_INVITE_TTL_MS), MAX_INVITE_TTL_MS);
    assert.throws(() => inviteTtl(MAX_INVITE_TTL_MS + 1), /1 min to 48 h/);
  });

  test('an invite code is 48 hex characters, so it can never read as an option on a command line (`--invite -x...`)', async () => {
    const backend = new MemoryBackend();
    for (let i = 0; i < 300; i++) assert.match((await createInvite(backend, 'a', 60_000, Date.now())).invite, /^[0-9a-f]{48}$/);
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
    assert.deepEqual(
      (await backend.list('/')).map((i) => i.key),
      ['/resources/lock/a'],
    );
  });
});

test("an OIDC login never takes a local user's name; an OIDC user keeps its uid across logins and expires with its certificate", async () => {
  const backend = new MemoryBackend();
  const oidc = { issuer: 'https://idp.example', subject: 'olga-sub' };
  const soon = () => new Date(Date.now() + 3_600_000);
  await addUser(backend, { name: 'alice', roles: ['access'] }, new Date());
  await assert.rejects(
    oidcUser(backend, { user: 'alice', roles: ['editor'], oidc: { ...oidc, subject: 'x' }, expires: soon() }, new Date()),
    /alice is a local kport user/,
  );
  const first = await oidcUser(backend, { user: 'olga', roles: ['access'], oidc, expires: soon() }, new Date());
  const again = await oidcUser(backend, { user: 'olga', roles: ['auditor'], oidc, expires: soon() }, new Date());
  assert.equal(again.uid, first.uid);
  const listed = (await listUsers(backend, new Date())).find((u) => u.name === 'olga');
  assert.deepEqual([listed?.auth, listed?.roles], ['oidc', ['auditor']]);
});

test('an OIDC user is bound to its issuer and subject: another subject with the same name is refused; a record from before the binding is bound with a new uid', async () => {
  const backend = new MemoryBackend();
  const soon = () => new Date(Date.now() + 3_600_000);
  const a = { issuer: 'https://idp.example', subject: 'sub-a' };
  const first = await oidcUser(backend, { user: 'pat', roles: ['access'], oidc: a, expires: soon() }, new Date());
  for (const other of [
    { ...a, subject: 'sub-b' },
    { issuer: 'https://other.example', subject: 'sub-a' },
  ]) {
    await assert.rejects(
      oidcUser(backend, { user: 'pat', roles: ['editor'], oidc: other, expires: soon() }, new Date()),
      (err: Error & { code?: string; reason?: string }) => {
        assert.equal(err.code, 'oidc_subject_mismatch');
        assert.match(err.message, /^the kport user pat belongs to another account at the identity provider/);
        assert.match(err.reason!, /pat is bound to subject sub-a of https:\/\/idp\.example/);
        return true;
      },
    );
  }
  assert.deepEqual((await listUsers(backend, new Date())).find((u) => u.name === 'pat')?.roles, ['access'], 'the refused login changed nothing');
  // A record written before the binding existed (no spec.oidc): its next login binds it, under a new uid.
  const legacy = { kind: 'user', version: 'v2', metadata: { name: 'quinn' }, spec: { roles: ['access'], auth: 'oidc', uid: 'old-uid' } };
  await backend.put('/resources/user/quinn', JSON.stringify(legacy), { ttlMs: 3_600_000 });
  const bound = await oidcUser(backend, { user: 'quinn', roles: ['access'], oidc: a, expires: soon() }, new Date());
  assert.notEqual(bound.uid, 'old-uid');
  assert.notEqual(bound.uid, first.uid);
  assert.deepEqual(JSON.parse((await backend.get('/resources/user/quinn'))!.value).spec.oidc, a);
});

test('user names are unique whatever their case: users add and OIDC logins are refused for a name another user holds in another case; a store that already holds both still loads', async () => {
  const backend = new MemoryBackend();
  const soon = () => new Date(Date.now() + 3_600_000);
  await addUser(backend, { name: 'admin', roles: ['editor'] }, new Date());
  for (const name of ['Admin', 'ADMIN']) {
    await assert.rejects(addUser(backend, { name, roles: ['access'] }, new Date()), {
      code: 'user_exists',
      message: `user ${name} is refused: a user named admin exists, and user names differ in more than case: pick another name, or remove admin first (kport users rm admin).`,
    });
  }
  await assert.rejects(oidcUser(backend, { user: 'Admin', roles: ['access'], oidc: { issuer: 'i', subject: 's' }, expires: soon() }, new Date()), {
    code: 'oidc_name_taken',
    message:
      'Admin names the local kport user admin (a user named admin exists, and user names differ in more than case), so an OIDC login cannot take that name: log in with kport login (password and code), or ask an editor to remove the local user.',
  });
  // An OIDC person whose provider name changes only in case is the same user, under the record's name.
  const olga = await oidcUser(backend, { user: 'olga', roles: ['access'], oidc: { issuer: 'i', subject: 'o' }, expires: soon() }, new Date());
  assert.deepEqual(await oidcUser(backend, { user: 'Olga', roles: ['access'], oidc: { issuer: 'i', subject: 'o' }, expires: soon() }, new Date()), olga);
  await assert.rejects(addUser(backend, { name: 'OLGA', roles: ['access'] }, new Date()), /a user named olga exists/);
  // Removed, the name is free again in any case.
  assert.equal(await removeUser(backend, 'admin'), true);
  assert.equal((await addUser(backend, { name: 'Admin', roles: ['editor'] }, new Date())).user, 'Admin');
  // A store from before this rule, holding bob and Bob: both load and are listed; a third case is refused.
  for (const name of ['bob', 'Bob'])
    await backend.put(
      `/resources/user/${name}`,
      JSON.stringify({ kind: 'user', version: 'v2', metadata: { name }, spec: { roles: ['access'], auth: 'local' } }),
    );
  assert.deepEqual(
    (await listUsers(backend, new Date()))
      .map((u) => u.name)
      .filter((n) => /^bob$/i.test(n))
      .sort(),
    ['Bob', 'bob'],
  );
  await assert.rejects(addUser(backend, { name: 'BOB', roles: ['access'] }, new Date()), /user BOB is refused: a user named (bob|Bob) exists/);
  assert.equal(await removeUser(backend, 'Bob'), true);
  assert.deepEqual(
    (await listUsers(backend, new Date())).map((u) => u.name).filter((n) => /^bob$/i.test(n)),
    ['bob'],
  );
});

describe('user certificates', () => {
  test('a host certificate has no user claims and a user certificate no host claims', async () => {
    const ca = await createAuthority('ca', 3_600_000);
    const keys = await generateKeys();
    const user = Buffer.from(
      (await issueLeaf(ca, keys.publicKey, { commonName: 'alice', usage: 'client', validForMs: 60_000, user: { roles: ['access'] } })).rawData,
    );
    const host = Buffer.from(
      (await issueLeaf(ca, keys.publicKey, { commonName: 'h', usage: 'client', validForMs: 60_000, host: { roles: ['discovery'], discovery_group: '' } }))
        .rawData,
    );
    const both = Buffer.from(
      (
        await issueLeaf(ca, keys.publicKey, {
          commonName: 'h',
          usage: 'client',
          validForMs: 60_000,
          host: { roles: ['discovery'], discovery_group: '' },
          user: { roles: ['editor'] },
        })
      ).rawData,
    );
    assert.deepEqual(userClaims(user), { user: 'alice', roles: ['access'] });
    assert.equal(hostClaims(user), undefined);
    assert.equal(userClaims(host), undefined);
    assert.equal(userClaims(both), undefined);
    assert.equal(hostClaims(both), undefined);
  });
});

describe('person policy', () => {
  const dev: RoleV7 = { kind: 'role', version: 'v7', metadata: { name: 'dev' }, spec: { allow: { kubernetes_labels: { env: 'dev' } } } };
  const cluster = (name: string, env: string) =>
    item(`/resources/kube_cluster/${name}`, { kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: { kubeconfig: 'secret' } });

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
    assert.match(
      p.refusal({ op: 'put', key: '/resources/user/x', value: JSON.stringify({ kind: 'user', metadata: { name: 'x' }, spec: { roles: ['editor'] } }) })!,
      /kport users/,
    );
  });

  test('kube_cluster reads are filtered by kubernetes_labels and never carry a kubeconfig', () => {
    const p = policy(dev);
    const shown = p.views([cluster('a', 'dev'), cluster('b', 'prod')]);
    assert.deepEqual(
      shown.map((i) => i.key),
      ['/resources/kube_cluster/a'],
    );
    assert.equal(JSON.parse(shown[0]!.value).spec.kubeconfig, undefined);
    assert.equal(policy(builtin('auditor')).view(cluster('a', 'dev')), undefined);
    assert.equal(JSON.parse(policy(builtin('editor')).view(cluster('b', 'prod'))!.value).spec.kubeconfig, undefined);
  });

  test('editor writes tokens, valid roles and static clusters; access and auditor write nothing', () => {
    const editor = policy(builtin('editor'));
    const token = {
      op: 'create' as const,
      key: '/resources/token/t',
      value: JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 't' }, spec: { roles: ['kube'] } }),
    };
    assert.equal(editor.refusal(token), undefined);
    assert.match(policy(builtin('access')).refusal(token)!, /may not create token/);
    assert.match(policy(builtin('auditor')).refusal(token)!, /may not create token/);
    assert.match(editor.refusal({ ...token, value: token.value.replace('"t"', '"u"') })!, /named t/);
    assert.match(
      editor.refusal({
        op: 'put',
        key: '/resources/role/r',
        value: JSON.stringify({ kind: 'role', version: 'v7', metadata: { name: 'r' }, spec: { allow: { bogus: 1 } } }),
      })!,
      /not valid/,
    );
    const eks = { kind: 'kube_cluster', version: 'v3', metadata: { name: 'e' }, spec: { aws: { name: 'e', region: 'us-east-1', account_id: '123456789012' } } };
    assert.match(editor.refusal({ op: 'put', key: '/resources/kube_cluster/e', value: JSON.stringify(eks) })!, /only static/);
    assert.equal(editor.refusal({ op: 'delete', key: '/resources/agent/h' }), undefined);
    assert.match(editor.refusal({ op: 'put', key: '/resources/agent/h', value: '{}' })!, /only remove/);
    assert.equal(
      JSON.parse(editor.view(item('/resources/token/t', { kind: 'token', spec: { roles: [], verifier: 'scrypt$x' } }))!.value).spec.verifier,
      undefined,
    );
  });

  test('auditor lists audit events and discovery status, and nothing else', () => {
    const p = policy(builtin('auditor'));
    assert.equal(p.refusal({ op: 'list', prefix: '/resources/audit_event/' }), undefined);
    assert.equal(p.refusal({ op: 'list', prefix: '/resources/discovery_service/' }), undefined);
    assert.ok(p.refusal({ op: 'get', key: '/leaders/discovery/prod' }), 'leader keys hold a fence: the server reads them for the person');
    for (const kind of ['token', 'user', 'role', 'agent', 'lock']) assert.ok(p.refusal({ op: 'list', prefix: `/resources/${kind}/` }), kind);
  });
});
