import * as client from 'openid-client';
import { OidcRefusal } from './oidc-claims.ts';

/** How the server proves it is the client at the provider's token endpoint (`client_auth_method`). */
export type ClientAuthMethod = 'basic' | 'post';

/** The names OAuth gives them (RFC 7591 token_endpoint_auth_method). */
export const WIRE_NAMES: Record<ClientAuthMethod, string> = { basic: 'client_secret_basic', post: 'client_secret_post' };

/**
 * The methods to try at the token endpoint, in order. A configured one alone; otherwise those the
 * provider's discovery document lists in `token_endpoint_auth_methods_supported`, basic first
 * (absent, the list means client_secret_basic: OpenID Connect Discovery 1.0, section 3). Several
 * are kept because providers such as Okta list both but take only the one the client was
 * registered with: the server then tries the next when the first is refused as a client, as
 * Teleport's OAuth2 library (golang.org/x/oauth2, AuthStyleAutoDetect) does.
 */
export function clientAuthMethods(configured: ClientAuthMethod | undefined, supported: unknown): ClientAuthMethod[] {
  if (configured) return [configured];
  const listed = Array.isArray(supported) ? supported.filter((s): s is string => typeof s === 'string') : [WIRE_NAMES.basic];
  const methods = (['basic', 'post'] as const).filter((m) => listed.includes(WIRE_NAMES[m]));
  if (methods.length > 0) return methods;
  throw new OidcRefusal(
    502,
    'oidc_client_auth_unsupported',
    `the identity provider's token endpoint takes neither client_secret_basic nor client_secret_post (its discovery document lists ${listed.slice(0, 10).join(', ') || 'none'}): register kport's client there to authenticate with its secret, and set auth_service.authentication.client_auth_method to basic or post.`,
  );
}

export function clientAuth(method: ClientAuthMethod, secret: string): client.ClientAuth {
  return method === 'post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
}

/** True when the token endpoint refused the client itself (not the code): another method may pass. */
export function refusedAsClient(err: unknown): boolean {
  if (err instanceof client.ResponseBodyError) return err.error === 'invalid_client';
  if (err instanceof client.WWWAuthenticateChallengeError) return err.status === 401 || err.cause.some((c) => c.parameters.error === 'invalid_client');
  return false;
}
