import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from '../core/secret-file.ts';
import type { Backend } from '../backend/backend.ts';
import { UserError } from '../core/errors.ts';
import type { SigningAuthority } from '../pki/certs.ts';
import { spkiPin } from '../pki/pin.ts';

/** The server's three CAs (DESIGN.md §9): its own TLS, agents' host certs, people's user certs. */
export const AUTHORITY_NAMES = ['server_tls', 'host', 'user'] as const;
export type AuthorityName = (typeof AUTHORITY_NAMES)[number];

export interface Authority extends SigningAuthority {
  name: AuthorityName;
  certPem: string;
}

export type Authorities = Record<AuthorityName, Authority> & { pin: string };

const CA_LIFETIME_MS = 10 * 365 * 86_400_000;

interface StoredAuthority {
  name: AuthorityName;
  cert: string;
  /** AES-256-GCM over the PKCS#8 PEM, with the seal key kept beside the server, never in the store. */
  sealed_key: { alg: 'aes-256-gcm'; iv: string; tag: string; data: string };
}

export function caKey(name: AuthorityName): string {
  return `/authorities/${name}`;
}

/**
 * The CAs from the store, or new ones on the first start. Their private keys sit in the store only
 * sealed, with a key in `<data_dir>/server/seal.key` (0600): a copy of the store (a backup, an
 * etcd snapshot) signs nothing. Servers sharing one store share that file.
 */
export async function loadAuthorities(backend: Backend, dataDir: string): Promise<{ authorities: Authorities; created: boolean }> {
  const sealPath = join(dataDir, 'server', 'seal.key');
  const { certPem, createAuthority, keyPem } = await import('../pki/certs.ts');
  const existing = await Promise.all(AUTHORITY_NAMES.map((name) => backend.get(caKey(name))));
  let seal = readSealKey(sealPath);
  if (!seal) {
    if (existing.some(Boolean)) {
      throw new UserError(`The store already holds this cluster's CAs, sealed with a key this server does not have: copy ${sealPath} from the first server (mode 0600).`, 1);
    }
    seal = createSealKey(sealPath);
  }
  let created = false;
  const entries = await Promise.all(
    AUTHORITY_NAMES.map(async (name, i) => {
      const item = existing[i];
      if (item) return openAuthority(JSON.parse(item.value) as StoredAuthority, seal!, sealPath);
      const fresh = await createAuthority(`kport ${name.replace('_', ' ')} CA`, CA_LIFETIME_MS);
      const stored: StoredAuthority = { name, cert: certPem(fresh.cert), sealed_key: sealText(await keyPem(fresh.keys.privateKey), seal!, name) };
      // Another server starting at the same moment may win: then its CA is the one.
      const won = await backend.create(caKey(name), JSON.stringify(stored));
      if (won) {
        created = true;
        return { ...fresh, name, certPem: stored.cert } satisfies Authority;
      }
      return openAuthority(JSON.parse((await backend.get(caKey(name)))!.value) as StoredAuthority, seal!, sealPath);
    }),
  );
  const [serverTls, host, user] = await Promise.all(entries);
  return { authorities: { server_tls: serverTls!, host: host!, user: user!, pin: spkiPin(serverTls!.certPem) }, created };
}

async function openAuthority(stored: StoredAuthority, seal: Buffer, sealPath: string): Promise<Authority> {
  const { importKeyPem, parseCertificate } = await import('../pki/certs.ts');
  let text: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', seal, Buffer.from(stored.sealed_key.iv, 'base64'));
    decipher.setAAD(Buffer.from(stored.name));
    decipher.setAuthTag(Buffer.from(stored.sealed_key.tag, 'base64'));
    text = Buffer.concat([decipher.update(Buffer.from(stored.sealed_key.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new UserError(`The ${stored.name} CA in the store was sealed with another key than ${sealPath}: copy seal.key from the server that created it.`, 1);
  }
  return { name: stored.name, cert: parseCertificate(stored.cert), certPem: stored.cert, keys: await importKeyPem(text) };
}

function sealText(text: string, seal: Buffer, name: string): StoredAuthority['sealed_key'] {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', seal, iv);
  cipher.setAAD(Buffer.from(name));
  const data = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return { alg: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

function readSealKey(path: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`Cannot read the CA seal key ${path}: ${(err as Error).message}.`);
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new UserError(`The CA seal key ${path} is damaged (expected 32 bytes in base64).`);
  return key;
}

function createSealKey(path: string): Buffer {
  const key = randomBytes(32);
  writeSecretFile(path, `${key.toString('base64')}\n`);
  return key;
}
