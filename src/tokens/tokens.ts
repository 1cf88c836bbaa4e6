import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Backend, Item, TxnOp } from '../backend/backend.ts';
import { closest } from '../core/suggest.ts';
import { UserError, UsageError } from '../core/errors.ts';
import { kindPrefix, resourceKey } from '../resources/resource.ts';
import { TOKEN, type Token } from '../resources/token.ts';
import { decodeResource, encodeResource, listResources } from '../resources/store.ts';

/** The roles kport has agents for, in Teleport's spelling; types are matched case-insensitively. */
export const TOKEN_ROLES = ['Discovery', 'Kube'] as const;

/** Validates and normalises `--type` (comma separated): a token grants exactly the roles named. */
export function normalizeRoles(types: string): string[] {
  const roles: string[] = [];
  for (const raw of types
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const role = TOKEN_ROLES.find((r) => r.toLowerCase() === raw.toLowerCase());
    if (!role) {
      const near = closest(raw, TOKEN_ROLES);
      throw new UsageError(
        `invalid role "${raw}" in --type: kport has agents only for discovery and kube, so a token grants one or both of those${near ? ` (did you mean "${near.toLowerCase()}"?)` : ''}.`,
      );
    }
    if (roles.includes(role)) throw new UsageError(`duplicate role "${raw}" in --type.`);
    roles.push(role);
  }
  if (roles.length === 0) throw new UsageError('--type needs at least one role, such as --type=discovery,kube.');
  return roles;
}

/** The roles as people type them in --type: `discovery,kube`. */
export function rolesText(roles: readonly string[]): string {
  return roles.map((r) => r.toLowerCase()).join(',');
}

/** SHA-256, hex: for high-entropy secrets only (an agent's credential; tokens of older kport). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * A generated secret is `<id>.<random>`: the id (64 random bits) is the token's public name, so the
 * server finds the one token to check without reading the secret's hash from anything public; the
 * random part (128 bits) is the secret. The name says nothing about the secret.
 */
const GENERATED = /^([0-9a-f]{16})\.[0-9a-f]{32}$/;

const nameOf = (id: string) => `tok-${id}`;

/**
 * A `--value` is chosen by a person and may be weak, so its hash must not be checkable offline
 * cheaply: each token keeps scrypt of its secret under its own random salt. A chosen value carries
 * no id, so a join with one is checked against every chosen-value token: at most this many may
 * live at once, which bounds the scrypt work an unauthenticated join can cause.
 */
export const MAX_CHOSEN_TOKENS = 5;
/** An agent keeps its identity after joining, so a token only has to outlive one rollout. */
export const MAX_TOKEN_TTL_MS = 30 * 24 * 3_600_000;
/** `tokens add --uses`: at most this many joins. */
export const MAX_TOKEN_USES = 10_000;
/** The verifier addToken makes: scrypt at these costs, a 16-byte salt and a 32-byte hash (base64url). */
export const VERIFIER = /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/;
/** The name addToken gives a token: its 64-bit id. */
export const TOKEN_NAME = /^tok-[0-9a-f]{16}$/;
const MAX_SECRET_LENGTH = 256;
const SCRYPT = { N: 16384, r: 8, p: 1 };
const scryptAsync = promisify(scrypt) as (secret: string, salt: Buffer, len: number, opts: typeof SCRYPT) => Promise<Buffer>;

async function makeVerifier(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/** What a token keeps of its secret: a scrypt verifier, or an older kport's SHA-256. */
export type SecretCheck = Pick<Token['spec'], 'verifier' | 'hash'>;

/** Constant-time check of a secret against what a token keeps of it. */
export async function secretMatches({ verifier, hash }: SecretCheck, secret: string): Promise<boolean> {
  if (verifier) {
    const [scheme, n, r, p, salt, expected] = verifier.split('$');
    if (scheme !== 'scrypt' || !salt || !expected) return false;
    const want = Buffer.from(expected, 'base64url');
    const got = await scryptAsync(secret, Buffer.from(salt, 'base64url'), want.length, { N: Number(n), r: Number(r), p: Number(p) });
    return got.length === want.length && timingSafeEqual(got, want);
  }
  if (!hash) return false;
  const got = Buffer.from(hashSecret(secret), 'hex');
  const want = Buffer.from(hash, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * The stored token a secret belongs to: by the id inside a generated secret; a chosen `--value`
 * among the chosen-value tokens; or a token of an older kport, still named from the SHA-256 of its
 * secret, which keeps working until it expires (at most 30 days) rather than break a rollout.
 */
export async function findToken(backend: Backend, secret: string): Promise<{ token: Token; item: Item } | undefined> {
  // No token is longer: a stranger's megabyte is not worth hashing.
  if (secret.length > MAX_SECRET_LENGTH) return undefined;
  const id = GENERATED.exec(secret)?.[1];
  const byName = async (name: string) => {
    const item = await backend.get(resourceKey(TOKEN, name));
    return item ? [item] : [];
  };
  const candidates = [
    () => (id ? byName(nameOf(id)) : Promise.resolve([])),
    () => byName(nameOf(hashSecret(secret).slice(0, 16))),
    async () => (await backend.list(kindPrefix(TOKEN))).filter((item) => decodeResource<Token>(item).spec.chosen),
  ];
  for (const next of candidates) {
    for (const item of await next()) {
      const token = decodeResource<Token>(item);
      if (await secretMatches(token.spec, secret)) return { token, item };
    }
  }
  return undefined;
}

export interface AddTokenInput {
  roles: string[];
  ttlMs: number;
  value?: string;
  labels?: Record<string, string>;
  /** Joins allowed; undefined: reusable until it expires. */
  uses?: number;
  now: Date;
}

/** Stores a new token; returns the secret, which is never stored. */
export async function addToken(backend: Backend, input: AddTokenInput): Promise<{ secret: string; token: Token }> {
  const chosen = input.value !== undefined;
  const id = randomBytes(8).toString('hex');
  const secret = input.value ?? `${id}.${randomBytes(16).toString('hex')}`;
  if (secret.length < 8 || secret.length > MAX_SECRET_LENGTH) throw new UsageError(`--value must be 8 to ${MAX_SECRET_LENGTH} characters long.`);
  if (chosen) {
    const existing = await findToken(backend, secret);
    if (existing) throw new UsageError(`failed to create token (${existing.token.metadata.name} already has this value), please use another --value.`);
    const live = (await listTokens(backend)).filter((t) => t.spec.chosen).length;
    if (live >= MAX_CHOSEN_TOKENS) {
      throw new UsageError(
        `${live} tokens made with --value exist, the most kport keeps (each is checked at every join): remove one with \`kport tokens rm NAME\`, or leave out --value for a generated token.`,
      );
    }
  }
  const token: Token = {
    kind: TOKEN,
    version: 'v2',
    metadata: {
      name: nameOf(id),
      ...(input.labels && Object.keys(input.labels).length > 0 && { labels: input.labels }),
      expires: new Date(input.now.getTime() + input.ttlMs).toISOString(),
    },
    spec: {
      roles: input.roles,
      verifier: await makeVerifier(secret),
      ...(chosen && { chosen: true }),
      ...(input.uses !== undefined && { uses_remaining: input.uses }),
    },
  };
  const created = await backend.create(resourceKey(TOKEN, token.metadata.name), encodeResource(token), { ttlMs: input.ttlMs });
  if (!created) throw new UsageError(`failed to create token (${token.metadata.name} already exists): run the command again.`);
  return { secret, token };
}

export async function listTokens(backend: Backend): Promise<Token[]> {
  return listResources<Token>(backend, TOKEN);
}

export const TOKEN_NOT_FOUND = 'token expired or not found';

/** A join token that may be used now, with the store item it was read from (for the join's transaction). */
export type TokenCheck = { ok: true; token: Token; item: Item } | { ok: false; code: 'token_invalid' | 'role_not_allowed'; reason: string; tokenName?: string };

/**
 * Checks a presented secret at join time, as Teleport does: a missing or expired token reads the
 * same ("token expired or not found"), and an expired one is deleted; the secret is compared in
 * constant time; every requested role must be allowed.
 */
export async function checkJoinToken(backend: Backend, secret: string, requiredRoles: string[], now: Date): Promise<TokenCheck> {
  const found = await findToken(backend, secret.trim());
  if (!found) return { ok: false, code: 'token_invalid', reason: TOKEN_NOT_FOUND };
  const { token, item } = found;
  const name = token.metadata.name;
  if ((token.metadata.expires && Date.parse(token.metadata.expires) <= now.getTime()) || token.spec.uses_remaining === 0) {
    await backend.delete(item.key, item.revision);
    return { ok: false, code: 'token_invalid', reason: TOKEN_NOT_FOUND, tokenName: name };
  }
  for (const role of requiredRoles) {
    if (!token.spec.roles.some((r) => r.toLowerCase() === role.toLowerCase()))
      return { ok: false, code: 'role_not_allowed', reason: `the token does not allow role ${role.toLowerCase()}`, tokenName: name };
  }
  return { ok: true, token, item };
}

/**
 * The token's side of a join, for the same transaction that records the agent: one use counted
 * (the last one deletes it); nothing when the token is reusable, but still at the revision read, so
 * a token deleted meanwhile does not let the join through.
 */
export function tokenUseOp(check: { token: Token; item: Item }, now: Date): TxnOp {
  const { token, item } = check;
  if (token.spec.uses_remaining === undefined) return { key: item.key, revision: item.revision, checkOnly: true };
  if (token.spec.uses_remaining <= 1) return { key: item.key, revision: item.revision };
  const next: Token = { ...token, spec: { ...token.spec, uses_remaining: token.spec.uses_remaining - 1 } };
  return { key: item.key, revision: item.revision, value: encodeResource(next), ...ttlLeft(token, now) };
}

function ttlLeft(token: Token, now: Date): { ttlMs?: number } {
  return token.metadata.expires ? { ttlMs: Math.max(1, Date.parse(token.metadata.expires) - now.getTime()) } : {};
}

/** The next step after a refused join: a token for exactly the roles this agent needs. */
export function joinHint(roles: readonly string[]): string {
  return `create one with \`kport tokens add --type=${rolesText(roles)}\``;
}

/** Local mode's join check: the same rules, as a UserError with the next step. */
export async function validateJoinToken(backend: Backend, secret: string, requiredRoles: string[], now: Date): Promise<{ token: Token; item: Item }> {
  const check = await checkJoinToken(backend, secret, requiredRoles, now);
  if (check.ok) return check;
  throw new UserError(`${check.reason}: ${joinHint(requiredRoles)}.`, 4);
}
