import { createHash, randomBytes } from 'node:crypto';
import { ApiError } from '../api/errors.ts';
import type { Backend, Item } from '../backend/backend.ts';
import { INVITES, type Invite } from './store.ts';

export const DEFAULT_INVITE_TTL_MS = 3_600_000;
/** An invite is a password in transit: two days covers a weekend, no longer. */
export const MAX_INVITE_TTL_MS = 48 * 3_600_000;
const MIN_INVITE_TTL_MS = 60_000;
/** Invite codes are 48 hex characters (192 bits); a longer one is not looked up. */
const MAX_CODE_CHARS = 64;

export const inviteKey = (code: string) => `${INVITES}${createHash('sha256').update(code).digest('hex')}`;

export function inviteTtl(ttlMs: number | undefined): number {
  const ttl = ttlMs ?? DEFAULT_INVITE_TTL_MS;
  if (!Number.isFinite(ttl) || ttl < MIN_INVITE_TTL_MS || ttl > MAX_INVITE_TTL_MS) {
    throw new ApiError('bad_request', `an invite lasts 1 min to 48 h (asked: ${ttl} ms): pass a --ttl within that.`);
  }
  return ttl;
}

/** A new one-time code for `user`; only its SHA-256 is stored, with the TTL. */
export async function createInvite(backend: Backend, user: string, ttlMs: number, now: number): Promise<{ invite: string; expires: string }> {
  // Hex, not base64url: a code that began with `-` read as an option in `kport login --invite CODE`.
  const invite = randomBytes(24).toString('hex');
  const expires = new Date(now + ttlMs).toISOString();
  await backend.put(inviteKey(invite), JSON.stringify({ user, expires } satisfies Invite), { ttlMs });
  return { invite, expires };
}

/** The invite a code names, unexpired at `now`; a refusal that does not say whether it ever existed. */
export async function readInvite(backend: Backend, code: unknown, now: number): Promise<{ invite: Invite; item: Item }> {
  const gone = new ApiError(
    'invite_invalid',
    'this invite is unknown, expired or already used: ask an editor for a new one (kport users add, or kport users rm and add again).',
  );
  if (typeof code !== 'string' || code.length === 0 || code.length > MAX_CODE_CHARS) throw gone;
  const item = await backend.get(inviteKey(code));
  if (!item) throw gone;
  const invite = JSON.parse(item.value) as Invite;
  if (Date.parse(invite.expires) <= now) throw gone;
  return { invite, item };
}

/** Deletes every pending invite of `user` (users rm, or a new first-user invite). */
export async function dropInvites(backend: Backend, user: string): Promise<void> {
  for (const item of await backend.list(INVITES)) {
    if ((JSON.parse(item.value) as Invite).user === user) await backend.delete(item.key, item.revision);
  }
}
