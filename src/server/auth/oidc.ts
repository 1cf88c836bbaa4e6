import { readFile } from 'node:fs/promises';
import { ApiError } from '../../api/errors.ts';
import { routes } from '../../api/routes.ts';
import { rootCertificates } from 'node:tls';
import * as client from 'openid-client';
import type { OidcAuthentication } from '../../config/schema.ts';
import { UsageError } from '../../core/errors.ts';
import { verifiedCsrKey } from '../../pki/certs.ts';
import type { OidcSubject } from '../../people/store.ts';
import { Attempts, digest, randomToken, sameSecret, type Attempt } from './oidc-attempts.ts';
import type { Backend } from '../../backend/backend.ts';
import { rolesForClaims, userFromClaims } from './oidc-claims.ts';
import { clientAuth, clientAuthMethods, clientKey, refusedAsClient, type ClientAuthMethod, type ClientCredentials } from './oidc-client-auth.ts';
import { refusalFor, type OidcStage } from './oidc-errors.ts';
import { providerFetch } from './oidc-fetch.ts';

export const OIDC_CALLBACK_PATH = routes.oidcCallback.path;
/** Each call to the provider (discovery, JWKS, token) gives up after this long. */
const PROVIDER_TIMEOUT_MS = 10_000;
/** kport's CSRs (ECDSA P-256) are about 350 characters of PEM; this keeps a pending login small. */
const MAX_CSR_CHARS = 2_048;
const MAX_REDIRECT_CHARS = 512;
/** Scopes kport always asks for: the ID token names the person (profile, email). */
const BASE_SCOPES = ['openid', 'profile', 'email'];

/** The provider as discovered: one openid-client Configuration per client authentication method to try, the one that last worked first. */
interface Provider {
  configs: { method: ClientAuthMethod; config: client.Configuration }[];
}

export interface OidcLoginOptions {
  /** The server's callback URL as the provider knows it (`redirect_url` in the settings wins). */
  callbackUrl: string;
  now?: () => Date;
  /** Where logins in flight are kept (the server's store, so any server finishes a login another began), sealed with its seal key. */
  store: { backend: Backend; sealKey: Buffer };
}

/**
 * The server as an OpenID Connect relying party (docs/architecture.md §9), through openid-client: the
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
  readonly #fetch: client.CustomFetch;
  readonly #credentials: ClientCredentials;
  readonly #attempts: Attempts;
  #provider?: Promise<Provider>;

  private constructor(settings: OidcAuthentication, opts: Required<OidcLoginOptions>, fetch: client.CustomFetch, credentials: ClientCredentials) {
    this.#settings = settings;
    this.#credentials = credentials;
    this.#callbackUrl = settings.redirect_url ?? opts.callbackUrl;
    this.#now = opts.now;
    this.#fetch = fetch;
    this.#attempts = new Attempts({ ...opts.store, now: () => opts.now().getTime() });
  }

  /** Reads ca_file and client_key_file now (a config problem stops the server's start); the provider is first asked at the first login. */
  static async create(settings: OidcAuthentication, opts: OidcLoginOptions): Promise<OidcLogin> {
    let ca: string[] | undefined;
    if (settings.ca_file) {
      try {
        ca = [...rootCertificates, await readFile(settings.ca_file, 'utf8')];
      } catch (err) {
        throw new UsageError(
          `Cannot read auth_service.authentication.ca_file ${settings.ca_file} (${(err as Error).message}): point it at the PEM bundle of the CA that signed the identity provider's certificate.`,
        );
      }
    }
    // Every answer of the provider is read through it, bounded (oidc-fetch.ts).
    const fetch = await providerFetch(ca ? { ca } : {});
    const credentials: ClientCredentials = {
      ...(settings.client_secret && { secret: settings.client_secret }),
      ...(settings.client_key_file && { key: await clientKey(settings.client_key_file) }),
    };
    return new OidcLogin(settings, { ...opts, now: opts.now ?? (() => new Date()) }, fetch, credentials);
  }

  /** `source`: sourceKey of the caller's address, which may have MAX_ATTEMPTS_PER_SOURCE logins in flight. */
  async begin(input: { csr: string; redirectUri: string; source: string }): Promise<{ authUrl: string; attempt: string; secret: string }> {
    if (typeof input.redirectUri !== 'string' || !loopbackUrl(input.redirectUri)) {
      throw new ApiError(
        'bad_request',
        "redirect_uri must be http://127.0.0.1:PORT/..., http://localhost:PORT/... or http://[::1]:PORT/... (the client's own loopback listener): kport login --auth oidc makes one.",
      );
    }
    if (typeof input.csr !== 'string' || input.csr.length > MAX_CSR_CHARS || !(await verifiedCsrKey(input.csr))) {
      throw new ApiError('bad_request', 'csr must be a PEM certificate request for an ECDSA P-256 key, signed by that key: kport login makes one.');
    }
    const { config } = (await this.#discovered()).configs[0]!;
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
    await this.#attempts.add(attempt);
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
  async callback(query: URLSearchParams): Promise<{ redirectTo: string; refusal?: ApiError; user?: string; roles?: string[] }> {
    const state = query.get('state');
    const held = state ? await this.#attempts.byState(state) : undefined;
    if (!held) {
      throw new ApiError(
        'oidc_unknown_state',
        'this login callback names no login in progress at this server (its state is unknown or expired): run kport login --auth oidc again.',
      );
    }
    const replayed = () =>
      new ApiError('oidc_replayed_callback', 'this login callback was already used, and a callback counts once: run kport login --auth oidc again.');
    if (held.attempt.calledBack) throw replayed();
    // Marked in the store before the code is exchanged: of two callbacks racing on two servers, one changes it and the other is a replay.
    const code = randomToken();
    const attempt: Attempt = { ...held.attempt, calledBack: true, code };
    const claimed = await this.#attempts.update(held, attempt);
    if (!claimed) throw replayed();
    let stage: OidcStage = 'discovery';
    const tried: ClientAuthMethod[] = [];
    try {
      const provider = await this.#discovered();
      stage = 'token';
      const url = new URL(this.#callbackUrl);
      url.search = query.toString();
      const { tokens, config } = await this.#exchange(provider, url, attempt, tried);
      const idClaims = tokens.claims() as Record<string, unknown>;
      stage = 'userinfo';
      const claims = await this.#withUserinfo(config, tokens.access_token, idClaims);
      const user = userFromClaims(this.#settings, claims);
      const oidc: OidcSubject = { issuer: String(idClaims.iss), subject: String(idClaims.sub) };
      attempt.outcome = { user, roles: rolesForClaims(this.#settings, claims, user), oidc };
    } catch (err) {
      attempt.outcome = { refusal: await refusalFor(err, { clientId: this.#settings.client_id, stage, authMethods: tried }) };
    }
    // For finish, on whichever server it arrives; an attempt ended meanwhile stays ended.
    await this.#attempts.update(claimed, attempt);
    const redirect = new URL(attempt.redirectUri);
    redirect.searchParams.set('attempt', attempt.id);
    redirect.searchParams.set('code', code);
    if ('refusal' in attempt.outcome) return { redirectTo: redirect.href, refusal: attempt.outcome.refusal };
    return { redirectTo: redirect.href, user: attempt.outcome.user, roles: attempt.outcome.roles };
  }

  /** Once per attempt, by the client that began it, with the code its listener received. */
  async finish(input: { attempt: string; secret: string; code: string }): Promise<{ user: string; roles: string[]; oidc: OidcSubject; csr: string }> {
    const held = typeof input.attempt === 'string' ? await this.#attempts.get(input.attempt) : undefined;
    const gone = new ApiError('oidc_unknown_attempt', 'this OIDC login is unknown, expired or already finished: run kport login --auth oidc again.');
    if (!held) throw gone;
    const { attempt } = held;
    // A wrong secret leaves the attempt as it was: the attempt id is in the loopback redirect (the
    // browser's history), so ending it here would let anyone who read it cancel the login. The secret
    // (32 random bytes) is not guessed, and bad finishes are throttled with the other login calls.
    if (typeof input.secret !== 'string' || !sameSecret(attempt.secretHash, input.secret)) throw gone;
    if (!attempt.outcome || !attempt.code) {
      throw new ApiError('oidc_pending', 'the browser has not come back from the identity provider for this login yet: finish signing in there first.');
    }
    // Taken at the revision read: of two finishes racing on two servers, exactly one gets the outcome.
    // A wrong code ends the attempt: only the browser that signed in carries the right one.
    if (!(await this.#attempts.take(held))) throw gone;
    if (typeof input.code !== 'string' || !sameSecret(digest(attempt.code), input.code)) {
      throw new ApiError(
        'oidc_wrong_code',
        "this login's code is not the one the browser brought back: run kport login --auth oidc again and sign in in the browser it opens.",
      );
    }
    if ('refusal' in attempt.outcome) throw attempt.outcome.refusal;
    return { ...attempt.outcome, csr: attempt.csr };
  }

  /**
   * The code for tokens, with the client authentication methods in order: the next is tried only
   * when the token endpoint refused the client itself (the code is checked after the client, so it
   * is still unspent), and the one that passes goes first from then on.
   */
  async #exchange(
    provider: Provider,
    url: URL,
    attempt: Attempt,
    tried: ClientAuthMethod[],
  ): Promise<{ tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers; config: client.Configuration }> {
    const entries = [...provider.configs];
    for (const [i, entry] of entries.entries()) {
      tried.push(entry.method);
      try {
        const tokens = await client.authorizationCodeGrant(entry.config, url, {
          pkceCodeVerifier: attempt.verifier,
          expectedState: attempt.state,
          expectedNonce: attempt.nonce,
          idTokenExpected: true,
        });
        if (i > 0) provider.configs = [entry, ...provider.configs.filter((e) => e !== entry)];
        return { tokens, config: entry.config };
      } catch (err) {
        if (i === entries.length - 1 || !refusedAsClient(err)) throw err;
      }
    }
    throw new Error('unreachable: no client authentication method to try');
  }

  /**
   * The ID token's claims, with those the provider releases only from its userinfo endpoint (many
   * put groups only there; OIDC Core 5.4 lets a code flow's ID token carry sub alone), as Teleport
   * merges them. openid-client checks that the userinfo answer is about the ID token's sub; where
   * both name a claim, the signed ID token's value is kept.
   */
  async #withUserinfo(config: client.Configuration, accessToken: string | undefined, idClaims: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (!accessToken || !config.serverMetadata().userinfo_endpoint) return idClaims;
    const info = await client.fetchUserInfo(config, accessToken, String(idClaims.sub));
    return { ...info, ...idClaims };
  }

  /** Discovery once; a failure is not kept, so the next login asks the provider again. */
  #discovered(): Promise<Provider> {
    this.#provider ??= this.#discover().catch(async (err: unknown) => {
      this.#provider = undefined;
      throw await refusalFor(err, { clientId: this.#settings.client_id, stage: 'discovery' });
    });
    return this.#provider;
  }

  async #discover(): Promise<Provider> {
    const { issuer_url, client_id } = this.#settings;
    const credentials = this.#credentials;
    // openid-client reads the time from Date.now(); an injected clock becomes its skew.
    const skew = Math.round((this.#now().getTime() - Date.now()) / 1000);
    const metadata = { ...(credentials.secret && { client_secret: credentials.secret }), ...(skew !== 0 && { [client.clockSkew]: skew }) };
    const found = await client.discovery(new URL(issuer_url), client_id, metadata, client.None(), {
      [client.customFetch]: this.#fetch,
      timeout: PROVIDER_TIMEOUT_MS / 1000,
    });
    const methods = clientAuthMethods(this.#settings.client_auth_method, found.serverMetadata().token_endpoint_auth_methods_supported, {
      secret: !!credentials.secret,
      key: !!credentials.key,
    });
    const configs = methods.map((method) => {
      const config = new client.Configuration(found.serverMetadata(), client_id, metadata, clientAuth(method, credentials));
      config[client.customFetch] = this.#fetch;
      config.timeout = PROVIDER_TIMEOUT_MS / 1000;
      // Without it openid-client trusts an ID token from the token endpoint on TLS alone (OIDC
      // Core 3.1.3.7 allows that); kport checks its signature through the provider's JWKS too.
      client.enableNonRepudiationChecks(config);
      return { method, config };
    });
    return { configs };
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
  return (
    url.protocol === 'http:' &&
    ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) &&
    url.port !== '' &&
    url.username === '' &&
    url.password === '' &&
    url.hash === ''
  );
}
