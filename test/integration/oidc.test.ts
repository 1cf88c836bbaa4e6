// OIDC logins against a real OpenID provider (oidc-provider, run as a test peer over HTTPS), the
// browser driven with plain HTTP requests through the provider's own login and consent pages, the
// kport routes served over real HTTPS (test/helpers/oidc-harness.ts), and the client's loopback
// listener (src/client/oidc-login.ts). No mock of the provider or of any token.
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fetch } from 'undici';
import type { Route } from '../../src/api/routes.ts';
import { oidcLogin } from '../../src/client/oidc-login.ts';
import { createCsr, generateKeys, keyPem } from '../../src/pki/certs.ts';
import { OidcLogin } from '../../src/server/auth/oidc.ts';
import { OIDC_BEGIN_PATH, OIDC_FINISH_PATH } from '../../src/server/auth/oidc-routes.ts';
import { Browser } from '../helpers/browser.ts';
import { CLIENT_LOOPBACK, harnessClient, oidcSettings, startHarness, type Harness, type HarnessClient, harnessStore } from '../helpers/oidc-harness.ts';
import { startOidcProvider, type OidcPeer } from '../peers/oidc.ts';

let harness: Harness;
let idp: OidcPeer;
let api: HarnessClient;

const post = (path: string, body: unknown) => api.post(path, body);
/** oidcLogin's transport: by route, over the harness's HTTPS. */
const postRoute = (route: Route, body: unknown) => post(route.path, body);
const begin = () => api.begin();
const signInToLoopback = (login: string, peer: OidcPeer = idp) => api.signInToLoopback(login, peer);
const finishAs = (login: string, peer: OidcPeer = idp) => api.finishAs(login, peer);

async function waitForLine(lines: string[]): Promise<void> {
  for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(lines.length > 0, 'the client printed nothing');
}

async function trustProvider(peer: OidcPeer, now?: () => Date): Promise<void> {
  harness.login = await OidcLogin.create(oidcSettings(peer), { callbackUrl: harness.callbackUrl, store: harnessStore(), ...(now && { now }) });
}

describe('OIDC login against oidc-provider', { timeout: 300_000 }, () => {
  before(async () => {
    harness = await startHarness();
    api = harnessClient(harness);
    idp = await startOidcProvider({ redirectUris: [harness.callbackUrl] });
    await trustProvider(idp);
  });
  after(async () => {
    await idp?.stop();
    await api?.close();
    await harness?.close();
  });

  test('alice logs in through the browser: her roles come from her groups, and the certificate is for the key the client made', async () => {
    const keys = await generateKeys();
    const browser = new Browser([idp.caPem, harness.caPem]);
    let page: { status: number; body: string } | undefined;
    const identity = (await oidcLogin({
      post: postRoute,
      csr: await createCsr(keys, 'alice'),
      browser: 'default',
      say: () => {},
      // The "browser" goes all the way: provider pages, kport's callback, then the client's listener.
      openBrowser: async (url) => {
        void browser.signIn(url, 'alice').then((end) => (page = end.last));
      },
    })) as { user: string; roles: string[]; cert: string };
    await browser.close();
    assert.equal(identity.user, 'alice');
    assert.deepEqual(identity.roles, ['access']);
    const cert = new X509Certificate(identity.cert);
    assert.equal(cert.subject, 'CN=alice');
    assert.ok(cert.publicKey.equals(createPublicKey(await keyPem(keys.privateKey))), 'the certificate is for the key the client made');
    // The last page the browser saw is the client's own, telling the person it worked.
    assert.equal(page?.status, 200);
    assert.match(page!.body, /you can close this window/);
    assert.ok(
      browser.visited.some((u) => u.startsWith(harness.callbackUrl)),
      'the browser passed through the kport callback',
    );
    assert.ok(
      browser.visited.some((u) => u.startsWith(idp.issuer)),
      'the browser signed in at the provider',
    );
  });

  test('--browser none prints the URL; the listener turns away anything but this login; no browser back in time is one sentence', async () => {
    const said: string[] = [];
    let listener = '';
    const spy = async (route: Route, body: any) => {
      if (route.path === OIDC_BEGIN_PATH) listener = body.redirect_uri;
      return postRoute(route, body);
    };
    const login = oidcLogin({ post: spy, csr: await createCsr(await generateKeys(), 'x'), browser: 'none', say: (line) => said.push(line), waitMs: 3000 });
    const rejected = assert.rejects(login, {
      message:
        'the browser did not come back from the identity provider within 3 seconds: run kport login --auth oidc again (--browser none prints the URL to open yourself).',
    });
    await waitForLine(said);
    const authUrl = /https:\/\/\S+/.exec(said[0]!)![0];
    assert.match(said[0]!, /^Open this URL in a browser on this machine to log in:/);
    assert.ok(authUrl.startsWith(`${idp.issuer}/auth?`), authUrl);
    const loopback = new URL(new URL(authUrl).searchParams.get('redirect_uri')!).origin === new URL(harness.callbackUrl).origin;
    assert.ok(loopback, 'the provider sends the browser back to the kport server, not to the client');
    assert.match(listener, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    for (const stray of [`${listener}?attempt=someone-else&code=x`, `${listener.replace('/callback', '/favicon.ico')}`]) {
      const res = await fetch(stray);
      assert.equal(res.status, 404, stray);
      assert.match(await res.text(), /waiting for one kport login/);
    }
    await rejected;
  });

  test('bob: a ^regex$ claims_to_roles value matches his ops group', async () => {
    const identity = await finishAs('bob');
    assert.equal(identity.user, 'bob');
    assert.deepEqual(identity.roles, ['editor', 'auditor']);
  });

  test('carol: a claim that maps to no role is refused with one sentence naming the claims seen, in the terminal and in the browser', async () => {
    const browser = new Browser([idp.caPem, harness.caPem]);
    let page: { status: number; body: string } | undefined;
    await assert.rejects(
      oidcLogin({
        post: postRoute,
        csr: await createCsr(await generateKeys(), 'carol'),
        browser: 'default',
        say: () => {},
        openBrowser: async (url) => {
          void browser.signIn(url, 'carol').then((end) => (page = end.last));
        },
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'oidc_no_role');
        assert.match(
          err.message,
          /^no claims_to_roles entry matches the claims the identity provider sent for carol \(groups: \[\]; claims seen: [^)]*groups[^)]*\): an administrator maps one of them to a role in auth_service\.authentication\.claims_to_roles\.$/,
        );
        return true;
      },
    );
    await browser.close();
    assert.equal(page?.status, 403);
    assert.match(page!.body, /Login refused/);
    assert.match(page!.body, /no claims_to_roles entry matches/);
  });

  test('state mismatch: a callback whose state names no login is refused, and the genuine callback still completes', async () => {
    const begun = await begin();
    const browser = new Browser([idp.caPem, harness.caPem]);
    const { stoppedAt } = await browser.signIn(begun.auth_url, 'alice', (url) => url.startsWith(harness.callbackUrl));
    assert.ok(stoppedAt);
    const tampered = new URL(stoppedAt);
    tampered.searchParams.set('state', `${tampered.searchParams.get('state')}x`);
    const refused = await browser.request(tampered.href);
    assert.equal(refused.status, 400);
    assert.deepEqual(JSON.parse(refused.body).error, {
      code: 'oidc_unknown_state',
      message: 'this login callback names no login in progress at this server (its state is unknown or expired): run kport login --auth oidc again.',
    });
    const genuine = await browser.request(stoppedAt);
    assert.equal(genuine.status, 303);
    await browser.close();
    const query = new URL(genuine.location!).searchParams;
    assert.equal((await post(OIDC_FINISH_PATH, { attempt: query.get('attempt'), secret: begun.secret, code: query.get('code') })).user, 'alice');
  });

  test('a replayed callback is refused, and a finished login cannot be finished again', async () => {
    const begun = await begin();
    const browser = new Browser([idp.caPem, harness.caPem]);
    const { stoppedAt } = await browser.signIn(begun.auth_url, 'alice', (url) => url.startsWith(harness.callbackUrl));
    const first = await browser.request(stoppedAt!);
    assert.equal(first.status, 303);
    const replay = await browser.request(stoppedAt!);
    await browser.close();
    assert.equal(replay.status, 409);
    assert.deepEqual(JSON.parse(replay.body).error, {
      code: 'oidc_replayed_callback',
      message: 'this login callback was already used, and a callback counts once: run kport login --auth oidc again.',
    });
    const query = new URL(first.location!).searchParams;
    const finish = { attempt: query.get('attempt'), secret: begun.secret, code: query.get('code') };
    assert.equal((await post(OIDC_FINISH_PATH, finish)).user, 'alice');
    await assert.rejects(post(OIDC_FINISH_PATH, finish), {
      code: 'oidc_unknown_attempt',
      message: 'this OIDC login is unknown, expired or already finished: run kport login --auth oidc again.',
    });
  });

  test('whoever began a login cannot finish it without the code the signed-in browser carried (a phished login link)', async () => {
    const { begun, attempt } = await signInToLoopback('alice');
    await assert.rejects(post(OIDC_FINISH_PATH, { attempt, secret: begun.secret, code: 'guessed' }), { code: 'oidc_wrong_code' });
  });

  test("begin refuses a redirect_uri that is not the client's loopback listener", async () => {
    const csr = await createCsr(await generateKeys(), 'x');
    for (const redirect_uri of [
      'https://127.0.0.1:9/callback',
      'http://evil.example:9/callback',
      'http://127.0.0.1/callback',
      'http://user@127.0.0.1:9/callback',
      'http://127.0.0.1.evil.example:9/',
    ]) {
      await assert.rejects(
        post(OIDC_BEGIN_PATH, { csr, redirect_uri }),
        { code: 'bad_request', message: /^redirect_uri must be http:\/\/127\.0\.0\.1:PORT/ },
        redirect_uri,
      );
    }
    await assert.rejects(post(OIDC_BEGIN_PATH, { csr: 'not a csr', redirect_uri: CLIENT_LOOPBACK }), {
      code: 'bad_request',
      message: /^csr must be a PEM certificate request/,
    });
  });

  test("an expired ID token is refused (the server's clock is two hours ahead of the provider's one-hour tokens)", async () => {
    await trustProvider(idp, () => new Date(Date.now() + 2 * 3_600_000));
    try {
      await assert.rejects(finishAs('alice'), {
        code: 'oidc_token_expired',
        message:
          "the ID token has expired by this server's clock: check that the server's and the provider's clocks agree, then run kport login --auth oidc again.",
      });
      assert.match(harness.callbackRefusals.at(-1)!, /^the ID token has expired/);
    } finally {
      await trustProvider(idp);
    }
  });

  describe('a provider that is not the one configured', () => {
    test('an ID token issued for another client (wrong audience) is refused', async () => {
      const rogue = await startOidcProvider({ redirectUris: [harness.callbackUrl], rogue: 'audience' });
      try {
        await trustProvider(rogue);
        await assert.rejects(finishAs('alice', rogue), {
          code: 'oidc_wrong_audience',
          message: `the ID token was issued for another client, not this server's client_id "kport": the provider or the token is not the one configured; check auth_service.authentication.`,
        });
      } finally {
        await rogue.stop();
        await trustProvider(idp);
      }
    });

    test('an ID token signed by a key the provider does not publish is refused', async () => {
      const rogue = await startOidcProvider({ redirectUris: [harness.callbackUrl], rogue: 'signing-key' });
      try {
        await trustProvider(rogue);
        await assert.rejects(finishAs('alice', rogue), {
          code: 'oidc_bad_signature',
          message:
            "the ID token's signature does not verify with the identity provider's published keys (its JWKS): the token was not issued by the configured provider.",
        });
      } finally {
        await rogue.stop();
        await trustProvider(idp);
      }
    });
  });
});
