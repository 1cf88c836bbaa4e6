import type { Backend } from '../backend/backend.ts';
import { ApiError } from '../api/errors.ts';
import { MAX_NAME_LENGTH } from '../resources/resource.ts';
import { seal, unseal } from '../pki/seal.ts';
import { readInvite } from './invites.ts';
import { passwordMatches, passwordNeedsRehash, passwordVerifier } from './passwords.ts';
import { activeLock, getSecrets, getUser, secretsKey, totpAad, type OidcSubject, type UserSecrets } from './store.ts';
import type { LoginThrottle } from './throttle.ts';
import { acceptedStep, newTotpSecret, totpUri } from './totp.ts';

export interface LoginDeps {
  backend: Backend;
  /** The server's seal key (src/pki/seal.ts): TOTP secrets are stored sealed with it. */
  sealKey: Buffer;
  throttle: LoginThrottle;
  now: () => Date;
}

/** The person an invite is for and the TOTP secret to enroll (the same one until the invite is spent). */
export async function inviteBegin(deps: LoginDeps, body: { invite?: unknown }): Promise<{ user: string; totp_uri: string; totp_secret: string }> {
  const { backend } = deps;
  const { invite, item } = await readInvite(backend, body.invite, deps.now().getTime());
  let secret: string;
  if (invite.totp) secret = unseal(invite.totp, deps.sealKey, totpAad(invite.user));
  else {
    secret = newTotpSecret();
    const left = Date.parse(invite.expires) - deps.now().getTime();
    const kept = await backend.compareAndSwap(item.key, JSON.stringify({ ...invite, totp: seal(secret, deps.sealKey, totpAad(invite.user)) }), item.revision, {
      ttlMs: Math.max(1000, left),
    });
    // A begin at the same moment won: show its secret, so the person enrolls the one that is kept.
    if (!kept) return inviteBegin(deps, body);
  }
  return { user: invite.user, totp_uri: totpUri(secret, invite.user), totp_secret: secret };
}

/** Spends the invite: sets the password and the TOTP secret a correct code proves the person enrolled. */
export async function inviteFinish(
  deps: LoginDeps,
  body: { invite?: unknown; password?: unknown; totp_code?: unknown },
  source: string,
): Promise<{ user: string; roles: string[]; uid?: string }> {
  const { backend } = deps;
  const now = deps.now().getTime();
  const { invite, item } = await readInvite(backend, body.invite, now);
  const user = invite.user;
  if (!invite.totp) throw new ApiError('invite_not_begun', 'this invite has no TOTP secret yet: kport login --invite shows it first (invite/begin).', { user });
  const verifier = await passwordVerifier(body.password as string).catch((err: ApiError) => {
    throw new ApiError('bad_password', err.message, { user });
  });
  const secret = unseal(invite.totp, deps.sealKey, totpAad(user));
  const step = acceptedStep(secret, body.totp_code, undefined, now);
  if (step === undefined)
    throw new ApiError('wrong_code', 'the TOTP code is not the current one for the secret this invite showed: enter the code your authenticator shows now.', {
      user,
    });
  const record = await getUser(backend, user);
  if (!record || (record.spec.auth ?? 'local') !== 'local')
    throw new ApiError('invite_invalid', `user ${user} was removed after this invite was made: ask an editor for a new one.`, { user });
  // Spent once: of two finishes at the same moment, only the one that deletes it goes on.
  if (!(await backend.delete(item.key, item.revision)))
    throw new ApiError('invite_invalid', 'this invite is unknown, expired or already used: ask an editor for a new one.', { user });
  const secrets: UserSecrets = { password: verifier, totp: invite.totp, totp_last_step: step };
  await backend.put(secretsKey(user), JSON.stringify(secrets));
  await checkNotLocked(backend, user, now);
  deps.throttle.succeeded(user, source);
  return { user, roles: record.spec.roles, uid: record.spec.uid };
}

/**
 * Password and TOTP code. Past the throttle's limit the attempt is refused before the password is
 * checked; every refusal counts as a failure for the user and the source address, and says the
 * same thing whether the user, the password or the code was wrong.
 */
export async function localLogin(
  deps: LoginDeps,
  body: { user?: unknown; password?: unknown; totp_code?: unknown },
  source: string,
): Promise<{ user: string; roles: string[]; uid?: string }> {
  const { backend, throttle } = deps;
  // The name as given goes to the audit trail whatever its length (the audit cuts it and notes how
  // long it was); only a name that could exist is looked up.
  const given = typeof body.user === 'string' && body.user !== '' ? body.user : undefined;
  const user = given !== undefined && given.length <= MAX_NAME_LENGTH ? given : '';
  const blocked = throttle.blocked(user, source);
  if (blocked) throw new ApiError('throttled', blocked, given === undefined ? {} : { user: given });
  const now = deps.now().getTime();
  // The same sentence whatever was wrong, so a guesser learns neither that a user exists nor that a
  // password was right; the audit trail gets the reason.
  const wrong = (reason: string) => {
    throttle.failed(user, source);
    return new ApiError(
      'login_failed',
      'wrong user, password or TOTP code (a code counts once: if you just used this one, wait for the next): check them and run kport login again.',
      { user: given, reason: `login failed: ${reason}` },
    );
  };
  const [record, stored] = user ? await Promise.all([getUser(backend, user), getSecrets(backend, user)]) : [undefined, undefined];
  // Checked (against a decoy when there is no such user) before anything else is told.
  const passwordOk = await passwordMatches(stored?.secrets.password, body.password);
  if (!record || !stored || (record.spec.auth ?? 'local') !== 'local') throw wrong('no such local user');
  if (!passwordOk) throw wrong('wrong password');
  const secret = unseal(stored.secrets.totp, deps.sealKey, totpAad(user));
  const step = acceptedStep(secret, body.totp_code, stored.secrets.totp_last_step, now);
  if (step === undefined) {
    const replay = acceptedStep(secret, body.totp_code, undefined, now) !== undefined;
    throw wrong(replay ? 'a TOTP code counts once: wait for the next one' : 'wrong TOTP code');
  }
  // A verifier from before passwords were normalised is replaced now that the password is known
  // (kept when the password no longer passes today's rules as normalised: it still logs in).
  const password = passwordNeedsRehash(stored.secrets.password)
    ? await passwordVerifier(body.password as string).catch(() => stored.secrets.password)
    : stored.secrets.password;
  // The step is kept at the revision read: a second login with the same code at the same moment loses.
  const kept = await backend.compareAndSwap(stored.item.key, JSON.stringify({ ...stored.secrets, password, totp_last_step: step }), stored.item.revision);
  if (!kept) throw wrong('a TOTP code counts once: wait for the next one');
  await checkNotLocked(backend, user, now);
  throttle.succeeded(user, source);
  return { user, roles: record.spec.roles, uid: record.spec.uid };
}

/** Refuses a locked user's login, with the lock's sentence. */
export async function checkNotLocked(backend: Backend, user: string, now: number, oidc?: OidcSubject): Promise<void> {
  const lock = await activeLock(backend, user, now, oidc);
  if (lock) throw new ApiError('user_locked', lockedMessage(user, lock.metadata.expires, lock.spec.message, lock.spec.user), { user });
}

/** `lockedAs`: the name the lock was set on, when it holds by the provider's subject under another name. */
export function lockedMessage(user: string, until: string | undefined, message: string | undefined, lockedAs?: string): string {
  const other = lockedAs && lockedAs.toLowerCase() !== user.toLowerCase() ? lockedAs : undefined;
  return `user ${user} is locked${other ? ` (locked as ${other}, the same account at the identity provider)` : ''}${until ? ` until ${until}` : ''}${message ? ` (${message})` : ''}: ask an editor to run kport users unlock ${other ?? user}.`;
}
