import { createPrivateKey, X509Certificate } from 'node:crypto';
import { accessSync, constants, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { checkTrusted, readTrusted, type TrustRule } from '../core/file-trust.ts';
import { writeSecretFile } from '../core/secret-file.ts';
import { trustedPath } from '../core/trusted-path.ts';
import type { ServerAddress } from './server-client.ts';

/** What a login leaves behind for later commands (profile.json; the key, certificate and CA sit beside it). */
export interface ProfileInfo {
  /** host:port of the kport server. */
  proxy: string;
  user: string;
  roles: string[];
  /** ISO time the certificate expires. */
  expires: string;
  /** sha256:<SPKI hash> of the server TLS CA this profile trusts. */
  ca_pin: string;
}

export interface Profile extends ProfileInfo {
  name: string;
  dir: string;
  /** The server TLS CA (PEM). */
  ca: string;
  /** undefined after `kport logout`: the profile keeps the server and its pin for the next login. */
  credential?: { cert: string; key: string };
}

/** `$KPORT_HOME`, default `~/.kport`, as its real path after the walk every link and directory on the way passes (trusted-path.ts). */
export function kportHome(env: NodeJS.ProcessEnv): string {
  return trustedPath(env.KPORT_HOME || join(env.HOME || homedir(), '.kport'), rule('your kport home'));
}

/** `<host>_<port>`, with anything a file name should not hold (an IPv6 address's colons) as `_`. */
export function profileName(address: ServerAddress): string {
  return `${address.host}_${address.port}`.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** A name read from current-profile names a directory under profiles/ and nothing else. */
const SAFE_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,300}$/;

function profilesDir(home: string): string {
  return join(home, 'profiles');
}

/** What a refusal in the profile says others could do: the same for the home, profiles/ and a profile. */
const HARM = "replace your kport key or the server's CA in it";
const rule = (what: string): TrustRule => ({ what, harm: HARM, exitCode: 4 });

/**
 * The kport home as commands first meet it: another user's home is refused (they would choose the
 * server and the CA this person trusts), and one that cannot be read is an error, never "no
 * profile": that would quietly run the command on a local store instead of the server. Returns
 * whether it exists.
 */
function openHome(home: string): boolean {
  if (!checkTrusted(home, rule('your kport home'), { ownerOnly: true })) return false;
  try {
    accessSync(home, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new UserError(
      `Cannot read your kport home ${home} (${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}), so kport cannot tell whether you are logged in to a server and will not guess: run chmod 700 ${home} (it must be yours), or set KPORT_HOME to a directory of yours.`,
      4,
      { cause: err },
    );
  }
  checkTrusted(profilesDir(home), rule('your kport profiles directory'), { ownerOnly: true });
  return true;
}

/** The profile current-profile names, or undefined when there is none (never logged in, or the file names nothing). */
export function currentProfileName(home: string): string | undefined {
  if (!openHome(home)) return undefined;
  const name = readTrusted(join(home, 'current-profile'), rule('the current-profile file'))?.trim();
  if (name === undefined || !SAFE_NAME.test(name)) return undefined;
  return checkTrusted(join(profilesDir(home), name, 'profile.json'), rule('the profile'), { ownerOnly: true }) ? name : undefined;
}

/** The named profile; its credential only when both the key and the certificate are there. Whose each file is is checked; its mode, by checkProfilePermissions. */
export function readProfile(home: string, name: string): Profile | undefined {
  if (!SAFE_NAME.test(name) || !openHome(home)) return undefined;
  const dir = join(profilesDir(home), name);
  if (!checkTrusted(dir, rule('your kport profile'), { ownerOnly: true })) return undefined;
  const read = (file: string) => readTrusted(join(dir, file), rule(`the profile's ${file}`), { ownerOnly: true });
  const text = read('profile.json');
  const ca = read('ca.pem');
  if (text === undefined || ca === undefined) return undefined;
  let info: ProfileInfo;
  try {
    info = JSON.parse(text) as ProfileInfo;
  } catch {
    throw new UserError(`${join(dir, 'profile.json')} is not JSON: remove ${dir} and run kport login again.`, 4);
  }
  if (
    typeof info?.proxy !== 'string' ||
    typeof info.user !== 'string' ||
    !Array.isArray(info.roles) ||
    typeof info.expires !== 'string' ||
    typeof info.ca_pin !== 'string'
  ) {
    throw new UserError(`${join(dir, 'profile.json')} is not a kport profile: remove ${dir} and run kport login again.`, 4);
  }
  const cert = read('cert.pem');
  const key = read('key.pem');
  return { ...info, name, dir, ca, ...(cert !== undefined && key !== undefined && { credential: { cert, key } }) };
}

export function currentProfile(home: string): Profile | undefined {
  const name = currentProfileName(home);
  return name === undefined ? undefined : readProfile(home, name);
}

/**
 * Refuses a profile others could read the key of or put files in (as ssh refuses an open private
 * key): a readable key lets them act as this person; a writable kport home, profiles/ or profile
 * directory lets them swap in their own key, certificate or server CA. Called before the profile's
 * files are trusted; logout, which only removes the key, does not ask.
 */
export function checkProfilePermissions(home: string, profile: Pick<Profile, 'dir' | 'credential'>): void {
  for (const dir of [home, profilesDir(home), profile.dir]) checkTrusted(dir, rule(dir === home ? 'your kport home' : 'your kport profile directory'));
  if (profile.credential)
    checkTrusted(join(profile.dir, 'key.pem'), { ...rule('your kport key'), secret: { afterRead: ' (and kport login again if anyone may have read it)' } });
}

/**
 * Writes a profile after a login: each file written aside and renamed into place (0600, the
 * directory 0700); the key before the certificate, and profile.json and current-profile last, so a
 * crash part way leaves either the previous login or a profile the next login overwrites.
 */
export function saveProfile(home: string, address: ServerAddress, info: ProfileInfo, files: { ca: string; cert: string; key: string }): Profile {
  const name = profileName(address);
  const dir = join(profilesDir(home), name);
  trustedPath(home, rule('your kport home'), { create: true });
  writeSecretFile(join(dir, 'key.pem'), files.key);
  writeSecretFile(join(dir, 'cert.pem'), files.cert);
  writeSecretFile(join(dir, 'ca.pem'), files.ca);
  writeSecretFile(join(dir, 'profile.json'), `${JSON.stringify(info, null, 2)}\n`);
  writeSecretFile(join(home, 'current-profile'), `${name}\n`);
  return { ...info, name, dir, ca: files.ca, credential: { cert: files.cert, key: files.key } };
}

/** `kport logout`: the key and the certificate go; the server's address and pin stay for the next login. */
export function removeCredential(profile: Profile): boolean {
  const had = profile.credential !== undefined;
  for (const file of ['key.pem', 'cert.pem']) rmSync(join(profile.dir, file), { force: true });
  return had;
}

/** The certificate's own expiry (profile.json only repeats it) and whether the key is the certificate's. */
export function checkCredential(credential: { cert: string; key: string }): { expires: Date; matches: boolean } {
  const cert = new X509Certificate(credential.cert);
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(credential.key));
  } catch {
    matches = false;
  }
  return { expires: new Date(cert.validTo), matches };
}
