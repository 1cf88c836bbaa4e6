import { certPem, createAuthority, generateKeys, issueLeaf, keyPem } from '../pki/certs.ts';

export interface KeyPairPem {
  cert: string;
  key: string;
}

export interface CertificateAuthority extends KeyPairPem {
  issue(opts: IssueOptions): Promise<KeyPairPem>;
}

export interface IssueOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ips?: string[];
  usage: 'server' | 'client' | 'both';
  validForMs?: number;
}

const DAY = 86_400_000;

/** A short-lived certificate authority with P-256 keys that makes the leaf's keys too: enough for loopback TLS. */
export async function createCA(commonName: string, validForMs = DAY): Promise<CertificateAuthority> {
  const ca = await createAuthority(commonName, validForMs);
  return {
    cert: certPem(ca.cert),
    key: await keyPem(ca.keys.privateKey),
    async issue(opts) {
      const leafKeys = await generateKeys();
      const cert = await issueLeaf(ca, leafKeys.publicKey, { ...opts, validForMs: opts.validForMs ?? validForMs });
      return { cert: certPem(cert), key: await keyPem(leafKeys.privateKey) };
    },
  };
}
