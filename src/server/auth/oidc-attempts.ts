import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ApiError } from '../../api/errors.ts';
import type { Backend } from '../../backend/backend.ts';
import type { OidcSubject } from '../../people/store.ts';
import { seal, unseal, type Sealed } from '../../pki/seal.ts';

/** How long a login may take from begin to finish (the client gives up after 3 minutes). */
export const ATTEMPT_TTL_MS = 5 * 60_000;
/**
 * Logins in flight at once, across every server of the store. begin is unauthenticated, so the
 * table is bounded: when full (expired attempts lapse on their own) a new login is refused rather
 * than an older one dropped, so a flood cannot cut off people already in their browser. 1,000
 * attempts are about 5 MB of the store at most.
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

/** An attempt as read from the store, with the revision a change or the taking of it is conditioned on. */
export interface HeldAttempt {
  attempt: Attempt;
  revision: number;
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

/**
 * In the store, so a login begun on one server is called back and finished on any other: the
 * attempt at `/oidc/attempts/<id>`, sealed with the seal key (it holds the PKCE verifier, the nonce
 * and the one-time code: nothing a reader of the store could use); the state's digest naming the
 * attempt at `/oidc/states/<sha256>`; and one empty key per attempt under `/oidc/pending/<source>/`,
 * which the bounds count. Each lives the attempt's TTL and lapses on its own.
 */
const ATTEMPTS = '/oidc/attempts/';
const STATES = '/oidc/states/';
const PENDING = '/oidc/pending/';
const attemptKey = (id: string) => `${ATTEMPTS}${id}`;
const stateKey = (state: string) => `${STATES}${digest(state).toString('hex')}`;
const sourcePrefix = (source: string) => `${PENDING}${encodeURIComponent(source)}/`;
const pendingKey = (attempt: Attempt) => `${sourcePrefix(attempt.source)}${attempt.id}`;
/** Attempt ids are randomToken()s: 43 base64url characters. */
const ATTEMPT_ID = /^[A-Za-z0-9_-]{43}$/;

const storedAttempt = z.object({
  id: z.string(),
  state: z.string(),
  nonce: z.string(),
  verifier: z.string(),
  csr: z.string(),
  redirectUri: z.string(),
  source: z.string(),
  created: z.number(),
  secretHash: z.string(),
  code: z.string().optional(),
  calledBack: z.boolean().optional(),
  outcome: z
    .union([
      z.object({ user: z.string(), roles: z.array(z.string()), oidc: z.object({ issuer: z.string(), subject: z.string() }) }),
      z.object({
        refusal: z.object({
          code: z.string(),
          message: z.string(),
          status: z.number(),
          reason: z.string().optional(),
          user: z.string().optional(),
          tokenName: z.string().optional(),
        }),
      }),
    ])
    .optional(),
});
const sealedValue = z.object({ alg: z.literal('aes-256-gcm'), iv: z.string(), tag: z.string(), data: z.string() });

/** Pending logins by attempt id and by OAuth state, expiring and bounded, shared by the servers of one store. */
export class Attempts {
  readonly #backend: Backend;
  readonly #sealKey: Buffer;
  readonly #now: () => number;

  constructor(store: { backend: Backend; sealKey: Buffer; now: () => number }) {
    this.#backend = store.backend;
    this.#sealKey = store.sealKey;
    this.#now = store.now;
  }

  /** Logins in flight. */
  async size(): Promise<number> {
    return (await this.#backend.list(PENDING)).length;
  }

  /**
   * Written first and counted after (a cheap count before, for the common refusal): two servers
   * beginning logins at once both see the other, so together they never pass a bound.
   */
  async add(attempt: Attempt): Promise<void> {
    await this.#checkRoom(attempt, 0);
    const ttlMs = ATTEMPT_TTL_MS;
    const written = await this.#backend.transact([
      { key: attemptKey(attempt.id), revision: 0, value: this.#seal(attempt), ttlMs },
      { key: stateKey(attempt.state), revision: 0, value: attempt.id, ttlMs },
      { key: pendingKey(attempt), revision: 0, value: '', ttlMs },
    ]);
    if (!written) throw new Error('an OIDC attempt id or state was drawn twice');
    try {
      await this.#checkRoom(attempt, 1);
    } catch (err) {
      await this.delete(attempt);
      throw err;
    }
  }

  async get(id: string): Promise<HeldAttempt | undefined> {
    if (!ATTEMPT_ID.test(id)) return undefined;
    const item = await this.#backend.get(attemptKey(id));
    if (!item) return undefined;
    const attempt = this.#unseal(id, item.value);
    // The store's TTL rounds up (etcd's to whole seconds): the attempt's own clock decides.
    if (!attempt || this.#now() - attempt.created > ATTEMPT_TTL_MS) return undefined;
    return { attempt, revision: item.revision };
  }

  async byState(state: string): Promise<HeldAttempt | undefined> {
    const id = (await this.#backend.get(stateKey(state)))?.value;
    return id === undefined ? undefined : this.get(id);
  }

  /** The attempt as changed, when it was still as read; undefined when another call (on any server) changed or took it first. */
  async update(held: HeldAttempt, attempt: Attempt): Promise<HeldAttempt | undefined> {
    const ttlMs = Math.max(1, attempt.created + ATTEMPT_TTL_MS - this.#now());
    const item = await this.#backend.compareAndSwap(attemptKey(attempt.id), this.#seal(attempt), held.revision, { ttlMs });
    return item && { attempt, revision: item.revision };
  }

  /** Ends the attempt as read: true for the one call that took it, false when another took or changed it first. */
  async take(held: HeldAttempt): Promise<boolean> {
    if (!(await this.#backend.delete(attemptKey(held.attempt.id), held.revision))) return false;
    await this.#forget(held.attempt);
    return true;
  }

  async delete(attempt: Attempt): Promise<void> {
    await this.#backend.delete(attemptKey(attempt.id));
    await this.#forget(attempt);
  }

  async #forget(attempt: Attempt): Promise<void> {
    await this.#backend.delete(stateKey(attempt.state));
    await this.#backend.delete(pendingKey(attempt));
  }

  /** `mine`: 1 when the attempt is already written (and counted), 0 before. */
  async #checkRoom(attempt: Attempt, mine: number): Promise<void> {
    if ((await this.size()) - mine >= MAX_ATTEMPTS) {
      throw new ApiError('oidc_busy', `the server has ${MAX_ATTEMPTS} OIDC logins in progress, its limit: try again in a few minutes.`, { status: 503 });
    }
    if ((await this.#backend.list(sourcePrefix(attempt.source))).length - mine >= MAX_ATTEMPTS_PER_SOURCE) {
      throw new ApiError(
        'oidc_busy',
        `${attempt.source} has ${MAX_ATTEMPTS_PER_SOURCE} OIDC logins in progress, the most one address may have: finish or abandon one (each expires ${ATTEMPT_TTL_MS / 60_000} minutes after it began), then run kport login --auth oidc again.`,
        { status: 429 },
      );
    }
  }

  #seal(attempt: Attempt): string {
    const { secretHash, outcome, ...rest } = attempt;
    const stored: z.input<typeof storedAttempt> = {
      ...rest,
      secretHash: secretHash.toString('base64'),
      ...(outcome && {
        outcome:
          'refusal' in outcome
            ? {
                // With the details the audit names (ApiErrorDetails), for the server that finishes it.
                refusal: {
                  code: outcome.refusal.code,
                  message: outcome.refusal.message,
                  status: outcome.refusal.status,
                  ...(outcome.refusal.reason !== undefined && { reason: outcome.refusal.reason }),
                  ...(outcome.refusal.user !== undefined && { user: outcome.refusal.user }),
                  ...(outcome.refusal.tokenName !== undefined && { tokenName: outcome.refusal.tokenName }),
                },
              }
            : outcome,
      }),
    };
    return JSON.stringify(seal(JSON.stringify(stored), this.#sealKey, `oidc attempt ${attempt.id}`));
  }

  /** Undefined when it does not unseal (another store's key, or a value moved from another attempt's key). */
  #unseal(id: string, value: string): Attempt | undefined {
    let stored: z.output<typeof storedAttempt>;
    try {
      const sealed: Sealed = sealedValue.parse(JSON.parse(value));
      stored = storedAttempt.parse(JSON.parse(unseal(sealed, this.#sealKey, `oidc attempt ${id}`)));
    } catch {
      return undefined;
    }
    const { secretHash, outcome, ...rest } = stored;
    const attempt: Attempt = { ...rest, secretHash: Buffer.from(secretHash, 'base64') };
    if (outcome) {
      attempt.outcome =
        'refusal' in outcome ? (({ code, message, ...details }) => ({ refusal: new ApiError(code as never, message, details) }))(outcome.refusal) : outcome;
    }
    return attempt;
  }
}
