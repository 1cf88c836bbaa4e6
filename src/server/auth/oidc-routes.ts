// The /v1/login/oidc/* calls (docs/people.md "Wire API") as plain functions of the request body or
// query, so the server's router wires each with one line:
//
//   GET  /v1/login/oidc/callback  → redirect(res, (await oidcCallback(oidc, query)).location)
//   POST /v1/login/oidc/begin     → send(res, 200, await oidcBegin(oidc, body))
//   POST /v1/login/oidc/finish    → the user certificate for await oidcFinish(oidc, body)
//
// All three are unauthenticated (rate-limited per source address: src/api/routes.ts). Refusals are
// ApiError (a code, its status, one sentence), thrown for the router's audit.
import { routes } from '../../api/routes.ts';
import type { OidcLogin } from './oidc.ts';
import { ApiError } from '../../api/errors.ts';
import type { OidcSubject } from '../../people/store.ts';

export const OIDC_BEGIN_PATH = routes.oidcBegin.path;
export const OIDC_FINISH_PATH = routes.oidcFinish.path;
export { OIDC_CALLBACK_PATH } from './oidc.ts';

function notConfigured(): ApiError {
  return new ApiError(
    'oidc_not_configured',
    'this server does not take OIDC logins (auth_service.authentication.type is not oidc): log in with a password, or ask its administrator to configure OIDC.',
  );
}

function fields(body: unknown, names: string[]): Record<string, string> {
  const object = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const missing = names.filter((n) => typeof object[n] !== 'string');
  if (missing.length > 0) throw new ApiError('bad_request', `the request needs ${missing.join(', ')} (strings): kport login --auth oidc sends them.`);
  return Object.fromEntries(names.map((n) => [n, object[n] as string]));
}

/** `{csr, redirect_uri}` → `{auth_url, attempt, secret}`; `source` is sourceKey of the caller's address. */
export async function oidcBegin(login: OidcLogin | undefined, body: unknown, source: string): Promise<{ auth_url: string; attempt: string; secret: string }> {
  if (!login) throw notConfigured();
  const { csr, redirect_uri } = fields(body, ['csr', 'redirect_uri']);
  const begun = await login.begin({ csr: csr!, redirectUri: redirect_uri!, source });
  return { auth_url: begun.authUrl, attempt: begun.attempt, secret: begun.secret };
}

/**
 * The provider's redirect of the browser: where to send the browser next (the client's loopback
 * listener), and, for the audit, who signed in or why they were refused.
 */
export async function oidcCallback(
  login: OidcLogin | undefined,
  query: URLSearchParams,
): Promise<{ location: string; user?: string; roles?: string[]; refusal?: ApiError }> {
  if (!login) throw notConfigured();
  const { redirectTo, ...outcome } = await login.callback(query);
  return { location: redirectTo, ...outcome };
}

/** `{attempt, secret, code}` → who logged in (their name, and the provider's iss and sub), their roles, and the CSR sent at begin, for the server to sign. */
export async function oidcFinish(login: OidcLogin | undefined, body: unknown): Promise<{ user: string; roles: string[]; oidc: OidcSubject; csr: string }> {
  if (!login) throw notConfigured();
  const { attempt, secret, code } = fields(body, ['attempt', 'secret', 'code']);
  return login.finish({ attempt: attempt!, secret: secret!, code: code! });
}

/** A 303 to `location` (the browser follows it with a GET), never cached. */
export function redirect(res: { writeHead(status: number, headers: Record<string, string>): unknown; end(): unknown }, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': '0' });
  res.end();
}
