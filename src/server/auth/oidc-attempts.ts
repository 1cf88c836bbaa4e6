import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../../api/errors.ts';
import type { OidcSubject } from '../../people/store.ts';

/** How long a login may take from begin to finish (the client gives up after 3 minutes). */
export const ATTEMPT_TTL_MS = 5 * 60_000;
/**
 * Logins in flight at once. begin is unauthenticated, so the table is bounded: when full (after
 * dropping expired attempts) a new login is refused rather than an older one dropped, so a flood
 * cannot cut off people already in their browser. 1,000 attempts are about 5 MB at most.
 */
export const MAX_ATTEMPTS = 1_000;
/**
 * Logins in flight from one source (an address, or an IPv6 /64: sourceKey): a person needs one or
 * two, so this is plenty for a shared NAT, and the table fills only from 50 sources, not from the
 * few a flood at the login rate limit needs.
 */
export const MAX_ATTEMPTS_PER_SOURCE = 20;

export type Outcome = { user: string; roles: string[]; oidc: OidcSubject } | { refusal: ApiError };

export interface Attempt {
  id: string;
  state: string;
  nonce: string;
  verifier: string;
  csr: string;
  redirectUri: string;
  /** sourceKey of the address that began it. */
  source: string;
  created: number;
  secretHash: Buffer;
  /** Set by the callback: the one-time code the browser carries to the client's loopback listener. */
  code?: string;
  /** Set when the callback arrives (before the code is exchanged, so a concurrent replay is refused). */
  calledBack?: boolean;
  outcome?: Outcome;
}

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

export function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export function sameSecret(expected: Buffer, given: string): boolean {
  return timingSafeEqual(expected, digest(given));
}

/** Pending logins by attempt id and by OAuth state, expiring and bounded. */
export class Attempts {
  readonly #byId = new Map<string, Attempt>();
  readonly #byState = new Map<string, string>();
  readonly #bySource = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  get size(): number {
    return this.#byId.size;
  }

  add(attempt: Attempt): void {
    this.#sweep();
    if (this.#byId.size >= MAX_ATTEMPTS) {
      throw new ApiError('oidc_busy', `the server has ${MAX_ATTEMPTS} OIDC logins in progress, its limit: try again in a few minutes.`, { status: 503 });
    }
    const mine = this.#bySource.get(attempt.source) ?? 0;
    if (mine >= MAX_ATTEMPTS_PER_SOURCE) {
      throw new ApiError(
        'oidc_busy',
        `${attempt.source} has ${MAX_ATTEMPTS_PER_SOURCE} OIDC logins in progress, the most one address may have: finish or abandon one (each expires ${ATTEMPT_TTL_MS / 60_000} minutes after it began), then run kport login --auth oidc again.`,
        { status: 429 },
      );
    }
    this.#byId.set(attempt.id, attempt);
    this.#byState.set(attempt.state, attempt.id);
    this.#bySource.set(attempt.source, mine + 1);
  }

  get(id: string): Attempt | undefined {
    const attempt = this.#byId.get(id);
    if (attempt && this.#expired(attempt)) {
      this.delete(attempt);
      return undefined;
    }
    return attempt;
  }

  byState(state: string): Attempt | undefined {
    const id = this.#byState.get(state);
    return id === undefined ? undefined : this.get(id);
  }

  delete(attempt: Attempt): void {
    if (!this.#byId.delete(attempt.id)) return;
    this.#byState.delete(attempt.state);
    const left = (this.#bySource.get(attempt.source) ?? 1) - 1;
    if (left > 0) this.#bySource.set(attempt.source, left);
    else this.#bySource.delete(attempt.source);
  }

  #expired(attempt: Attempt): boolean {
    return this.#now() - attempt.created > ATTEMPT_TTL_MS;
  }

  /** Maps keep insertion order, which is creation order: expired attempts are at the front. */
  #sweep(): void {
    for (const attempt of this.#byId.values()) {
      if (!this.#expired(attempt)) break;
      this.delete(attempt);
    }
  }
}
