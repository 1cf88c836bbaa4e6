// The OpenID provider test peer's own process (started by oidc.ts): oidc-provider, an OpenID
// certified provider, served over HTTPS on loopback with the test CA's certificate. Its login and
// consent pages are oidc-provider's devInteractions (any password; the account must exist).
//
// Two "rogue" modes stand in for a provider an attacker controls or a token meant for someone
// else; the tokens stay real JWTs signed by the provider:
// - audience: ID tokens name another client as their audience;
// - signing-key: ID tokens are signed with a key the provider's JWKS does not publish (the JWKS
//   shows a different key under the same kid).
//
// Other providers kport must work with: one that takes a single client authentication method at
// its token endpoint (authMethod, the only one its discovery document lists unless
// authMethodsListed says more, as Okta lists both and takes the client's own), one that releases
// the scopes' claims only from its userinfo endpoint (claimsFromUserinfo: the ID token of a code
// flow carries sub alone, as OIDC Core 5.4 has it), and one whose answers at the paths in `pad`
// carry an extra member of padBytes characters (an oversized discovery document, JWKS, token
// response or userinfo answer).
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import Provider from 'oidc-provider';
import type { OidcPeerOptions } from './oidc.ts';

/** What the launcher (oidc.ts) writes for this process: its options, plus where to listen and whom to register. */
type PeerConfig = Omit<OidcPeerOptions, 'redirectUris' | 'accounts'> & {
  issuer: string;
  port: number;
  certFile: string;
  keyFile: string;
  clients: { client_id: string; client_secret: string; redirect_uris: string[] }[];
  accounts: Record<string, Record<string, unknown>>;
};

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PeerConfig;

function rsaJwk(kid: string): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const signing = rsaJwk('peer-key-1');

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    ...c,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: config.authMethod ?? 'client_secret_basic',
    ...(config.authMethod === 'private_key_jwt' && { jwks: { keys: [config.clientJwk] } }),
  })),
  ...(config.authMethod && { clientAuthMethods: config.authMethodsListed ?? [config.authMethod] }),
  jwks: { keys: [signing] },
  async findAccount(_ctx: unknown, id: string) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
  // The ID token carries the scopes' claims (kport reads them from the signed token), unless the
  // provider is to release them only from its userinfo endpoint.
  conformIdTokenClaims: config.claimsFromUserinfo === true,
  pkce: { required: () => true },
  cookies: { keys: ['kport-test-peer-cookie-key'] },
  ttl: { IdToken: config.idTokenTtlS ?? 3600 },
  features: { devInteractions: { enabled: true } },
} as never);

if (config.rogue === 'audience') {
  const IdToken = (provider as unknown as { IdToken: { prototype: { issue: (this: { client: object }, o?: { use?: string }) => Promise<string> } } }).IdToken;
  const issue = IdToken.prototype.issue;
  IdToken.prototype.issue = function (opts) {
    if (opts?.use === 'idtoken') {
      const client = this.client;
      this.client = new Proxy(client, { get: (target, prop) => (prop === 'clientId' ? 'another-app' : Reflect.get(target, prop, target)) });
    }
    return issue.call(this, opts);
  };
}

if (config.rogue === 'signing-key') {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...published } = rsaJwk('peer-key-1');
  (provider as unknown as { use(mw: (ctx: { path: string; body: unknown; type: string }, next: () => Promise<void>) => Promise<void>): void }).use(
    async (ctx, next) => {
      if (ctx.path === '/jwks') {
        ctx.type = 'application/jwk-set+json';
        ctx.body = { keys: [published] };
        return;
      }
      await next();
    },
  );
}

// oidc-provider itself takes client_secret_basic and client_secret_post alike from a client
// registered for either; a provider that holds its clients to their one method (as many do)
// refuses the other as RFC 6749 5.2 says: 401 invalid_client, with a challenge when the refused
// credentials came in the Authorization header.
if (config.authMethod === 'client_secret_post' || config.authMethod === 'client_secret_basic') {
  const only = config.authMethod;
  type Ctx = { path: string; method: string; status: number; body: unknown; get(h: string): string; set(h: string, v: string): void };
  (provider as unknown as { use(mw: (ctx: Ctx, next: () => Promise<void>) => Promise<void>): void }).use(async (ctx, next) => {
    if (ctx.path === '/token' && ctx.method === 'POST') {
      const basic = /^basic /i.test(ctx.get('authorization'));
      if (basic !== (only === 'client_secret_basic')) {
        const description = `client authentication failed: this client authenticates with ${only} only`;
        if (basic) ctx.set('www-authenticate', `Basic realm="${config.issuer}", error="invalid_client", error_description="${description}"`);
        ctx.status = 401;
        ctx.body = { error: 'invalid_client', error_description: description };
        return;
      }
    }
    await next();
  });
}

if (config.pad) {
  const paths = new Set(config.pad);
  const padding = 'x'.repeat(config.padBytes ?? 2 * 1024 * 1024);
  (provider as unknown as { use(mw: (ctx: { path: string; body: unknown }, next: () => Promise<void>) => Promise<void>): void }).use(async (ctx, next) => {
    await next();
    if (paths.has(ctx.path) && ctx.body && typeof ctx.body === 'object') ctx.body = { ...(ctx.body as object), x_padding: padding };
  });
}

const server = createServer(
  { cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) },
  (provider as unknown as { callback(): Parameters<typeof createServer>[1] }).callback(),
);
server.listen(config.port, '127.0.0.1', () => console.log(`oidc-provider listening at ${config.issuer}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => server.close(() => process.exit(0)));
