import type { OidcAuthentication } from '../../config/schema.ts';
import { ApiError } from '../../api/errors.ts';
import { valueMatches } from '../../resources/labels.ts';
import { nameProblem } from '../../resources/resource.ts';
import { reservedUserNameProblem } from '../../resources/builtin-roles.ts';

type Claims = Record<string, unknown>;
const SHOWN_CLAIM_CHARS = 200;
const SHOWN_CLAIM_NAMES = 30;

/** The claim's values as strings: a list claim (groups) is each of its items, a scalar is itself. */
function claimValues(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function shown(value: unknown): string {
  const text = value === undefined ? 'absent' : JSON.stringify(value);
  return text.length > SHOWN_CLAIM_CHARS ? `${text.slice(0, SHOWN_CLAIM_CHARS)}...` : text;
}

/**
 * The roles Teleport's claims_to_roles gives these claims (`value` matches as a label value:
 * glob or ^regex$); none is a refusal that names what the provider sent, so an administrator can
 * fix the mapping without asking for a token.
 */
export function rolesForClaims(settings: Pick<OidcAuthentication, 'claims_to_roles'>, claims: Claims, user: string): string[] {
  const roles = new Set<string>();
  for (const mapping of settings.claims_to_roles) {
    if (claimValues(claims[mapping.claim]).some((v) => valueMatches(mapping.value, v))) for (const role of mapping.roles) roles.add(role);
  }
  if (roles.size > 0) return [...roles];
  const mapped = [...new Set(settings.claims_to_roles.map((m) => m.claim))].map((claim) => `${claim}: ${shown(claims[claim])}`);
  const names = Object.keys(claims).slice(0, SHOWN_CLAIM_NAMES).join(', ');
  throw new ApiError(
    'oidc_no_role',
    `no claims_to_roles entry matches the claims the identity provider sent for ${user} (${mapped.join('; ')}; claims seen: ${names}): an administrator maps one of them to a role in auth_service.authentication.claims_to_roles.`,
    { user },
  );
}

/** The person's kport user name from `username_claim` (default preferred_username), as a valid name. */
export function userFromClaims(settings: Pick<OidcAuthentication, 'username_claim'>, claims: Claims): string {
  const claim = settings.username_claim;
  const value = claims[claim];
  if (typeof value !== 'string' || value === '') {
    throw new ApiError(
      'oidc_no_username',
      `the identity provider sent no ${claim} claim to name this person (claims seen: ${Object.keys(claims).slice(0, SHOWN_CLAIM_NAMES).join(', ')}): set auth_service.authentication.username_claim to one it sends.`,
    );
  }
  // An email names a person only once the provider has checked the person holds it.
  if (claim === 'email' && claims.email_verified !== true) {
    throw new ApiError(
      'oidc_email_unverified',
      `the identity provider has not verified the email ${shown(value)}: verify it there, or name people by another username_claim.`,
      { user: value },
    );
  }
  const problem = nameProblem(value) ?? reservedUserNameProblem(value);
  if (problem)
    throw new ApiError(
      'oidc_bad_username',
      `the ${claim} claim ${shown(value)} is not a kport user name (${problem}): set auth_service.authentication.username_claim to a claim that is.`,
      { user: value },
    );
  return value;
}
