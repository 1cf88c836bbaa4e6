// A server whose proxy_service.public_addr names another port than the one it listens on (a load
// balancer's, HAProxy here, as a real process in front): what it tells people to dial names the public
// address, as `tokens add` already does. Real `kport server start`, real oidc-provider, real HAProxy.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { Browser } from '../helpers/browser.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { keyAndCsr, post } from '../helpers/person.ts';
import { startHaproxy, type Haproxy } from '../peers/haproxy.ts';
import { oidcAuthentication, startOidcProvider, type OidcPeer } from '../peers/oidc.ts';
import { freePort, havePeer } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const LOOPBACK = 'http://127.0.0.1:9/callback';

describe("public_addr on another port than the listen one (a load balancer's)", { concurrency: false, timeout: 180_000 }, () => {
  let server: TestServer | undefined;
  let idp: OidcPeer | undefined;
  let lb: Haproxy | undefined;
  let serverCa = '';
  let lbPort = 0;
  const have = (t: TestContext) => havePeer(t, 'HAProxy', [BINARIES.haproxy()]);

  before(async (t) => {
    if (!have(t as never)) return;
    lbPort = await freePort();
    // The provider knows only the public callback: a redirect to the listen port would be refused there.
    idp = await startOidcProvider({ redirectUris: [`https://127.0.0.1:${lbPort}/v1/login/oidc/callback`] });
    server = await startServer({
      proxy: { public_addr: [`127.0.0.1:${lbPort}`, 'kport.example:443'] },
      auth: {
        authentication: {
          ...oidcAuthentication(idp),
          scope: ['groups'],
          claims_to_roles: [{ claim: 'groups', value: 'dev', roles: ['access'] }],
        },
      },
    });
    assert.notEqual(server.port, lbPort);
    lb = await startHaproxy({ servers: [{ name: 's0', address: server.address }], port: lbPort });
    await lb.waitUp(['s0']);
    const store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
    try {
      serverCa = JSON.parse((await store.get('/authorities/server_tls'))!.value).cert;
    } finally {
      await store.close();
    }
  });
  after(async () => {
    await lb?.stop();
    await server?.stop();
    await idp?.stop();
  });

  test("the first editor's invite line names the public address, not the listen port", async (t) => {
    if (!have(t)) return;
    assert.match(server!.out, new RegExp(`kport login --proxy 127\\.0\\.0\\.1:${lbPort} --ca-pin`), server!.out);
    assert.doesNotMatch(server!.out, new RegExp(`--proxy \\S+:${server!.port} `));
  });

  test('an OIDC login through the balancer: the provider sends the browser back to the public address, and the login completes', async (t) => {
    if (!have(t)) return;
    const { csr } = await keyAndCsr('alice');
    const begun = await post(lbPort, '/v1/login/oidc/begin', { csr, redirect_uri: LOOPBACK });
    assert.equal(begun.status, 200, JSON.stringify(begun.body));
    const redirectUri = new URL(begun.body.auth_url).searchParams.get('redirect_uri');
    assert.equal(redirectUri, `https://127.0.0.1:${lbPort}/v1/login/oidc/callback`);
    const browser = new Browser([idp!.caPem, serverCa]);
    try {
      const { stoppedAt } = await browser.signIn(begun.body.auth_url, 'alice', (url) => url.startsWith(LOOPBACK));
      assert.ok(stoppedAt, `the browser never reached the client's listener; visited:\n${browser.visited.join('\n')}`);
      const query = new URL(stoppedAt).searchParams;
      const finished = await post(lbPort, '/v1/login/oidc/finish', { attempt: query.get('attempt'), secret: begun.body.secret, code: query.get('code') });
      assert.equal(finished.status, 200, JSON.stringify(finished.body));
      assert.equal(finished.body.user, 'alice');
    } finally {
      await browser.close();
    }
  });
});
