// OIDC logins against providers that differ from oidc-provider's defaults in ways real ones do:
// one client authentication method at the token endpoint, groups only from the userinfo endpoint,
// answers larger than the server reads. Each is oidc-provider in its own process (test/peers),
// the kport routes over real HTTPS (test/helpers/oidc-harness.ts), the browser plain HTTP.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { OidcAuthentication } from '../../src/config/schema.ts';
import { OidcLogin } from '../../src/server/auth/oidc.ts';
import { MAX_PROVIDER_ANSWER_BYTES } from '../../src/server/auth/oidc-fetch.ts';
import { harnessClient, oidcSettings, startHarness, type Harness, type HarnessClient, harnessStore } from '../helpers/oidc-harness.ts';
import { startOidcProvider, type OidcPeer, type OidcPeerOptions } from '../peers/oidc.ts';
import { tempDir } from '../peers/process.ts';

let harness: Harness;
let api: HarnessClient;

/** Settings that name no running provider: for what is checked before the provider is asked. */
const idpLess = (): OidcPeer => ({
  issuer: 'https://127.0.0.1:9',
  caFile: '',
  caPem: '',
  clientId: 'kport',
  clientSecret: 'unused-secret',
  stop: async () => {},
});

/** A provider started with `opts`, the harness's routes set to it with `more` settings, for the length of `run`. */
async function withProvider(
  opts: Omit<OidcPeerOptions, 'redirectUris'>,
  more: Partial<OidcAuthentication>,
  run: (peer: OidcPeer) => Promise<void>,
): Promise<void> {
  const peer = await startOidcProvider({ redirectUris: [harness.callbackUrl], ...opts });
  try {
    harness.login = await OidcLogin.create(oidcSettings(peer, more), { callbackUrl: harness.callbackUrl, store: harnessStore() });
    await run(peer);
  } finally {
    await peer.stop();
  }
}

/** A refusal that says the provider was reached and what it answered, never that it could not be reached. */
function refusedAsClient(peer: OidcPeer, method: string, only: string) {
  return (err: Error & { code?: string }) => {
    assert.equal(err.code, 'oidc_client_refused', err.message);
    assert.equal(
      err.message,
      `the identity provider refused this server as its client "kport" (${peer.issuer}/token answered HTTP 401 invalid_client: client authentication failed: this client authenticates with ${only} only), authenticating with ${method}: check client_id and client_secret (or client_key_file) in auth_service.authentication, and set client_auth_method (basic, post or private_key_jwt) to the method the provider registered for the client.`,
    );
    return true;
  };
}

describe('OIDC providers kport must work with', { timeout: 300_000 }, () => {
  before(async () => {
    harness = await startHarness();
    api = harnessClient(harness);
  });
  after(async () => {
    await api?.close();
    await harness?.close();
  });

  test('a token endpoint that takes only client_secret_post: chosen from the discovery document; client_auth_method basic is refused with what the provider answered', async () => {
    await withProvider({ authMethod: 'client_secret_post' }, {}, async (peer) => {
      assert.deepEqual([(await api.finishAs('alice', peer)).user], ['alice']);
      harness.login = await OidcLogin.create(oidcSettings(peer, { client_auth_method: 'basic' }), { callbackUrl: harness.callbackUrl, store: harnessStore() });
      await assert.rejects(api.finishAs('alice', peer), refusedAsClient(peer, 'client_secret_basic', 'client_secret_post'));
      harness.login = await OidcLogin.create(oidcSettings(peer, { client_auth_method: 'post' }), { callbackUrl: harness.callbackUrl, store: harnessStore() });
      assert.equal((await api.finishAs('bob', peer)).user, 'bob');
    });
  });

  test('a token endpoint that takes only client_secret_basic: chosen from the discovery document; client_auth_method post is refused with what the provider answered', async () => {
    await withProvider({ authMethod: 'client_secret_basic' }, {}, async (peer) => {
      assert.equal((await api.finishAs('alice', peer)).user, 'alice');
      harness.login = await OidcLogin.create(oidcSettings(peer, { client_auth_method: 'post' }), { callbackUrl: harness.callbackUrl, store: harnessStore() });
      await assert.rejects(api.finishAs('alice', peer), refusedAsClient(peer, 'client_secret_post', 'client_secret_basic'));
    });
  });

  test('a provider that lists both methods but takes only the one its client was registered for (as Okta does): basic is refused, post is tried with the same code, and used first from then on', async () => {
    await withProvider({ authMethod: 'client_secret_post', authMethodsListed: ['client_secret_basic', 'client_secret_post'] }, {}, async (peer) => {
      assert.equal((await api.finishAs('alice', peer)).user, 'alice');
      assert.equal((await api.finishAs('bob', peer)).user, 'bob');
    });
  });

  test('private_key_jwt: the server signs its client assertion with client_key_file (configured, or chosen from the discovery document); without a key it says what the provider takes', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = join(tempDir('oidc-client-key'), 'client.key');
    writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    await withProvider(
      { authMethod: 'private_key_jwt', clientJwk: { ...publicKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' } },
      { client_auth_method: 'private_key_jwt', client_key_file: keyFile },
      async (peer) => {
        assert.equal((await api.finishAs('alice', peer)).user, 'alice');
        const { client_secret: _secret, ...keyOnly } = oidcSettings(peer, { client_key_file: keyFile });
        harness.login = await OidcLogin.create(keyOnly, { callbackUrl: harness.callbackUrl, store: harnessStore() });
        assert.equal((await api.finishAs('bob', peer)).user, 'bob', 'no client_auth_method: the discovery document lists private_key_jwt and the key is there');
        harness.login = await OidcLogin.create(oidcSettings(peer), { callbackUrl: harness.callbackUrl, store: harnessStore() });
        await assert.rejects(api.begin(), {
          code: 'oidc_client_auth_unsupported',
          message:
            "the identity provider's token endpoint takes none of client_secret_basic, client_secret_post (its discovery document lists private_key_jwt): register kport's client there for one of them, and set auth_service.authentication.client_auth_method to it (basic, post, or private_key_jwt with client_key_file).",
        });
      },
    );
    await assert.rejects(
      OidcLogin.create(oidcSettings(idpLess(), { client_auth_method: 'private_key_jwt', client_key_file: '/nonexistent/client.key' }), {
        callbackUrl: harness.callbackUrl,
      }),
      {
        message:
          /^auth_service\.authentication\.client_key_file \/nonexistent\/client\.key cannot be read \(.*\): point it at the PEM private key whose public key is registered at the identity provider for this client\.$/,
      },
    );
  });

  test('a provider that releases groups and the user name only from its userinfo endpoint: claims_to_roles still maps them', async () => {
    await withProvider({ claimsFromUserinfo: true }, {}, async (peer) => {
      const alice = await api.finishAs('alice', peer);
      assert.deepEqual([alice.user, alice.roles], ['alice', ['access']]);
      const bob = await api.finishAs('bob', peer);
      assert.deepEqual([bob.user, bob.roles], ['bob', ['editor', 'auditor']]);
      await assert.rejects(api.finishAs('carol', peer), (err: Error & { code?: string }) => err.code === 'oidc_no_role' && /groups: \[\]/.test(err.message));
    });
  });

  describe(`no answer of the provider larger than ${MAX_PROVIDER_ANSWER_BYTES / 1024} KiB is read`, () => {
    const tooLarge = (peer: OidcPeer, path: string) => ({
      code: 'oidc_answer_too_large',
      message: `the identity provider's answer at ${peer.issuer}${path} is larger than ${MAX_PROVIDER_ANSWER_BYTES / 1024} KiB, the most kport reads of one answer: check that issuer_url names the provider, or ask its administrator why it answers so much.`,
    });

    test('a 7 MB ID token (a 7 MB name claim) and an oversized userinfo answer are refused; an ID token just under the bound passes', async () => {
      const accounts = {
        huge: { preferred_username: 'huge', name: 'x'.repeat(7 * 1024 * 1024), groups: ['dev'] },
        large: { preferred_username: 'large', name: 'x'.repeat(MAX_PROVIDER_ANSWER_BYTES / 4), groups: ['dev'] },
      };
      await withProvider({ accounts }, {}, async (peer) => {
        await assert.rejects(api.finishAs('huge', peer), tooLarge(peer, '/token'));
        assert.equal((await api.finishAs('large', peer)).user, 'large');
      });
      await withProvider({ pad: ['/me'] }, {}, async (peer) => {
        await assert.rejects(api.finishAs('alice', peer), tooLarge(peer, '/me'));
      });
    });

    test('an oversized discovery document is refused at begin; an oversized JWKS when the ID token is checked', async () => {
      await withProvider({ pad: ['/.well-known/openid-configuration'] }, {}, async (peer) => {
        await assert.rejects(api.begin(), tooLarge(peer, '/.well-known/openid-configuration'));
      });
      await withProvider({ pad: ['/jwks'] }, {}, async (peer) => {
        await assert.rejects(api.finishAs('alice', peer), tooLarge(peer, '/jwks'));
      });
    });
  });
});
