import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { PeopleError } from './errors.ts';

/** Long enough that a throttled guesser gets nowhere; a passphrase of a few words passes. */
export const MIN_PASSWORD_CHARS = 12;
/** Refused before hashing: scrypt of a 10 MB password would cost the server for nothing. */
export const MAX_PASSWORD_BYTES = 1024;
/** As join tokens: about 40 ms and 16 MiB per check on a small server. */
const SCRYPT = { N: 16384, r: 8, p: 1 };
const scryptAsync = promisify(scrypt) as (secret: string, salt: Buffer, len: number, opts: typeof SCRYPT) => Promise<Buffer>;
/** Checked when no such user exists, so a wrong name costs as long as a wrong password. */
const DECOY = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}`;

/** Why a new password is refused, or undefined. */
export function passwordProblem(password: unknown): string | undefined {
  if (typeof password !== 'string') return 'a password is a string';
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return `a password is at most ${MAX_PASSWORD_BYTES} bytes`;
  if ([...password].length < MIN_PASSWORD_CHARS) return `a password has at least ${MIN_PASSWORD_CHARS} characters`;
  return undefined;
}

/** `scrypt$N$r$p$<salt>$<hash>` (base64url), with a salt of its own; throws when the password is refused. */
export async function passwordVerifier(password: string): Promise<string> {
  const problem = passwordProblem(password);
  if (problem) throw new PeopleError(400, 'bad_password', `${problem}: choose another.`);
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/** Constant-time; a password over MAX_PASSWORD_BYTES is false without hashing; no verifier checks a decoy. */
export async function passwordMatches(verifier: string | undefined, password: unknown): Promise<boolean> {
  if (typeof password !== 'string' || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const [scheme, n, r, p, salt, expected] = (verifier ?? DECOY).split('$');
  if (scheme !== 'scrypt' || !salt || !expected) return false;
  const want = Buffer.from(expected, 'base64url');
  const got = await scryptAsync(password, Buffer.from(salt, 'base64url'), want.length, { N: Number(n), r: Number(r), p: Number(p) });
  return verifier !== undefined && got.length === want.length && timingSafeEqual(got, want);
}
