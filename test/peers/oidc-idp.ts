// The OpenID provider test peer's own process (started by oidc.ts): oidc-provider, an OpenID
// certified provider, served over HTTPS on loopback with the test CA's certificate. Its login and
// consent pages are oidc-provider's devInteractions (any password; the account must exist).
//
// Two "rogue" modes stand in for a provider an attacker controls or a token meant for someone
// else; the tokens stay real JWTs signed by the provider:
// - audience: ID tokens name another client as their audience;
// - signing-key: ID tokens are signed with a key the provider's JWKS does not publish (the JWKS
//   shows a different key under the same kid).
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import Provider from 'oidc-provider';

interface PeerConfig {
  issuer: string;
  port: number;
  certFile: string;
  keyFile: string;
  clients: { client_id: string; client_secret: string; redirect_uris: string[] }[];
  accounts: Record<string, Record<string, unknown>>;
  idTokenTtlS?: number;
  rogue?: 'audience' | 'signing-key';
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PeerConfig;

function rsaJwk(kid: string): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const signing = rsaJwk('peer-key-1');

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({ ...c, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' })),
  jwks: { keys: [signing] },
  async findAccount(_ctx: unknown, id: string) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
  // The ID token carries the scopes' claims (kport reads them from the signed token).
  conformIdTokenClaims: false,
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
  (provider as unknown as { use(mw: (ctx: { path: string; body: unknown; type: string }, next: () => Promise<void>) => Promise<void>): void }).use(async (ctx, next) => {
    if (ctx.path === '/jwks') {
      ctx.type = 'application/jwk-set+json';
      ctx.body = { keys: [published] };
      return;
    }
    await next();
  });
}

const server = createServer({ cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) }, (provider as unknown as { callback(): Parameters<typeof createServer>[1] }).callback());
server.listen(config.port, '127.0.0.1', () => console.log(`oidc-provider listening at ${config.issuer}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => server.close(() => process.exit(0)));
