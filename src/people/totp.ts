import { Secret, TOTP } from 'otpauth';

/** RFC 6238 as authenticator apps expect it: SHA-1, 6 digits, 30 s. */
const PERIOD_S = 30;
const DIGITS = 6;
/** One step either side: a code typed as it rolls over, or a phone a few seconds off, still counts. */
const WINDOW = 1;

export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totp(secret: string, user: string): TOTP {
  return new TOTP({ issuer: 'kport', label: user, algorithm: 'SHA1', digits: DIGITS, period: PERIOD_S, secret: Secret.fromBase32(secret) });
}

export function totpUri(secret: string, user: string): string {
  return totp(secret, user).toString();
}

/** The current code (tests compute theirs the same way, through otpauth). */
export function totpCode(secret: string, now: number): string {
  return totp(secret, '').generate({ timestamp: now });
}

/**
 * The time step a code belongs to when it is right for `now` (within one step) and newer than
 * `lastStep`, the step of the last code accepted: a code counts once, so a code seen over a
 * shoulder or replayed from a log is refused. undefined otherwise.
 */
export function acceptedStep(secret: string, code: unknown, lastStep: number | undefined, now: number): number | undefined {
  if (typeof code !== 'string' || !/^\d{6}$/.test(code)) return undefined;
  const delta = totp(secret, '').validate({ token: code, timestamp: now, window: WINDOW });
  if (delta === null) return undefined;
  const step = Math.floor(now / 1000 / PERIOD_S) + delta;
  return lastStep !== undefined && step <= lastStep ? undefined : step;
}
