import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../api/errors.ts';
import { promisify } from 'node:util';

/** Long enough that a throttled guesser gets nowhere; a passphrase of a few words passes. */
export const MIN_PASSWORD_CHARS = 12;
/** Refused before hashing: scrypt of a 10 MB password would cost the server for nothing. */
export const MAX_PASSWORD_BYTES = 1024;
/** As join tokens: about 40 ms and 16 MiB per check on a small server. */
const SCRYPT = { N: 16384, r: 8, p: 1 };
/**
 * Verifiers of passwords hashed in NFKC, as NIST SP 800-63B (5.1.1.2) asks: "é" typed as one code
 * point (NFC, most keyboards) or as "e" and a combining accent (NFD, some input methods and
 * platforms) is one password. `scrypt` verifiers, from before, hashed the password as typed.
 */
const SCHEME = 'scrypt-nfkc';
const LEGACY_SCHEME = 'scrypt';
const scryptAsync = promisify(scrypt) as (secret: string, salt: Buffer, len: number, opts: typeof SCRYPT) => Promise<Buffer>;
/** Checked when no such user exists, so a wrong name costs as long as a wrong password. */
const DECOY = `${SCHEME}$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}`;

/** Why a new password is refused, or undefined. Lengths are of the password as hashed (NFKC). */
export function passwordProblem(password: unknown): string | undefined {
  if (typeof password !== 'string') return 'a password is a string';
  // Checked before normalising too: NFKC of a huge string would cost the server for nothing.
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES || Buffer.byteLength(password.normalize('NFKC')) > MAX_PASSWORD_BYTES)
    return `a password is at most ${MAX_PASSWORD_BYTES} bytes`;
  if ([...password.normalize('NFKC')].length < MIN_PASSWORD_CHARS) return `a password has at least ${MIN_PASSWORD_CHARS} characters`;
  return undefined;
}

/** `scrypt-nfkc$N$r$p$<salt>$<hash>` (base64url) of the password in NFKC, with a salt of its own; throws when the password is refused. */
export async function passwordVerifier(password: string): Promise<string> {
  const problem = passwordProblem(password);
  if (problem) throw new ApiError('bad_password', `${problem}: choose another.`);
  const salt = randomBytes(16);
  const hash = await scryptAsync(password.normalize('NFKC'), salt, 32, SCRYPT);
  return `${SCHEME}$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/** True for a verifier made before passwords were normalised: the next login that passes replaces it (passwordVerifier). */
export function passwordNeedsRehash(verifier: string): boolean {
  return verifier.startsWith(`${LEGACY_SCHEME}$`);
}

/**
 * Constant-time; a password over MAX_PASSWORD_BYTES is false without hashing; no verifier checks a
 * decoy. A legacy verifier hashed the password as it was typed then, so the typed one is tried
 * as typed, in NFC and in NFD (one hash for ASCII, at most three), and a password set in one form
 * still passes when typed in the other.
 */
export async function passwordMatches(verifier: string | undefined, password: unknown): Promise<boolean> {
  if (typeof password !== 'string' || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const [scheme, n, r, p, salt, expected] = (verifier ?? DECOY).split('$');
  if ((scheme !== SCHEME && scheme !== LEGACY_SCHEME) || !salt || !expected) return false;
  const forms = scheme === SCHEME ? [password.normalize('NFKC')] : [...new Set([password, password.normalize('NFC'), password.normalize('NFD')])];
  const want = Buffer.from(expected, 'base64url');
  let matched = false;
  for (const form of forms) {
    const got = await scryptAsync(form, Buffer.from(salt, 'base64url'), want.length, { N: Number(n), r: Number(r), p: Number(p) });
    if (got.length === want.length && timingSafeEqual(got, want)) matched = true;
  }
  return verifier !== undefined && matched;
}
