// OIDC logins through a real `kport server start` (the routes as the server wires them), against
// oidc-provider run as a test peer; the browser driven with plain HTTP through the provider's pages.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser, removeUser } from '../../src/people/users.ts';
import { MAX_ATTEMPTS_PER_SOURCE } from '../../src/server/auth/oidc-attempts.ts';
import { listResources } from '../../src/resources/store.ts';
import { Browser } from '../helpers/browser.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { keyAndCsr, post } from '../helpers/person.ts';
import { freePort } from '../peers/process.ts';
import { oidcAuthentication, startOidcProvider, type OidcPeer } from '../peers/oidc.ts';

const LOOPBACK = 'http://127.0.0.1:9/callback';
let server: TestServer;
let idp: OidcPeer;
let store: SqliteBackend;
let serverCa: string;

/** begin at the server, sign in at the provider as `login`, stop where the browser reaches the client's listener, finish. */
async function loginAs(login: string): Promise<{ status: number; body: any; key: string }> {
  const { key, csr } = await keyAndCsr(login);
  const begun = await post(server.port, '/v1/login/oidc/begin', { csr, redirect_uri: LOOPBACK });
  assert.equal(begun.status, 200, JSON.stringify(begun.body));
  const browser = new Browser([idp.caPem, serverCa]);
  try {
    const { stoppedAt } = await browser.signIn(begun.body.auth_url, login, (url) => url.startsWith(LOOPBACK));
    assert.ok(stoppedAt, `the browser never reached the client's listener; visited:\n${browser.visited.join('\n')}`);
    const query = new URL(stoppedAt).searchParams;
    return {
      ...(await post(server.port, '/v1/login/oidc/finish', { attempt: query.get('attempt'), secret: begun.body.secret, code: query.get('code') })),
      key,
    };
  } finally {
    await browser.close();
  }
}

describe('people through OIDC at a real server', { timeout: 180_000 }, () => {
  before(async () => {
    const port = await freePort();
    // mallory's provider account says she is alice (a renamed account, or a recycled name); bobby's says BOB.
    const accounts = {
      mallory: { preferred_username: 'alice', groups: ['ops'] },
      bobby: { preferred_username: 'BOB', groups: ['dev'] },
      lengthy: { preferred_username: 'l'.repeat(300), groups: ['dev'] },
    };
    idp = await startOidcProvider({ redirectUris: [`https://127.0.0.1:${port}/v1/login/oidc/callback`], accounts });
    server = await startServer({
      port,
      auth: {
        authentication: {
          ...oidcAuthentication(idp),
          scope: ['groups'],
          claims_to_roles: [
            { claim: 'groups', value: 'dev', roles: ['access'] },
            { claim: 'groups', value: 'ops', roles: ['editor'] },
          ],
        },
      },
    });
    store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
    serverCa = JSON.parse((await store.get('/authorities/server_tls'))!.value).cert;
  });
  after(async () => {
    await store?.close();
    await server?.stop();
    await idp?.stop();
  });

  test(`one address may have ${MAX_ATTEMPTS_PER_SOURCE} OIDC logins in flight: the next from it is refused, a login from another address still goes through`, async () => {
    const flood = { localAddress: '127.0.0.3' };
    const { csr } = await keyAndCsr('flood');
    for (let i = 0; i < MAX_ATTEMPTS_PER_SOURCE; i++) {
      const begun = await post(server.port, '/v1/login/oidc/begin', { csr, redirect_uri: LOOPBACK }, flood);
      assert.equal(begun.status, 200, `begin ${i}: ${JSON.stringify(begun.body)}`);
    }
    const refused = await post(server.port, '/v1/login/oidc/begin', { csr, redirect_uri: LOOPBACK }, flood);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'oidc_busy');
    assert.match(
      refused.body.error.message,
      new RegExp(`^127\\.0\\.0\\.3 has ${MAX_ATTEMPTS_PER_SOURCE} OIDC logins in progress, the most one address may have: .*kport login --auth oidc again\\.$`),
    );
    const alice = await loginAs('alice');
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    assert.equal(alice.body.user, 'alice');
  });

  test('alice signs in at the provider and gets a user certificate; her calls are decided by the roles her groups map to', async () => {
    const alice = await loginAs('alice');
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    assert.deepEqual([alice.body.user, alice.body.roles], ['alice', ['access']]);
    const who = await post(server.port, '/v1/whoami', {}, { cert: alice.body.cert, key: alice.key });
    assert.deepEqual([who.status, who.body.user, who.body.roles], [200, 'alice', ['access']]);
    assert.equal((await post(server.port, '/v1/users', { op: 'ls' }, { cert: alice.body.cert, key: alice.key })).status, 403);
    const record = JSON.parse((await store.get('/resources/user/alice'))!.value);
    assert.equal(record.spec.auth, 'oidc');
    assert.ok(Math.abs(Date.parse(record.metadata.expires) - Date.parse(alice.body.expires)) < 5000, 'the OIDC user record expires with the certificate');
    const events = (await listResources<any>(store, 'audit_event')).map((e) => e.spec);
    assert.ok(events.some((e) => e.type === 'user.login' && e.outcome === 'allowed' && e.user === 'alice' && e.action === 'login oidc'));
  });

  test('an OIDC login with the name of a local user is refused, audited, and the local user is untouched', async () => {
    await addUser(store, { name: 'bob', roles: ['auditor'] }, new Date());
    const before = (await store.get('/resources/user/bob'))!;
    const bob = await loginAs('bob');
    assert.equal(bob.status, 403);
    assert.equal(bob.body.error.code, 'oidc_name_taken');
    assert.match(bob.body.error.message, /bob is a local kport user/);
    assert.equal((await store.get('/resources/user/bob'))!.revision, before.revision);
    const events = (await listResources<any>(store, 'audit_event')).map((e) => e.spec);
    assert.ok(events.some((e) => e.type === 'user.login' && e.outcome === 'refused' && e.user === 'bob' && /local kport user/.test(e.reason ?? '')));
  });

  test("the OIDC user alice is bound to the provider account that first logged in as it: another account named alice is refused and audited, and alice's certificate keeps its roles", async () => {
    const alice = await loginAs('alice');
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    const record = JSON.parse((await store.get('/resources/user/alice'))!.value);
    assert.deepEqual(record.spec.oidc, { issuer: idp.issuer, subject: 'alice' });
    const mallory = await loginAs('mallory');
    assert.equal(mallory.status, 403, JSON.stringify(mallory.body));
    assert.equal(mallory.body.error.code, 'oidc_subject_mismatch');
    assert.match(
      mallory.body.error.message,
      /^the kport user alice belongs to another account at the identity provider \(the one that first logged in as it\), and this account only has the same name: .*kport users rm alice\)\.$/,
    );
    const events = (await listResources<any>(store, 'audit_event')).map((e) => e.spec);
    assert.ok(
      events.some(
        (e) =>
          e.type === 'user.login' &&
          e.outcome === 'refused' &&
          e.user === 'alice' &&
          e.reason === `OIDC login refused: alice is bound to subject alice of ${idp.issuer}, this login is subject mallory of ${idp.issuer}`,
      ),
    );
    assert.equal(JSON.parse((await store.get('/resources/user/alice'))!.value).spec.uid, record.spec.uid, 'the refused login left the record as it was');
    const who = await post(server.port, '/v1/whoami', {}, { cert: alice.body.cert, key: alice.key });
    assert.deepEqual([who.status, who.body.roles], [200, ['access']], "alice's certificate did not gain the editor role mallory's groups map to");
  });

  test("a name handed on (users rm, then another account logs in as it): the earlier account's certificate is refused at its next call, the new one has its own roles", async () => {
    const alice = await loginAs('alice');
    assert.equal(alice.status, 200, JSON.stringify(alice.body));
    assert.equal(await removeUser(store, 'alice'), true);
    const mallory = await loginAs('mallory');
    assert.equal(mallory.status, 200, JSON.stringify(mallory.body));
    assert.deepEqual([mallory.body.user, mallory.body.roles], ['alice', ['editor']]);
    assert.deepEqual(JSON.parse((await store.get('/resources/user/alice'))!.value).spec.oidc, { issuer: idp.issuer, subject: 'mallory' });
    const old = await post(server.port, '/v1/whoami', {}, { cert: alice.body.cert, key: alice.key });
    assert.equal(old.status, 403, JSON.stringify(old.body));
    assert.equal(old.body.error.code, 'login_revoked');
    assert.match(old.body.error.message, /^this login of alice was revoked at this server /);
    assert.equal((await post(server.port, '/v1/users', { op: 'ls' }, { cert: alice.body.cert, key: alice.key })).status, 403);
    const now = await post(server.port, '/v1/whoami', {}, { cert: mallory.body.cert, key: mallory.key });
    assert.deepEqual([now.status, now.body.roles], [200, ['editor']]);
    // Back to how the other tests expect alice: hers again.
    assert.equal(await removeUser(store, 'alice'), true);
  });

  test('user names are unique whatever their case: an OIDC login as BOB beside the local bob is refused; users add Alice beside alice is refused; get audit --user finds every case', async () => {
    if (!(await store.get('/resources/user/bob'))) await addUser(store, { name: 'bob', roles: ['auditor'] }, new Date());
    const bobby = await loginAs('bobby');
    assert.equal(bobby.status, 403, JSON.stringify(bobby.body));
    assert.deepEqual(bobby.body.error, {
      code: 'oidc_name_taken',
      message:
        'BOB names the local kport user bob (a user named bob exists, and user names differ in more than case), so an OIDC login cannot take that name: log in with kport login (password and code), or ask an editor to remove the local user.',
    });
    assert.equal(await store.get('/resources/user/BOB'), undefined);
    assert.equal((await loginAs('alice')).status, 200);
    const added = await server.kport(['users', 'add', 'Alice', '--roles', 'access']);
    assert.notEqual(added.exitCode, 0);
    assert.match(
      String(added.stderr),
      /user Alice is refused: a user named alice exists, and user names differ in more than case: pick another name, or remove alice first \(kport users rm alice\)\./,
    );
    const audit = await server.kport(['get', 'audit', '--user', 'Bob', '--format=json']);
    assert.equal(audit.exitCode, 0, String(audit.stderr));
    const users = new Set(JSON.parse(String(audit.stdout)).map((e: any) => e.spec.user));
    assert.ok(users.has('bob') && users.has('BOB'), `get audit --user Bob finds bob's and BOB's events: ${[...users].join(', ')}`);
  });

  test('a provider name too long to be a kport name is refused, and the audit events name it, cut to 256 characters with its length', async () => {
    const lengthy = await loginAs('lengthy');
    assert.equal(lengthy.status, 403, JSON.stringify(lengthy.body));
    assert.equal(lengthy.body.error.code, 'oidc_bad_username');
    const named = (await listResources<any>(store, 'audit_event'))
      .map((e) => e.spec)
      .filter((e) => e.type === 'user.login' && e.outcome === 'refused' && e.user?.startsWith('llll'));
    assert.deepEqual(named.map((e) => [e.action, e.user.length, e.user.endsWith('(300 characters)')]).sort(), [
      ['/v1/login/oidc/finish', 256, true],
      ['login oidc callback', 256, true],
    ]);
  });
});
