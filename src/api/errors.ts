// The one error of kport's HTTP API (docs/style.md 24): the server throws it, the wire carries its
// code and sentence, and the clients rebuild it from there and switch on `code`, never on the text.
import { refusalExitCode, UserError } from '../core/errors.ts';

/**
 * Every code the server answers with, and the HTTP status each means. A code with `undefined` has
 * no one status (its thrower names it): `oidc_busy` is a conflict, a rate or a full table.
 */
const STATUS = {
  bad_request: 400,
  bad_csr: 400,
  bad_password: 400,
  unknown_role: 400,
  oidc_unknown_state: 400,
  unauthenticated: 401,
  cert_expired: 401,
  login_failed: 401,
  wrong_code: 401,
  forbidden: 403,
  agent_removed: 403,
  token_invalid: 403,
  role_not_allowed: 403,
  invite_invalid: 403,
  key_changed: 403,
  roles_widened: 403,
  login_revoked: 403,
  user_locked: 403,
  user_removed: 403,
  oidc_bad_signature: 403,
  oidc_bad_username: 403,
  oidc_email_unverified: 403,
  oidc_exchange_refused: 403,
  oidc_name_taken: 403,
  oidc_no_role: 403,
  oidc_no_username: 403,
  oidc_provider_refused: 403,
  oidc_subject_mismatch: 403,
  oidc_token_expired: 403,
  oidc_token_time: 403,
  oidc_wrong_audience: 403,
  oidc_wrong_code: 403,
  oidc_wrong_issuer: 403,
  oidc_wrong_nonce: 403,
  not_found: 404,
  no_recording: 404,
  no_such_user: 404,
  not_locked: 404,
  oidc_not_configured: 404,
  oidc_unknown_attempt: 404,
  method_not_allowed: 405,
  too_slow: 408,
  fenced_out: 409,
  lease_expired: 409,
  key_in_use: 409,
  invite_not_begun: 409,
  user_exists: 409,
  oidc_pending: 409,
  oidc_replayed_callback: 409,
  oidc_user: 409,
  too_large: 413,
  rate_limited: 429,
  renew_too_soon: 429,
  throttled: 429,
  too_many_leases: 429,
  too_many_reads: 429,
  too_many_watches: 429,
  write_budget: 429,
  internal: 500,
  oidc_answer_too_large: 502,
  oidc_client_auth_unsupported: 502,
  oidc_client_refused: 502,
  oidc_provider_answer: 502,
  oidc_provider_insecure: 502,
  oidc_provider_invalid: 502,
  oidc_provider_unreachable: 502,
  oidc_userinfo_refused: 502,
  busy: 503,
  oidc_provider_timeout: 504,
  oidc_busy: undefined,
  /** Only a client makes this one: an answer whose code it does not know (another server, another version). */
  unknown: undefined,
} as const satisfies Record<string, number | undefined>;

export type ApiErrorCode = keyof typeof STATUS;
export const API_ERROR_CODES = Object.keys(STATUS) as [ApiErrorCode, ...ApiErrorCode[]];

type FixedCode = { [C in ApiErrorCode]: (typeof STATUS)[C] extends number ? C : never }[ApiErrorCode];
type OpenCode = Exclude<ApiErrorCode, FixedCode>;

/** What a refusal tells the audit trail beyond its sentence (never a secret). */
export interface ApiErrorDetails {
  /** The join token a refused join named. */
  tokenName?: string;
  /** The person a refusal concerns when no certificate names them (an expired login, a refused OIDC login). */
  user?: string;
  /** A more precise reason than the caller is told, for the audit trail only. */
  reason?: string;
}

/**
 * A refusal: one sentence naming the next step, the code clients act on, and the HTTP status the
 * code means. Locally (`kport users ...` on the server host) it is a UserError whose exit code the
 * status decides (core/errors.ts refusalExitCode), as the same refusal through a server has.
 */
export class ApiError extends UserError implements ApiErrorDetails {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly tokenName?: string;
  readonly user?: string;
  readonly reason?: string;

  constructor(code: FixedCode, message: string, details?: ApiErrorDetails);
  constructor(code: OpenCode, message: string, details: ApiErrorDetails & { status: number });
  constructor(code: ApiErrorCode, message: string, details: ApiErrorDetails & { status?: number } = {}) {
    const status = details.status ?? STATUS[code] ?? 500;
    super(message, refusalExitCode(status));
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    if (details.tokenName !== undefined) this.tokenName = details.tokenName;
    if (details.user !== undefined) this.user = details.user;
    if (details.reason !== undefined) this.reason = details.reason;
  }

  /** The refusal a client rebuilds from an answer: an unknown code is `unknown`, its status kept. */
  static fromWire(status: number, error: { code?: unknown; message?: unknown } | undefined): ApiError {
    const code = typeof error?.code === 'string' && error.code in STATUS ? (error.code as ApiErrorCode) : 'unknown';
    const message = typeof error?.message === 'string' ? error.message : `HTTP ${status}`;
    return new ApiError(code as OpenCode, message, { status });
  }
}
