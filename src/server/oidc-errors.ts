import * as client from 'openid-client';
import { OidcRefusal } from './oidc-claims.ts';

interface Processing {
  code?: string;
  message?: string;
  cause?: { claim?: string } & Processing;
}

/**
 * One sentence for what openid-client refused while checking the callback, the code exchange or
 * the ID token. openid-client does the checking (signature through the provider's JWKS, iss,
 * aud, exp, nonce, state, PKCE); this only names its verdict for the person and the audit.
 */
export function refusalFor(err: unknown, clientId: string): OidcRefusal {
  if (err instanceof OidcRefusal) return err;
  const again = 'run kport login --auth oidc again';
  if (err instanceof client.AuthorizationResponseError) {
    return new OidcRefusal(403, 'oidc_provider_refused', `the identity provider refused the login (${describe(err.error, err.error_description)}): ${again}, or ask its administrator.`);
  }
  if (err instanceof client.ResponseBodyError) {
    return new OidcRefusal(403, 'oidc_exchange_refused', `the identity provider refused to exchange the login code (${describe(err.error, err.error_description)}): ${again}.`);
  }
  if (err instanceof client.ClientError) {
    const inner = (err.cause ?? {}) as Processing;
    const claim = inner.cause?.claim;
    switch (err.code) {
      case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
        if (claim === 'aud' || claim === 'azp') return new OidcRefusal(403, 'oidc_wrong_audience', `the ID token was issued for another client, not this server's client_id "${clientId}": the provider or the token is not the one configured; check auth_service.authentication.`);
        if (claim === 'iss') return new OidcRefusal(403, 'oidc_wrong_issuer', `the ID token was issued by another issuer than auth_service.authentication.issuer_url: check issuer_url.`);
        if (claim === 'nonce') return new OidcRefusal(403, 'oidc_wrong_nonce', `the ID token belongs to another login attempt (its nonce differs): ${again}.`);
        break;
      case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
        if (claim === 'exp') return new OidcRefusal(403, 'oidc_token_expired', `the ID token has expired by this server's clock: check that the server's and the provider's clocks agree, then ${again}.`);
        return new OidcRefusal(403, 'oidc_token_time', `the ID token's ${claim ?? 'time'} claim does not fit this server's clock: check that the server's and the provider's clocks agree, then ${again}.`);
      case 'OAUTH_KEY_SELECTION_FAILED':
        return new OidcRefusal(403, 'oidc_bad_signature', `the ID token is signed by a key the identity provider does not publish (its JWKS): the token was not issued by the configured provider.`);
      case 'OAUTH_INVALID_RESPONSE':
        if (/signature/i.test(inner.message ?? '')) return new OidcRefusal(403, 'oidc_bad_signature', `the ID token's signature does not verify with the identity provider's published keys (its JWKS): the token was not issued by the configured provider.`);
        break;
      case 'OAUTH_HTTP_REQUEST_FORBIDDEN':
        return new OidcRefusal(502, 'oidc_provider_insecure', `the identity provider's endpoints must be https://: check issuer_url and the provider's discovery document.`);
    }
    return new OidcRefusal(502, 'oidc_provider_invalid', `the identity provider's answer failed openid-client's checks (${err.message}${inner.message ? `: ${inner.message}` : ''}): check auth_service.authentication and the provider.`);
  }
  return new OidcRefusal(502, 'oidc_provider_unreachable', `the identity provider could not be reached (${(err as Error)?.message ?? String(err)}${causeText(err)}): check issuer_url, ca_file and the network, then ${again}.`);
}

function describe(code: string, description: string | undefined): string {
  const text = description ? `${code}: ${description}` : code;
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function causeText(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ? `: ${cause.code}` : cause?.message ? `: ${cause.message}` : '';
}
