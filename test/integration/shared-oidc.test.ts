// An OIDC login through two `kport server start` processes on one etcd (issue 29): begun on server A,
// the browser's callback lands on server B (the address the provider redirects to, as behind a load
// balancer), and finished on either. A callback replayed to the other server counts once, and two
// finishes racing on A and B: exactly one gets the certificate.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Browser } from '../helpers/browser.ts';
import { pinnedCa, startServer, type TestServer } from '../helpers/network.ts';
import { keyAndCsr, post } from '../helpers/person.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { freePort, havePeer } from '../peers/process.ts';
import { oidcAuthentication, startOidcProvider, type OidcPeer } from '../peers/oidc.ts';
import { BINARIES } from '../peers/versions.ts';

const LOOPBACK = 'http://127.0.0.1:9/callback';

describe('an OIDC login begun on one server and finished on another (issue 29)', { timeout: 240_000 }, () => {
  let etcd: EtcdCluster | undefined;
  let idp: OidcPeer;
  let a: TestServer;
  let b: TestServer;
  let ca: string;
  before(async (t) => {
    if (!havePeer(t as never, 'etcd', [BINARIES.etcd()])) return;
    etcd = await startEtcd({ members: 1 });
    const portB = await freePort();
    const callback = `https://127.0.0.1:${portB}/v1/login/oidc/callback`;
    idp = await startOidcProvider({ redirectUris: [callback] });
    const auth = {
      authentication: {
        ...oidcAuthentication(idp),
        // One callback address for both, as the load balancer's would be: here, B's.
        redirect_url: callback,
        scope: ['groups'],
        claims_to_roles: [{ claim: 'groups', value: 'dev', roles: ['access'] }],
      },
    };
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: '/kport-oidc' };
    a = await startServer({ storage, auth });
    b = await startServer({ storage, auth, port: portB, sealKeyFrom: a });
    ca = await pinnedCa(a);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await idp?.stop();
    await etcd?.stop();
  });

  /** Begun on A; the browser signs in as alice and comes back through B's callback; stops at the client's listener. */
  async function begunOnA(): Promise<{ attempt: string; code: string; secret: string; stoppedAt: string }> {
    const { csr } = await keyAndCsr('alice');
    const begun = await post(a.port, '/v1/login/oidc/begin', { csr, redirect_uri: LOOPBACK });
    assert.equal(begun.status, 200, JSON.stringify(begun.body));
    const browser = new Browser([idp.caPem, ca]);
    try {
      const { stoppedAt } = await browser.signIn(begun.body.auth_url, 'alice', (url) => url.startsWith(LOOPBACK));
      assert.ok(stoppedAt, `the browser never reached the client's listener; visited:\n${browser.visited.join('\n')}`);
      assert.ok(
        browser.visited.some((url) => url.startsWith(`https://127.0.0.1:${b.port}/v1/login/oidc/callback`)),
        'the callback went to B',
      );
      const query = new URL(stoppedAt).searchParams;
      return { attempt: query.get('attempt')!, code: query.get('code')!, secret: begun.body.secret, stoppedAt };
    } finally {
      await browser.close();
    }
  }

  test('begun on A, called back on B, finished on B (and on A): alice gets her certificate once', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    for (const finishAt of [b, a]) {
      const login = await begunOnA();
      const finish = (server: TestServer) => post(server.port, '/v1/login/oidc/finish', { attempt: login.attempt, secret: login.secret, code: login.code });
      const done = await finish(finishAt);
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.deepEqual([done.body.user, done.body.roles], ['alice', ['access']]);
      const again = await finish(finishAt === a ? b : a);
      assert.equal(again.body.error?.code, 'oidc_unknown_attempt', 'a finished login is gone from every server');
    }
  });

  test('a finish with the attempt id but a wrong secret (as from the redirect in browser history) leaves the login as it was: the client then finishes it', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    const login = await begunOnA();
    for (const bad of [
      { attempt: login.attempt, secret: 'x', code: 'y' },
      { attempt: login.attempt, secret: `x${login.secret.slice(1)}`, code: login.code },
      { attempt: login.attempt, secret: '', code: login.code },
    ]) {
      const refused = await post(b.port, '/v1/login/oidc/finish', bad);
      assert.equal(refused.body.error?.code, 'oidc_unknown_attempt', JSON.stringify(refused.body));
    }
    const done = await post(a.port, '/v1/login/oidc/finish', { attempt: login.attempt, secret: login.secret, code: login.code });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.user, 'alice');
  });

  test('two finishes racing on A and B: exactly one gets a certificate', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    const login = await begunOnA();
    const body = { attempt: login.attempt, secret: login.secret, code: login.code };
    const answers = await Promise.all([post(a.port, '/v1/login/oidc/finish', body), post(b.port, '/v1/login/oidc/finish', body)]);
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 404], JSON.stringify(answers.map((r) => r.body)));
  });
});
