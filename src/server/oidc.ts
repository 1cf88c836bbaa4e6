import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import * as client from 'openid-client';
import type { OidcAuthentication } from '../config/schema.ts';
import { UsageError } from '../core/errors.ts';
import { verifiedCsrKey } from '../pki/certs.ts';
import { Attempts, digest, randomToken, sameSecret, type Attempt } from './oidc-attempts.ts';
import { OidcRefusal, rolesForClaims, userFromClaims } from './oidc-claims.ts';
import { refusalFor } from './oidc-errors.ts';

export const OIDC_CALLBACK_PATH = '/v1/login/oidc/callback';
/** Each call to the provider (discovery, JWKS, token) gives up after this long. */
const PROVIDER_TIMEOUT_MS = 10_000;
/** kport's CSRs (ECDSA P-256) are about 350 characters of PEM; this keeps a pending login small. */
const MAX_CSR_CHARS = 2_048;
const MAX_REDIRECT_CHARS = 512;
/** Scopes kport always asks for: the ID token names the person (profile, email). */
const BASE_SCOPES = ['openid', 'profile', 'email'];

export interface OidcLoginOptions {
  /** The server's callback URL as the provider knows it (`redirect_url` in the settings wins). */
  callbackUrl: string;
  now?: () => Date;
}

/**
 * The server as an OpenID Connect relying party (DESIGN.md §9), through openid-client: the
 * provider's discovery document, authorization code with PKCE, state and nonce; openid-client
 * checks the ID token's signature through the provider's JWKS, its issuer, audience and expiry.
 *
 * A login is three calls: begin (the client's CSR and loopback address; answers the provider's
 * URL and a secret only the client holds), callback (the browser, back from the provider), finish
 * (the client, with its secret and the one-time code the browser carried to its loopback
 * listener). The code travels only through the browser, so whoever started a login cannot finish
 * it with another person's browser session: phishing someone with a login link gets nothing.
 */
export class OidcLogin {
  readonly #settings: OidcAuthentication;
  readonly #callbackUrl: string;
  readonly #now: () => Date;
  readonly #fetch: client.CustomFetch | undefined;
  readonly #attempts: Attempts;
  #config?: Promise<client.Configuration>;

  private constructor(settings: OidcAuthentication, callbackUrl: string, now: () => Date, fetch: client.CustomFetch | undefined) {
    this.#settings = settings;
    this.#callbackUrl = callbackUrl;
    this.#now = now;
    this.#fetch = fetch;
    this.#attempts = new Attempts(() => now().getTime());
  }

  /** Reads ca_file now (a config problem stops the server's start); the provider is first asked at the first login. */
  static async create(settings: OidcAuthentication, opts: OidcLoginOptions): Promise<OidcLogin> {
    let fetch: client.CustomFetch | undefined;
    if (settings.ca_file) {
      let ca: string;
      try {
        ca = await readFile(settings.ca_file, 'utf8');
      } catch (err) {
        throw new UsageError(`Cannot read auth_service.authentication.ca_file ${settings.ca_file} (${(err as Error).message}): point it at the PEM bundle of the CA that signed the identity provider's certificate.`);
      }
      fetch = await trustingFetch([...rootCertificates, ca]);
    }
    return new OidcLogin(settings, settings.redirect_url ?? opts.callbackUrl, opts.now ?? (() => new Date()), fetch);
  }

  /** Logins in flight (bounded by MAX_ATTEMPTS). */
  get pending(): number {
    return this.#attempts.size;
  }

  /** `source`: sourceKey of the caller's address, which may have MAX_ATTEMPTS_PER_SOURCE logins in flight. */
  async begin(input: { csr: string; redirectUri: string; source: string }): Promise<{ authUrl: string; attempt: string; secret: string }> {
    if (typeof input.redirectUri !== 'string' || !loopbackUrl(input.redirectUri)) {
      throw new OidcRefusal(400, 'bad_request', 'redirect_uri must be http://127.0.0.1:PORT/..., http://localhost:PORT/... or http://[::1]:PORT/... (the client\'s own loopback listener): kport login --auth oidc makes one.');
    }
    if (typeof input.csr !== 'string' || input.csr.length > MAX_CSR_CHARS || !(await verifiedCsrKey(input.csr))) {
      throw new OidcRefusal(400, 'bad_request', 'csr must be a PEM certificate request for an ECDSA P-256 key, signed by that key: kport login makes one.');
    }
    const config = await this.#configuration();
    const verifier = client.randomPKCECodeVerifier();
    const secret = randomToken();
    const attempt: Attempt = {
      id: randomToken(),
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier,
      csr: input.csr,
      redirectUri: input.redirectUri,
      source: input.source,
      created: this.#now().getTime(),
      secretHash: digest(secret),
    };
    this.#attempts.add(attempt);
    const authUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: this.#callbackUrl,
      scope: [...new Set([...BASE_SCOPES, ...this.#settings.scope])].join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: attempt.state,
      nonce: attempt.nonce,
    });
    return { authUrl: authUrl.href, attempt: attempt.id, secret };
  }

  /**
   * The browser's return from the provider. A state names at most one attempt and counts once.
   * Whatever the provider's answer, the browser goes on to the client's listener, which learns the
   * outcome from finish; `refusal` is returned too, for the audit.
   */
  async callback(query: URLSearchParams): Promise<{ redirectTo: string; refusal?: OidcRefusal; user?: string; roles?: string[] }> {
    const state = query.get('state');
    const attempt = state ? this.#attempts.byState(state) : undefined;
    if (!attempt) {
      throw new OidcRefusal(400, 'oidc_unknown_state', 'this login callback names no login in progress at this server (its state is unknown or expired): run kport login --auth oidc again.');
    }
    if (attempt.calledBack) {
      throw new OidcRefusal(409, 'oidc_replayed_callback', 'this login callback was already used, and a callback counts once: run kport login --auth oidc again.');
    }
    attempt.calledBack = true;
    attempt.code = randomToken();
    try {
      const config = await this.#configuration();
      const url = new URL(this.#callbackUrl);
      url.search = query.toString();
      const tokens = await client.authorizationCodeGrant(config, url, { pkceCodeVerifier: attempt.verifier, expectedState: attempt.state, expectedNonce: attempt.nonce, idTokenExpected: true });
      const claims = tokens.claims() as Record<string, unknown>;
      const user = userFromClaims(this.#settings, claims);
      attempt.outcome = { user, roles: rolesForClaims(this.#settings, claims, user) };
    } catch (err) {
      attempt.outcome = { refusal: refusalFor(err, this.#settings.client_id) };
    }
    const redirect = new URL(attempt.redirectUri);
    redirect.searchParams.set('attempt', attempt.id);
    redirect.searchParams.set('code', attempt.code);
    return 'refusal' in attempt.outcome ? { redirectTo: redirect.href, refusal: attempt.outcome.refusal } : { redirectTo: redirect.href, ...attempt.outcome };
  }

  /** Once per attempt, by the client that began it, with the code its listener received. */
  async finish(input: { attempt: string; secret: string; code: string }): Promise<{ user: string; roles: string[]; csr: string }> {
    const attempt = typeof input.attempt === 'string' ? this.#attempts.get(input.attempt) : undefined;
    const gone = new OidcRefusal(404, 'oidc_unknown_attempt', 'this OIDC login is unknown, expired or already finished: run kport login --auth oidc again.');
    if (!attempt) throw gone;
    if (typeof input.secret !== 'string' || !sameSecret(attempt.secretHash, input.secret)) {
      this.#attempts.delete(attempt);
      throw gone;
    }
    if (!attempt.outcome || !attempt.code) {
      throw new OidcRefusal(409, 'oidc_pending', 'the browser has not come back from the identity provider for this login yet: finish signing in there first.');
    }
    // A wrong code ends the attempt: only the browser that signed in carries the right one.
    this.#attempts.delete(attempt);
    if (typeof input.code !== 'string' || !sameSecret(digest(attempt.code), input.code)) {
      throw new OidcRefusal(403, 'oidc_wrong_code', "this login's code is not the one the browser brought back: run kport login --auth oidc again and sign in in the browser it opens.");
    }
    if ('refusal' in attempt.outcome) throw attempt.outcome.refusal;
    return { ...attempt.outcome, csr: attempt.csr };
  }

  /** Discovery once; a failure is not kept, so the next login asks the provider again. */
  #configuration(): Promise<client.Configuration> {
    this.#config ??= this.#discover().catch((err: unknown) => {
      this.#config = undefined;
      throw refusalFor(err, this.#settings.client_id);
    });
    return this.#config;
  }

  async #discover(): Promise<client.Configuration> {
    const { issuer_url, client_id, client_secret } = this.#settings;
    // openid-client reads the time from Date.now(); an injected clock becomes its skew.
    const skew = Math.round((this.#now().getTime() - Date.now()) / 1000);
    const fetch = this.#fetch;
    return client.discovery(new URL(issuer_url), client_id, { client_secret, ...(skew !== 0 && { [client.clockSkew]: skew }) }, client.ClientSecretBasic(client_secret), {
      ...(fetch && { [client.customFetch]: fetch }),
      timeout: PROVIDER_TIMEOUT_MS / 1000,
      // Without it openid-client trusts an ID token from the token endpoint on TLS alone (OIDC
      // Core 3.1.3.7 allows that); kport checks its signature through the provider's JWKS too.
      execute: [client.enableNonRepudiationChecks],
    });
  }
}

/** True for http://127.0.0.1:PORT/..., http://localhost:PORT/... and http://[::1]:PORT/... with nothing else in them. */
export function loopbackUrl(text: string): boolean {
  if (text.length > MAX_REDIRECT_CHARS) return false;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) && url.port !== '' && url.username === '' && url.password === '' && url.hash === '';
}

/** fetch trusting `ca` (the system CAs and ca_file) for the provider's HTTPS, through undici. */
async function trustingFetch(ca: string[]): Promise<client.CustomFetch> {
  const { Agent, fetch } = await import('undici');
  const dispatcher = new Agent({ connect: { ca } });
  return ((url: string, options: client.CustomFetchOptions) => fetch(url, { ...options, dispatcher } as never)) as unknown as client.CustomFetch;
}
