import { X509Certificate } from 'node:crypto';
import { certPem, generateKeys, hostClaims, issueLeaf, keyPem } from '../../pki/certs.ts';
import type { Authority } from '../auth/authorities.ts';

/**
 * The role a server's own peer certificate carries. No join token grants it (tokens grant only
 * Discovery and Kube: tokens/tokens.ts TOKEN_ROLES, checked at every join), so no agent's host
 * certificate can ever pass the peer listener, though the same host CA signs both.
 */
export const PEER_ROLE = 'proxy';

/** An hour, renewed at half-life: a leaked one is worth little, and a store outage of 30 min does not stop peering. */
export const PEER_CERT_TTL_MS = 60 * 60_000;

export interface PeerCredential {
  cert: string;
  key: string;
  notAfter: number;
}

/**
 * This server's peer certificate: issued to itself from the host CA with PEER_ROLE and its server
 * id as the host id, used as both the peer listener's server certificate and the client
 * certificate it dials other servers with; renewed before it expires, each renewal announced.
 */
export class PeerIdentity {
  readonly #ca: Authority;
  readonly #serverId: string;
  readonly #ttlMs: number;
  readonly #listeners = new Set<(credential: PeerCredential) => void>();
  #current?: PeerCredential;
  #timer?: NodeJS.Timeout;

  constructor(ca: Authority, serverId: string, ttlMs = PEER_CERT_TTL_MS) {
    this.#ca = ca;
    this.#serverId = serverId;
    this.#ttlMs = ttlMs;
  }

  get current(): PeerCredential {
    if (!this.#current) throw new Error('the peer identity is used before it was issued');
    return this.#current;
  }

  async start(): Promise<PeerCredential> {
    await this.#issue();
    return this.current;
  }

  onRenew(listener: (credential: PeerCredential) => void): void {
    this.#listeners.add(listener);
  }

  close(): void {
    clearTimeout(this.#timer);
  }

  async #issue(): Promise<void> {
    const keys = await generateKeys();
    const leaf = await issueLeaf(this.#ca, keys.publicKey, {
      commonName: this.#serverId,
      usage: 'both',
      validForMs: this.#ttlMs,
      host: { roles: [PEER_ROLE], discovery_group: '' },
    });
    const cert = certPem(leaf);
    this.#current = { cert, key: await keyPem(keys.privateKey), notAfter: Date.parse(new X509Certificate(cert).validTo) };
    for (const listener of this.#listeners) listener(this.#current);
    this.#timer = setTimeout(() => void this.#issue().catch(() => this.#retry()), this.#ttlMs / 2).unref();
  }

  #retry(): void {
    this.#timer = setTimeout(() => void this.#issue().catch(() => this.#retry()), 10_000).unref();
  }
}

/** The server id a peer certificate names, when it is one (host claims with PEER_ROLE); else why not. */
export function peerOf(der: Buffer): { serverId: string; notAfter: number } | string {
  const claims = hostClaims(der);
  if (!claims) return 'the certificate is not a kport host certificate';
  if (!claims.claims.roles.includes(PEER_ROLE))
    return `host ${claims.hostId} holds roles ${claims.claims.roles.join(', ') || '(none)'}, not a server's ${PEER_ROLE} role`;
  return { serverId: claims.hostId, notAfter: Date.parse(new X509Certificate(der).validTo) };
}
