// OIDC logins through a real `kport server start` (the routes as the server wires them), against
// oidc-provider run as a test peer; the browser driven with plain HTTP through the provider's pages.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser } from '../../src/people/users.ts';
import { MAX_ATTEMPTS_PER_SOURCE } from '../../src/server/oidc-attempts.ts';
import { listResources } from '../../src/resources/store.ts';
import { Browser } from '../helpers/browser.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { keyAndCsr, post } from '../helpers/person.ts';
import { freePort } from '../peers/process.ts';
import { startOidcProvider, type OidcPeer } from '../peers/oidc.ts';

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
    return { ...(await post(server.port, '/v1/login/oidc/finish', { attempt: query.get('attempt'), secret: begun.body.secret, code: query.get('code') })), key };
  } finally {
    await browser.close();
  }
}

describe('people through OIDC at a real server', { timeout: 180_000 }, () => {
  before(async () => {
    const port = await freePort();
    idp = await startOidcProvider({ redirectUris: [`https://127.0.0.1:${port}/v1/login/oidc/callback`] });
    server = await startServer({
      port,
      auth: {
        authentication: { type: 'oidc', issuer_url: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret, ca_file: idp.caFile, scope: ['groups'], claims_to_roles: [{ claim: 'groups', value: 'dev', roles: ['access'] }, { claim: 'groups', value: 'ops', roles: ['editor'] }] },
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
    assert.match(refused.body.error.message, new RegExp(`^127\\.0\\.0\\.3 has ${MAX_ATTEMPTS_PER_SOURCE} OIDC logins in progress, the most one address may have: .*kport login --auth oidc again\\.$`));
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
});
