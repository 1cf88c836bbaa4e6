import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Backend, Item, TxnOp } from '../backend/backend.ts';
import { UserError, UsageError } from '../core/errors.ts';
import { resourceKey } from '../resources/resource.ts';
import { TOKEN, type Token } from '../resources/token.ts';
import { decodeResource, encodeResource, listResources } from '../resources/store.ts';

/** Teleport's system roles, in Teleport's spelling; types are matched case-insensitively. */
export const TOKEN_ROLES = [
  'Auth', 'Node', 'Proxy', 'Kube', 'App', 'Db', 'WindowsDesktop', 'Discovery', 'Bot', 'Okta', 'MDM', 'Instance',
] as const;


/** Validates and normalises `--type` (comma separated), as `tctl tokens add` does. */
export function normalizeRoles(types: string): string[] {
  const roles: string[] = [];
  for (const raw of types.split(',').map((s) => s.trim()).filter(Boolean)) {
    const role = TOKEN_ROLES.find((r) => r.toLowerCase() === raw.toLowerCase());
    if (!role) throw new UsageError(`invalid role "${raw}": use one or more of ${TOKEN_ROLES.join(', ').toLowerCase()}.`);
    if (roles.includes(role)) throw new UsageError(`duplicate role "${raw}" in --type.`);
    roles.push(role);
  }
  if (roles.length === 0) throw new UsageError('--type needs at least one role, such as --type=discovery,kube.');
  // Teleport widens a bare kube token so the same agent can run the app and discovery services.
  if (roles.length === 1 && roles[0] === 'Kube') roles.push('App', 'Discovery');
  return roles;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The public name of a token: what `tokens ls` shows and `tokens rm` accepts. */
export function tokenName(hash: string): string {
  return `tok-${hash.slice(0, 16)}`;
}

export function generateSecret(): string {
  return randomBytes(16).toString('hex');
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
  const secret = input.value ?? generateSecret();
  if (secret.length < 8) throw new UsageError('--value must be at least 8 characters long.');
  const hash = hashSecret(secret);
  const token: Token = {
    kind: TOKEN,
    version: 'v2',
    metadata: {
      name: tokenName(hash),
      ...(input.labels && Object.keys(input.labels).length > 0 && { labels: input.labels }),
      expires: new Date(input.now.getTime() + input.ttlMs).toISOString(),
    },
    spec: { roles: input.roles, hash, ...(input.uses !== undefined && { uses_remaining: input.uses }) },
  };
  const created = await backend.create(resourceKey(TOKEN, token.metadata.name), encodeResource(token), { ttlMs: input.ttlMs });
  if (!created) throw new UsageError(`failed to create token (${token.metadata.name} already exists), please use another --value.`);
  return { secret, token };
}

export async function listTokens(backend: Backend): Promise<Token[]> {
  return listResources<Token>(backend, TOKEN);
}

export const TOKEN_NOT_FOUND = 'token expired or not found';

/** A join token that may be used now, with the store item it was read from (for the join's transaction). */
export type TokenCheck = { ok: true; token: Token; item: Item } | { ok: false; reason: string; tokenName?: string };

/**
 * Checks a presented secret at join time, as Teleport does: a missing or expired token reads the
 * same ("token expired or not found"), and an expired one is deleted; the hash is compared in
 * constant time; every requested role must be allowed.
 */
export async function checkJoinToken(backend: Backend, secret: string, requiredRoles: string[], now: Date): Promise<TokenCheck> {
  const hash = hashSecret(secret.trim());
  const name = tokenName(hash);
  const key = resourceKey(TOKEN, name);
  const item = await backend.get(key);
  const token = item && decodeResource<Token>(item);
  const matches = token !== undefined && token.spec.hash.length === hash.length && timingSafeEqual(Buffer.from(token.spec.hash, 'hex'), Buffer.from(hash, 'hex'));
  if (!token || !matches) return { ok: false, reason: TOKEN_NOT_FOUND };
  if ((token.metadata.expires && Date.parse(token.metadata.expires) <= now.getTime()) || token.spec.uses_remaining === 0) {
    await backend.delete(key, item!.revision);
    return { ok: false, reason: TOKEN_NOT_FOUND, tokenName: name };
  }
  for (const role of requiredRoles) {
    if (!token.spec.roles.some((r) => r.toLowerCase() === role.toLowerCase())) return { ok: false, reason: `the token does not allow role ${role.toLowerCase()}`, tokenName: name };
  }
  return { ok: true, token, item: item! };
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

/** Local mode's join check: the same rules, as a UserError with the next step. */
export async function validateJoinToken(backend: Backend, secret: string, requiredRoles: string[], now: Date): Promise<{ token: Token; item: Item }> {
  const check = await checkJoinToken(backend, secret, requiredRoles, now);
  if (check.ok) return check;
  const hint = check.reason === TOKEN_NOT_FOUND ? 'create one with `kport tokens add --type=discovery,kube`' : `create one with --type=${requiredRoles.map((r) => r.toLowerCase()).join(',')}`;
  throw new UserError(`${check.reason}: ${hint}.`, 4);
}
