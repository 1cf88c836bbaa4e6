import type { Backend } from '../../backend/backend.ts';
import { UserError } from '../../core/errors.ts';
import { AUTHORITY_NAMES, caKey, type AuthorityName } from '../../pki/authority-key.ts';
import type { SigningAuthority } from '../../pki/certs.ts';
import { spkiPin } from '../../pki/pin.ts';
import { createSealKey, readSealKey, seal as sealWith, sealPath as sealPathOf, unseal, type Sealed } from '../../pki/seal.ts';

export { AUTHORITY_NAMES, caKey, type AuthorityName };

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
  sealed_key: Sealed;
}

/**
 * The CAs from the store, or new ones on the first start. Their private keys sit in the store only
 * sealed, with a key in `<data_dir>/server/seal.key` (0600): a copy of the store (a backup, an
 * etcd snapshot) signs nothing. Servers sharing one store share that file.
 */
export async function loadAuthorities(backend: Backend, dataDir: string): Promise<{ authorities: Authorities; created: boolean; seal: Buffer }> {
  const sealPath = sealPathOf(dataDir);
  const { certPem, createAuthority, keyPem } = await import('../../pki/certs.ts');
  const existing = await Promise.all(AUTHORITY_NAMES.map((name) => backend.get(caKey(name))));
  let seal = readSealKey(sealPath);
  if (!seal) {
    if (existing.some(Boolean)) {
      throw new UserError(
        `The store already holds this cluster's CAs, sealed with a key this server does not have: copy ${sealPath} from the first server (mode 0600).`,
        1,
      );
    }
    seal = createSealKey(sealPath);
  }
  let created = false;
  const entries = await Promise.all(
    AUTHORITY_NAMES.map(async (name, i) => {
      const item = existing[i];
      if (item) return openAuthority(JSON.parse(item.value) as StoredAuthority, seal!, sealPath);
      const fresh = await createAuthority(`kport ${name.replace('_', ' ')} CA`, CA_LIFETIME_MS);
      const stored: StoredAuthority = { name, cert: certPem(fresh.cert), sealed_key: sealWith(await keyPem(fresh.keys.privateKey), seal!, name) };
      // Another server starting at the same moment may win: then its CA is the one.
      const won = await backend.create(caKey(name), JSON.stringify(stored));
      if (won) {
        if (name === 'server_tls') created = true;
        return { ...fresh, name, certPem: stored.cert } satisfies Authority;
      }
      return openAuthority(JSON.parse((await backend.get(caKey(name)))!.value) as StoredAuthority, seal!, sealPath);
    }),
  );
  const [serverTls, host, user, kubeIdentity] = await Promise.all(entries);
  return { authorities: { server_tls: serverTls!, host: host!, user: user!, kube_identity: kubeIdentity!, pin: spkiPin(serverTls!.certPem) }, created, seal };
}

async function openAuthority(stored: StoredAuthority, seal: Buffer, sealPath: string): Promise<Authority> {
  const { importKeyPem, parseCertificate } = await import('../../pki/certs.ts');
  let text: string;
  try {
    text = unseal(stored.sealed_key, seal, stored.name);
  } catch {
    throw new UserError(`The ${stored.name} CA in the store was sealed with another key than ${sealPath}: copy seal.key from the server that created it.`, 1);
  }
  return { name: stored.name, cert: parseCertificate(stored.cert), certPem: stored.cert, keys: await importKeyPem(text) };
}
