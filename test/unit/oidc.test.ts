import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { clientAuthMethods } from '../../src/server/auth/oidc-client-auth.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ATTEMPT_TTL_MS, Attempts, MAX_ATTEMPTS, MAX_ATTEMPTS_PER_SOURCE, digest, type Attempt } from '../../src/server/auth/oidc-attempts.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { rolesForClaims, userFromClaims } from '../../src/server/auth/oidc-claims.ts';
import { loopbackUrl } from '../../src/server/auth/oidc.ts';
import { tempHome } from '../helpers/run.ts';

const mappings = {
  claims_to_roles: [
    { claim: 'groups', value: 'dev', roles: ['access'] },
    { claim: 'groups', value: 'team-*', roles: ['access', 'auditor'] },
    { claim: 'hd', value: '^(example|corp)\\.com$', roles: ['editor'] },
  ],
};

describe('claims_to_roles', () => {
  test('a list claim matches by any item; globs and ^regex$ match as label values do; roles are deduplicated', () => {
    assert.deepEqual(rolesForClaims(mappings, { groups: ['x', 'dev'] }, 'a'), ['access']);
    assert.deepEqual(rolesForClaims(mappings, { groups: ['dev', 'team-blue'] }, 'a'), ['access', 'auditor']);
    assert.deepEqual(rolesForClaims(mappings, { hd: 'corp.com' }, 'a'), ['editor']);
    assert.deepEqual(rolesForClaims(mappings, { groups: 'dev' }, 'a'), ['access']);
  });

  test("no match is one sentence naming the mapped claims' values and the claims seen", () => {
    assert.throws(() => rolesForClaims(mappings, { sub: 's', groups: ['ops'], hd: 'corp.com.evil' }, 'carol'), {
      code: 'oidc_no_role',
      message:
        'no claims_to_roles entry matches the claims the identity provider sent for carol (groups: ["ops"]; hd: "corp.com.evil"; claims seen: sub, groups, hd): an administrator maps one of them to a role in auth_service.authentication.claims_to_roles.',
    });
    assert.throws(() => rolesForClaims(mappings, {}, 'dave'), { message: /\(groups: absent; hd: absent; claims seen: \)/ });
  });
});

describe('the user name from the ID token', () => {
  test('username_claim names the person; a missing, unverified or invalid one is refused', () => {
    assert.equal(userFromClaims({ username_claim: 'preferred_username' }, { preferred_username: 'alice' }), 'alice');
    assert.throws(() => userFromClaims({ username_claim: 'preferred_username' }, { sub: 'x' }), {
      code: 'oidc_no_username',
      message: /sent no preferred_username claim .*claims seen: sub\): set auth_service\.authentication\.username_claim/,
    });
    assert.throws(() => userFromClaims({ username_claim: 'preferred_username' }, { preferred_username: '../admin' }), { code: 'oidc_bad_username' });
    // A person named like a built-in role reads as that role in every listing.
    assert.throws(() => userFromClaims({ username_claim: 'preferred_username' }, { preferred_username: 'Editor' }), {
      code: 'oidc_bad_username',
      message: /built-in role editor/,
    });
    assert.throws(() => userFromClaims({ username_claim: 'email' }, { email: 'a@example.com', email_verified: false }), { code: 'oidc_email_unverified' });
  });
});

test('redirect_uri: only http on a loopback address with a port, nothing else in it', () => {
  for (const ok of ['http://127.0.0.1:5000/callback', 'http://localhost:1/', 'http://[::1]:8080/cb?x=1']) assert.equal(loopbackUrl(ok), true, ok);
  for (const bad of [
    'https://127.0.0.1:5000/callback',
    'http://127.0.0.1/callback',
    'http://evil.example:80/',
    'http://127.0.0.1.nip.io:80/',
    'http://u:p@127.0.0.1:1/',
    'http://127.0.0.1:1/#x',
    'javascript:alert(1)',
    `http://127.0.0.1:1/${'a'.repeat(600)}`,
  ]) {
    assert.equal(loopbackUrl(bad), false, bad);
  }
});

describe('pending logins are bounded, in the store, sealed', () => {
  const id = (name: string) => name.padEnd(43, '_');
  const attempt = (name: string, created: number, source = `10.0.${Number(name) >> 4}.1`): Attempt => ({
    id: id(name),
    state: `s-${name}`,
    nonce: 'n',
    verifier: 'v',
    csr: 'c',
    redirectUri: 'r',
    source,
    created,
    secretHash: digest('x'),
  });
  const table = (now: () => number, backend = new MemoryBackend({ now })) => new Attempts({ backend, sealKey: randomBytes(32), now });

  test(`at ${MAX_ATTEMPTS} logins in flight a new one is refused with one sentence; once they expire there is room again`, async () => {
    let now = 0;
    const attempts = table(() => now);
    for (let i = 0; i < MAX_ATTEMPTS; i++) await attempts.add(attempt(String(i), now));
    await assert.rejects(attempts.add(attempt('late', now)), {
      code: 'oidc_busy',
      message: `the server has ${MAX_ATTEMPTS} OIDC logins in progress, its limit: try again in a few minutes.`,
    });
    assert.equal(await attempts.size(), MAX_ATTEMPTS);
    // The ones already in flight are kept (a flood does not cut off people in their browser).
    assert.ok(await attempts.byState('s-0'));
    now = ATTEMPT_TTL_MS + 1;
    await attempts.add(attempt('next', now));
    assert.equal(await attempts.size(), 1);
    assert.equal(await attempts.get(id('0')), undefined);
  });

  test(`one source may have ${MAX_ATTEMPTS_PER_SOURCE} logins in flight; another source still begins one; a finished one makes room`, async () => {
    const attempts = table(() => 0);
    for (let i = 0; i < MAX_ATTEMPTS_PER_SOURCE; i++) await attempts.add(attempt(`a${i}`, 0, '2001:db8::/64'));
    await assert.rejects(attempts.add(attempt('a-late', 0, '2001:db8::/64')), {
      code: 'oidc_busy',
      message: /^2001:db8::\/64 has 20 OIDC logins in progress, the most one address may have/,
    });
    await attempts.add(attempt('b', 0, '192.0.2.7'));
    await attempts.delete((await attempts.get(id('a0')))!.attempt);
    await attempts.delete({ ...attempt('a0', 0, '2001:db8::/64') });
    await attempts.add(attempt('a-next', 0, '2001:db8::/64'));
    await assert.rejects(attempts.add(attempt('a-last', 0, '2001:db8::/64')), { code: 'oidc_busy' }, 'a deleted attempt counts once');
    assert.equal(await attempts.size(), MAX_ATTEMPTS_PER_SOURCE + 1);
  });

  test('an expired attempt is gone by id and by state', async () => {
    let now = 0;
    const attempts = table(() => now);
    await attempts.add(attempt('a', 0));
    now = ATTEMPT_TTL_MS + 1;
    assert.equal(await attempts.byState('s-a'), undefined);
    assert.equal(await attempts.get(id('a')), undefined);
  });

  test('two servers on one store: an attempt changes only at the revision read, and is taken exactly once; nothing secret is in the store in clear', async () => {
    const backend = new MemoryBackend();
    const sealKey = randomBytes(32);
    const one = new Attempts({ backend, sealKey, now: () => 0 });
    const two = new Attempts({ backend, sealKey, now: () => 0 });
    const begun = { ...attempt('r', 0), verifier: 'verifier-secret-1', nonce: 'nonce-secret-2' };
    await one.add(begun);
    const [a, b] = [await one.byState('s-r'), await two.byState('s-r')];
    const changes = await Promise.all([
      one.update(a!, { ...a!.attempt, calledBack: true, code: 'c1' }),
      two.update(b!, { ...b!.attempt, calledBack: true, code: 'c2' }),
    ]);
    assert.equal(changes.filter(Boolean).length, 1, 'one callback wins');
    const [x, y] = [await one.get(id('r')), await two.get(id('r'))];
    assert.deepEqual(await Promise.all([one.take(x!), two.take(y!)]).then((r) => r.filter(Boolean).length), 1, 'one finish wins');
    assert.equal(await two.get(id('r')), undefined);
    await one.add({ ...begun, id: id('s'), state: 's-s' });
    const stored = JSON.stringify(await backend.list('/oidc/'));
    for (const secret of ['verifier-secret-1', 'nonce-secret-2', 's-s']) assert.ok(!stored.includes(secret), secret);
    const other = new Attempts({ backend, sealKey: randomBytes(32), now: () => 0 });
    assert.equal(await other.get(id('s')), undefined, 'another seal key reads nothing');
  });
});

describe('auth_service.authentication in the config', () => {
  const load = async (text: string) => {
    const dir = tempHome();
    const path = join(dir, 'kport.yaml');
    writeFileSync(path, text);
    return loadConfig({ file: path, cwd: dir, env: { HOME: dir } });
  };
  const oidc = `auth_service:
  authentication:
    type: oidc
    issuer_url: https://idp.example.com
    client_id: kport
    client_secret: s3cret
    claims_to_roles:
      - {claim: groups, value: "^dev-.*$", roles: [access]}
`;

  test("type oidc with Teleport's field names loads, with kport's defaults; no authentication means local", async () => {
    const config = await load(oidc);
    assert.deepEqual(config.auth_service?.authentication, {
      type: 'oidc',
      issuer_url: 'https://idp.example.com',
      client_id: 'kport',
      client_secret: 's3cret',
      username_claim: 'preferred_username',
      scope: [],
      claims_to_roles: [{ claim: 'groups', value: '^dev-.*$', roles: ['access'] }],
    });
    assert.deepEqual((await load('auth_service:\n  enabled: yes\n')).auth_service?.authentication, { type: 'local' });
    assert.deepEqual((await load('auth_service:\n  authentication:\n    type: local\n    second_factor: otp\n')).auth_service?.authentication, {
      type: 'local',
      second_factor: 'otp',
    });
  });

  test('an http issuer, an unknown key, no mapping or a regex RE2 refuses are config errors', async () => {
    await assert.rejects(load(oidc.replace('https://idp', 'http://idp')), /issuer_url must be an https:\/\/ URL/);
    await assert.rejects(load(`${oidc}    client_secrte: x\n`), /client_secrte/);
    await assert.rejects(load(oidc.replace(/claims_to_roles:[\s\S]*$/, 'claims_to_roles: []\n')), /claims_to_roles needs at least one/);
    await assert.rejects(load(oidc.replace('^dev-.*$', '^(?=x)$')), /not a regular expression RE2 accepts/);
  });

  test("client_auth_method is basic, post or private_key_jwt (with client_key_file); absent, the provider's discovery document decides", async () => {
    for (const method of ['basic', 'post']) {
      assert.equal(
        ((await load(`${oidc}    client_auth_method: ${method}\n`)).auth_service?.authentication as { client_auth_method?: string } | undefined)
          ?.client_auth_method,
        method,
      );
    }
    await assert.rejects(
      load(`${oidc}    client_auth_method: client_secret_jwt\n`),
      /auth_service\.authentication\.client_auth_method \(line 9\): expected "basic" or "post" or "private_key_jwt", got the string "client_secret_jwt"/,
    );
    await assert.rejects(
      load(`${oidc}    client_auth_method: private_key_jwt\n`),
      /client_key_file.*: client_auth_method private_key_jwt needs client_key_file/,
    );
    await assert.rejects(
      load(oidc.replace('    client_secret: s3cret\n', '')),
      /client_secret.*: client_secret is needed, unless the server authenticates with client_key_file/,
    );
    assert.equal(
      (
        (await load(`${oidc.replace('    client_secret: s3cret\n', '')}    client_key_file: /etc/kport/client.key\n`)).auth_service?.authentication as
          | { client_key_file?: string }
          | undefined
      )?.client_key_file,
      '/etc/kport/client.key',
    );
    const secret = { secret: true, key: false };
    assert.deepEqual(clientAuthMethods(undefined, undefined, secret), ['basic'], 'absent from discovery: client_secret_basic (OpenID Connect Discovery 1.0)');
    assert.deepEqual(clientAuthMethods(undefined, ['client_secret_post', 'private_key_jwt'], secret), ['post']);
    assert.deepEqual(clientAuthMethods(undefined, ['client_secret_post', 'client_secret_basic'], secret), ['basic', 'post']);
    assert.deepEqual(
      clientAuthMethods(undefined, ['client_secret_post', 'private_key_jwt'], { secret: true, key: true }),
      ['private_key_jwt', 'post'],
      'a configured key goes first',
    );
    assert.deepEqual(clientAuthMethods('post', ['client_secret_basic'], secret), ['post'], 'the configured method wins');
    assert.throws(
      () => clientAuthMethods(undefined, ['private_key_jwt', 'tls_client_auth'], secret),
      /takes none of client_secret_basic, client_secret_post \(its discovery document lists private_key_jwt, tls_client_auth\)/,
    );
  });
});
