import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { checkTrusted, readTrusted, type TrustRule } from '../core/file-trust.ts';
import { writeSecretFile } from '../core/secret-file.ts';

/** AES-256-GCM over a secret, bound to what it is for (`aad`: a CA's name, a user's TOTP), so a sealed value cannot be moved to another key. */
export interface Sealed {
  alg: 'aes-256-gcm';
  iv: string;
  tag: string;
  data: string;
}

export function sealPath(dataDir: string): string {
  return join(dataDir, 'server', 'seal.key');
}

export function seal(text: string, key: Buffer, aad: string): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const data = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return { alg: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

/** The text; throws when the key or the aad is not the one it was sealed with. */
export function unseal(sealed: Sealed, key: Buffer, aad: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
}

/** The seal key unseals every CA key in the store: whoever could choose it, or read it, could sign any certificate. */
const SEAL_KEY: TrustRule = { what: 'the CA seal key', harm: 'replace it with a key of their own', secret: { afterRead: ' and start the server again' } };
const SERVER_DIR: TrustRule = { what: 'the server directory', harm: 'replace the CA seal key in it' };

/**
 * The key, or undefined when there is none yet; refused, as ssh refuses a private key, when it or
 * its directory belongs to another user (not root) or others can write them, or others can read it.
 */
export function readSealKey(path: string): Buffer | undefined {
  checkTrusted(dirname(path), SERVER_DIR);
  const text = readTrusted(path, SEAL_KEY);
  if (text === undefined) return undefined;
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new UserError(`The CA seal key ${path} is damaged (expected 32 bytes in base64).`);
  return key;
}

export function createSealKey(path: string): Buffer {
  const key = randomBytes(32);
  writeSecretFile(path, `${key.toString('base64')}\n`);
  return key;
}
