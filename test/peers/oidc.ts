import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCA } from '../../src/kube/pki.ts';
import { freePort, spawnPeer, tempDir, waitFor } from './process.ts';
import { Agent, fetch as undiciFetch } from 'undici';

export interface OidcPeer {
  issuer: string;
  /** The CA that signed the provider's HTTPS certificate (kport's `authentication.ca_file`). */
  caFile: string;
  caPem: string;
  clientId: string;
  clientSecret: string;
  stop(): Promise<void>;
}

/** kport's `auth_service.authentication` naming this provider; `extra` adds scope, claims_to_roles and the rest. */
export function oidcAuthentication(idp: OidcPeer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'oidc', issuer_url: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret, ca_file: idp.caFile, ...extra };
}

/** People of the test directory: the `groups` claim is what claims_to_roles maps. */
export const OIDC_ACCOUNTS: Record<string, Record<string, unknown>> = {
  alice: { preferred_username: 'alice', email: 'alice@example.com', email_verified: true, groups: ['dev'] },
  bob: { preferred_username: 'bob', email: 'bob@example.com', email_verified: true, groups: ['ops'] },
  carol: { preferred_username: 'carol', email: 'carol@example.com', email_verified: true, groups: [] },
};

export interface OidcPeerOptions {
  /** kport's callback URL(s), registered for the client. */
  redirectUris: string[];
  idTokenTtlS?: number;
  /** See oidc-idp.ts: a provider that names another audience, or signs with an unpublished key. */
  rogue?: 'audience' | 'signing-key';
  /** The one client authentication method the token endpoint takes (default: all oidc-provider knows, the client registered for basic). */
  authMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** For private_key_jwt: the client's public key (JWK) registered at the provider. */
  clientJwk?: Record<string, unknown>;
  /** token_endpoint_auth_methods_supported in the discovery document (default: authMethod alone). */
  authMethodsListed?: string[];
  /** The scopes' claims (groups, preferred_username, ...) only from the userinfo endpoint, none in the ID token. */
  claimsFromUserinfo?: boolean;
  /** Paths (/.well-known/openid-configuration, /jwks, /token, /me) whose JSON answers get an extra member of padBytes characters. */
  pad?: string[];
  padBytes?: number;
  /** More people (by account id, which is their `sub`), beside OIDC_ACCOUNTS. */
  accounts?: Record<string, Record<string, unknown>>;
}

/**
 * oidc-provider (the OpenID certified npm package) in its own process, over HTTPS on a free
 * loopback port with a certificate from a fresh test CA; needs neither root nor the network.
 */
export async function startOidcProvider(opts: OidcPeerOptions): Promise<OidcPeer> {
  const dir = tempDir('oidc');
  const ca = await createCA('kport-test-oidc-ca');
  const serving = await ca.issue({ commonName: 'oidc-provider', dnsNames: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
  const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'idp.crt'), key: join(dir, 'idp.key'), config: join(dir, 'config.json') };
  writeFileSync(files.ca, ca.cert);
  writeFileSync(files.cert, serving.cert);
  writeFileSync(files.key, serving.key, { mode: 0o600 });
  const port = await freePort();
  const issuer = `https://127.0.0.1:${port}`;
  const clientId = 'kport';
  const clientSecret = 'kport-test-client-secret-0123456789abcdef';
  const config = {
    issuer,
    port,
    certFile: files.cert,
    keyFile: files.key,
    clients: [
      { client_id: clientId, client_secret: clientSecret, redirect_uris: opts.redirectUris },
      { client_id: 'another-app', client_secret: 'another-app-secret-0123456789abcdef', redirect_uris: ['https://another-app.example/callback'] },
    ],
    accounts: { ...OIDC_ACCOUNTS, ...opts.accounts },
    idTokenTtlS: opts.idTokenTtlS,
    rogue: opts.rogue,
    authMethod: opts.authMethod,
    clientJwk: opts.clientJwk,
    authMethodsListed: opts.authMethodsListed,
    claimsFromUserinfo: opts.claimsFromUserinfo,
    pad: opts.pad,
    padBytes: opts.padBytes,
  };
  writeFileSync(files.config, JSON.stringify(config));
  const main = fileURLToPath(new URL('./oidc-idp.ts', import.meta.url));
  const peer = spawnPeer('oidc-provider', process.execPath, [main, files.config], { dir, env: { NODE_ENV: 'development' } });
  const dispatcher = new Agent({ connect: { ca: ca.cert } });
  try {
    await waitFor(
      'oidc-provider to answer',
      async () => {
        const res = await undiciFetch(`${issuer}/.well-known/openid-configuration`, { dispatcher });
        // Read, or closing the dispatcher waits for a body it never takes (a padded one fills the socket).
        await res.arrayBuffer();
        return res.ok;
      },
      { peer, timeoutMs: 60_000 },
    );
  } finally {
    await dispatcher.close();
  }
  return { issuer, caFile: files.ca, caPem: ca.cert, clientId, clientSecret, stop: () => peer.stop() };
}
