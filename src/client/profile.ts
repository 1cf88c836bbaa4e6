import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { writeSecretFile } from '../core/secret-file.ts';
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

/** `$KPORT_HOME`, default `~/.kport`. */
export function kportHome(env: NodeJS.ProcessEnv): string {
  return env.KPORT_HOME || join(env.HOME || homedir(), '.kport');
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

/** The profile current-profile names, or undefined when there is none (never logged in, or the file names nothing). */
export function currentProfileName(home: string): string | undefined {
  let name: string;
  try {
    name = readFileSync(join(home, 'current-profile'), 'utf8').trim();
  } catch {
    return undefined;
  }
  return SAFE_NAME.test(name) && existsSync(join(profilesDir(home), name, 'profile.json')) ? name : undefined;
}

/** The named profile; its credential only when both the key and the certificate are there. */
export function readProfile(home: string, name: string): Profile | undefined {
  if (!SAFE_NAME.test(name)) return undefined;
  const dir = join(profilesDir(home), name);
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  const text = read('profile.json');
  const ca = read('ca.pem');
  if (text === undefined || ca === undefined) return undefined;
  let info: ProfileInfo;
  try {
    info = JSON.parse(text) as ProfileInfo;
  } catch {
    throw new UserError(`${join(dir, 'profile.json')} is not JSON: remove ${dir} and run kport login again.`, 4);
  }
  if (typeof info?.proxy !== 'string' || typeof info.user !== 'string' || !Array.isArray(info.roles) || typeof info.expires !== 'string' || typeof info.ca_pin !== 'string') {
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
  if (process.platform === 'win32') return;
  for (const dir of [home, profilesDir(home), profile.dir]) {
    if (statSync(dir).mode & 0o022) throw new UserError(`${dir} is writable by other users, who could replace your kport key or the server's CA in it: run chmod 700 ${dir}, then run the command again.`, 4);
  }
  const key = join(profile.dir, 'key.pem');
  if (profile.credential && statSync(key).mode & 0o077) {
    throw new UserError(`${key} can be read by other users, so kport will not use it: run chmod 600 ${key} (and kport login again if anyone may have read it).`, 4);
  }
}

/**
 * Writes a profile after a login: each file written aside and renamed into place (0600, the
 * directory 0700); the key before the certificate, and profile.json and current-profile last, so a
 * crash part way leaves either the previous login or a profile the next login overwrites.
 */
export function saveProfile(home: string, address: ServerAddress, info: ProfileInfo, files: { ca: string; cert: string; key: string }): Profile {
  const name = profileName(address);
  const dir = join(profilesDir(home), name);
  mkdirSync(home, { recursive: true, mode: 0o700 });
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
