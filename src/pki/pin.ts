import { createHash, X509Certificate } from 'node:crypto';

// Light on purpose (node:crypto only): `tokens add` prints the pin without loading the X.509 library.

/** Teleport's CA pin: `sha256:` and the hex SHA-256 of the certificate's SubjectPublicKeyInfo. */
export function spkiPin(certPem: string | Buffer): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** The SHA-256 of a public key (SPKI DER), hex: how the store names the key an agent holds. */
export function publicKeyHash(certPem: string | Buffer): string {
  return spkiPin(certPem).slice('sha256:'.length);
}
