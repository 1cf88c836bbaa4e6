import * as client from 'openid-client';
import { ApiError } from '../../api/errors.ts';
import { printableText } from '../../resources/text.ts';
import { WIRE_NAMES, type ClientAuthMethod } from './oidc-client-auth.ts';
import { ProviderAnswerTooLarge } from './oidc-fetch.ts';

interface Processing {
  code?: string;
  message?: string;
  cause?: { claim?: string } & Processing;
}

/** Which call to the provider failed: its discovery document (with begin), the code exchange (token endpoint and JWKS), or its userinfo endpoint. */
export type OidcStage = 'discovery' | 'token' | 'userinfo';

export interface RefusalContext {
  clientId: string;
  stage: OidcStage;
  /** How the server authenticated at the token endpoint, for a refusal of the client. */
  authMethods?: ClientAuthMethod[];
}

const STAGE: Record<OidcStage, string> = {
  discovery: 'its discovery document',
  token: 'the login code exchange',
  userinfo: 'its userinfo endpoint',
};
/** The most characters of what the provider said that a refusal repeats. */
const SHOWN = 200;

/**
 * One sentence for what went wrong with the provider, saying what the provider answered (the URL,
 * the HTTP status, OAuth's `error` and `error_description`) whenever it answered at all: only a
 * provider that was never reached is "could not be reached". openid-client does the checking
 * (signature through the provider's JWKS, iss, aud, exp, nonce, state, PKCE); this names its verdict
 * for the person and the audit.
 */
export async function refusalFor(err: unknown, context: RefusalContext): Promise<ApiError> {
  if (err instanceof ApiError) return err;
  const again = 'run kport login --auth oidc again';
  const tooLarge = causes(err).find((e): e is ProviderAnswerTooLarge => e instanceof ProviderAnswerTooLarge);
  if (tooLarge) {
    return new ApiError(
      'oidc_answer_too_large',
      `the identity provider's answer at ${shown(tooLarge.url)} is larger than ${tooLarge.limit / 1024} KiB, the most kport reads of one answer: check that issuer_url names the provider, or ask its administrator why it answers so much.`,
    );
  }
  if (err instanceof client.AuthorizationResponseError) {
    return new ApiError(
      'oidc_provider_refused',
      `the identity provider refused the login (${oauthError(err.error, err.error_description)}): ${again}, or ask its administrator.`,
    );
  }
  if (err instanceof client.ResponseBodyError || err instanceof client.WWWAuthenticateChallengeError) {
    const said = await answered(err);
    if (context.stage === 'token' && (said.error === 'invalid_client' || said.status === 401)) {
      const methods = (context.authMethods ?? []).map((m) => WIRE_NAMES[m]).join(', then ');
      return new ApiError(
        'oidc_client_refused',
        `the identity provider refused this server as its client "${context.clientId}" (${said.text})${methods ? `, authenticating with ${methods}` : ''}: check client_id and client_secret (or client_key_file) in auth_service.authentication, and set client_auth_method (basic, post or private_key_jwt) to the method the provider registered for the client.`,
      );
    }
    if (context.stage === 'userinfo')
      return new ApiError(
        'oidc_userinfo_refused',
        `the identity provider's userinfo endpoint refused this login's access token (${said.text}): ${again}, or ask its administrator.`,
      );
    return new ApiError('oidc_exchange_refused', `the identity provider refused to exchange the login code (${said.text}): ${again}.`);
  }
  if (err instanceof client.ClientError) {
    const inner = (err.cause ?? {}) as Processing;
    const claim = inner.cause?.claim;
    switch (err.code) {
      case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
        if (claim === 'aud' || claim === 'azp')
          return new ApiError(
            'oidc_wrong_audience',
            `the ID token was issued for another client, not this server's client_id "${context.clientId}": the provider or the token is not the one configured; check auth_service.authentication.`,
          );
        if (claim === 'iss')
          return new ApiError('oidc_wrong_issuer', `the ID token was issued by another issuer than auth_service.authentication.issuer_url: check issuer_url.`);
        if (claim === 'nonce') return new ApiError('oidc_wrong_nonce', `the ID token belongs to another login attempt (its nonce differs): ${again}.`);
        break;
      case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
        if (claim === 'exp')
          return new ApiError(
            'oidc_token_expired',
            `the ID token has expired by this server's clock: check that the server's and the provider's clocks agree, then ${again}.`,
          );
        return new ApiError(
          'oidc_token_time',
          `the ID token's ${claim ?? 'time'} claim does not fit this server's clock: check that the server's and the provider's clocks agree, then ${again}.`,
        );
      case 'OAUTH_KEY_SELECTION_FAILED':
        return new ApiError(
          'oidc_bad_signature',
          `the ID token is signed by a key the identity provider does not publish (its JWKS): the token was not issued by the configured provider.`,
        );
      case 'OAUTH_INVALID_RESPONSE':
        if (/signature/i.test(inner.message ?? ''))
          return new ApiError(
            'oidc_bad_signature',
            `the ID token's signature does not verify with the identity provider's published keys (its JWKS): the token was not issued by the configured provider.`,
          );
        break;
      case 'OAUTH_HTTP_REQUEST_FORBIDDEN':
        return new ApiError(
          'oidc_provider_insecure',
          `the identity provider's endpoints must be https://: check issuer_url and the provider's discovery document.`,
        );
      case 'OAUTH_TIMEOUT':
        return new ApiError(
          'oidc_provider_timeout',
          `the identity provider did not finish answering (${STAGE[context.stage]}) within 10 s: check that it is up, then ${again}.`,
        );
      case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
      case 'OAUTH_RESPONSE_IS_NOT_JSON':
        if (err.cause instanceof Response) {
          const said = await answered({ response: err.cause });
          return new ApiError(
            'oidc_provider_answer',
            `the identity provider answered ${STAGE[context.stage]} with something OpenID Connect does not expect (${said.text}): check issuer_url${context.stage === 'discovery' ? ' (its /.well-known/openid-configuration must answer JSON)' : ''} and the provider.`,
          );
        }
        break;
    }
    return new ApiError(
      'oidc_provider_invalid',
      `the identity provider's answer (${STAGE[context.stage]}) failed openid-client's checks (${shown(err.message)}${inner.message ? `: ${shown(inner.message)}` : ''}): check auth_service.authentication and the provider.`,
    );
  }
  return new ApiError(
    'oidc_provider_unreachable',
    `the identity provider could not be reached (${shown((err as Error)?.message ?? String(err))}${causeText(err)}): check issuer_url, ca_file and the network, then ${again}.`,
  );
}

/** What the provider answered: the URL, the status, and OAuth's error and description from the challenge or the body. */
async function answered(err: {
  response?: Response;
  status?: number;
  error?: string;
  error_description?: string;
  cause?: unknown;
}): Promise<{ status?: number; error?: string; text: string }> {
  const response = err.response;
  const status = err.status ?? response?.status;
  let error = err.error;
  let description = err.error_description;
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const params = err.cause.find((c) => c.parameters.error)?.parameters;
    error ??= params?.error;
    description ??= params?.error_description;
  }
  let contentType: string | undefined;
  if (response && !error) {
    contentType = response.headers.get('content-type')?.split(';')[0];
    try {
      const body = JSON.parse(await response.clone().text()) as { error?: unknown; error_description?: unknown };
      if (typeof body?.error === 'string') error = body.error;
      if (typeof body?.error_description === 'string') description = body.error_description;
    } catch {
      // Not JSON: the status and the content type are what it said.
    }
  }
  const detail = error ? oauthError(error, description) : contentType && shown(contentType);
  const text = `${response?.url ? `${shown(response.url)} answered` : 'it answered'}${status !== undefined ? ` HTTP ${status}` : ''}${detail ? ` ${detail}` : ''}`;
  return { ...(status !== undefined && { status }), ...(error && { error }), text };
}

function oauthError(code: string, description: string | undefined): string {
  return shown(description ? `${code}: ${description}` : code);
}

/** What the provider (or an address answering in its name) said, cut and made printable. */
function shown(text: string): string {
  return printableText(text, SHOWN);
}

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e && chain.length < 8; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

function causeText(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ? `: ${cause.code}` : cause?.message ? `: ${shown(cause.message)}` : '';
}
