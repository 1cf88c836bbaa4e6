import 'reflect-metadata';
import { createHash } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const webcrypto = globalThis.crypto;
x509.cryptoProvider.set(webcrypto);

/** ECDSA P-256 everywhere (docs/architecture.md §9): fast to make, small handshakes. */
export const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * Where a host certificate carries what the server decided at join: the agent's roles and its
 * discovery group, as JSON (Teleport keeps system roles in its own certificate extensions too).
 */
export const HOST_IDENTITY_OID = '1.3.9999.7.1';

/**
 * Where a user certificate carries the person's roles at login, next to the host one: a host
 * certificate has no USER_IDENTITY_OID extension and a user certificate no HOST_IDENTITY_OID one,
 * so neither reads as the other even before the issuing CA is checked.
 */
export const USER_IDENTITY_OID = '1.3.9999.7.2';

export interface UserClaims {
  roles: string[];
  /** The user record's uid at login: a certificate of an earlier user of the same name does not pass. */
  uid?: string;
}

export interface HostClaims {
  roles: string[];
  /** The discovery group the agent joined for; its writes stay inside it. */
  discovery_group: string;
}

export async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

export async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return pem('PRIVATE KEY', der);
}

/** The key pair from a PKCS#8 PEM (the public half is derived through JWK). */
export async function importKeyPem(text: string): Promise<CryptoKeyPair> {
  const der = Buffer.from(text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALG, true, ['sign']);
  const { d: _d, key_ops: _ops, ...jwk } = await webcrypto.subtle.exportKey('jwk', privateKey);
  const publicKey = await webcrypto.subtle.importKey('jwk', { ...jwk, key_ops: ['verify'] }, ALG, true, ['verify']);
  return { privateKey, publicKey };
}

export function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

export function parseCertificate(text: string): x509.X509Certificate {
  return new x509.X509Certificate(text);
}

/** PEM text that ends with a newline, so certificates concatenate into a chain. */
export function certPem(cert: x509.X509Certificate | x509.Pkcs10CertificateRequest): string {
  return `${cert.toString('pem').trimEnd()}\n`;
}

function serial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0]! &= 0x7f;
  return Buffer.from(bytes).toString('hex');
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

export { publicKeyHash, spkiPin } from './pin.ts';

/** The same hash as publicKeyHash, from a parsed public key (a CSR's). */
export function keyHash(publicKey: x509.PublicKey): string {
  return createHash('sha256').update(Buffer.from(publicKey.rawData)).digest('hex');
}

/** A certificate request signed by the agent's own key: the proof that it holds it. */
export async function createCsr(keys: CryptoKeyPair, commonName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${escapeDn(commonName)}`, keys, signingAlgorithm: ALG });
  return certPem(csr);
}

/** The public key of a CSR whose signature verifies with it; undefined when it does not parse or verify. */
export async function verifiedCsrKey(text: string): Promise<x509.PublicKey | undefined> {
  try {
    const csr = new x509.Pkcs10CertificateRequest(text);
    if (!(await csr.verify())) return undefined;
    const algorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') return undefined;
    return csr.publicKey;
  } catch {
    return undefined;
  }
}

export interface SigningAuthority {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

export async function createAuthority(commonName: string, validForMs: number): Promise<SigningAuthority> {
  const keys = await generateKeys();
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(commonName)}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + validForMs),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

/** How far back a certificate's notBefore is set, so a peer whose clock is a little behind accepts it. */
export const CLOCK_SKEW_MS = 60_000;

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ips?: string[];
  usage: 'server' | 'client' | 'both';
  validForMs: number;
  host?: HostClaims;
  user?: UserClaims;
}

/** Signs a leaf certificate for `publicKey` (the requester's; the authority never sees its private key). */
export async function issueLeaf(ca: SigningAuthority, publicKey: CryptoKey | x509.PublicKey, opts: LeafOptions): Promise<x509.X509Certificate> {
  const notBefore = new Date(Date.now() - CLOCK_SKEW_MS);
  const sans = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  return x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [`CN=${escapeDn(opts.commonName)}`, ...(opts.organizations ?? []).map((o) => `O=${escapeDn(o)}`)].join(', '),
    issuer: ca.cert.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + CLOCK_SKEW_MS + opts.validForMs),
    signingAlgorithm: ALG,
    publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        {
          server: [x509.ExtendedKeyUsage.serverAuth],
          client: [x509.ExtendedKeyUsage.clientAuth],
          both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        }[opts.usage],
      ),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
      ...(opts.host ? [new x509.Extension(HOST_IDENTITY_OID, false, Buffer.from(JSON.stringify(opts.host)))] : []),
      ...(opts.user ? [new x509.Extension(USER_IDENTITY_OID, false, Buffer.from(JSON.stringify(opts.user)))] : []),
    ],
  });
}

/** The host id and claims a host certificate carries, or undefined when it carries none. */
export function hostClaims(der: Buffer): { hostId: string; claims: HostClaims } | undefined {
  const cert = new x509.X509Certificate(new Uint8Array(der));
  const ext = cert.getExtension(HOST_IDENTITY_OID);
  const hostId = cert.subjectName.getField('CN')[0];
  if (!ext || !hostId || cert.getExtension(USER_IDENTITY_OID)) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(ext.value).toString('utf8')) as HostClaims;
    if (!Array.isArray(claims.roles) || typeof claims.discovery_group !== 'string') return undefined;
    return { hostId, claims };
  } catch {
    return undefined;
  }
}

/** The user name (CN) and roles a user certificate carries; undefined for any other certificate (a host one). */
export function userClaims(der: Buffer): ({ user: string } & UserClaims) | undefined {
  const cert = new x509.X509Certificate(new Uint8Array(der));
  const ext = cert.getExtension(USER_IDENTITY_OID);
  const user = cert.subjectName.getField('CN')[0];
  if (!ext || !user || cert.getExtension(HOST_IDENTITY_OID)) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(ext.value).toString('utf8')) as UserClaims;
    if (!Array.isArray(claims.roles) || !claims.roles.every((r) => typeof r === 'string') || (claims.uid !== undefined && typeof claims.uid !== 'string'))
      return undefined;
    return { user, roles: claims.roles, ...(claims.uid !== undefined && { uid: claims.uid }) };
  } catch {
    return undefined;
  }
}
