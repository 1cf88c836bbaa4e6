import { randomUUID } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type CryptoKey as JoseKey, type KeyObject } from 'jose';

/**
 * Who a proxied request acts as, decided at the server and carried to the agent as a JWS (ES256,
 * the server's kube_identity key): the person, the Kubernetes user and groups, the cluster, the
 * one agent it is for (`aud`), the kport audit or session id (`jti`), and when the person's
 * certificate expires, which ends long-running streams.
 */
export interface KubeIdentity {
  person: string;
  kubeUser: string;
  kubeGroups: string[];
  cluster: string;
  /** The agent's host id: an identity made for one agent is refused by every other. */
  hostId: string;
  sessionId: string;
  /** Epoch ms: the person's certificate's NotAfter. */
  certExpires: number;
  /** Epoch ms: min(certExpires, issued + 5 min). */
  expires: number;
}

export const IDENTITY_MAX_TTL_MS = 5 * 60_000;
const ISSUER = 'kport';
const ALG = 'ES256';

export class IdentityRefused extends Error {}

type Key = JoseKey | KeyObject;

export function newSessionId(): string {
  return randomUUID();
}

/** Signs identities with the server's key; `expires` is computed here, never taken from the caller. */
export async function signIdentity(key: Key, identity: Omit<KubeIdentity, 'expires'>, now = Date.now()): Promise<{ token: string; expires: number }> {
  const expires = Math.min(identity.certExpires, now + IDENTITY_MAX_TTL_MS);
  const token = await new SignJWT({ kube_user: identity.kubeUser, kube_groups: identity.kubeGroups, cluster: identity.cluster, cert_exp: identity.certExpires })
    .setProtectedHeader({ alg: ALG, typ: 'kport-identity+jwt' })
    .setIssuer(ISSUER)
    .setSubject(identity.person)
    .setAudience(identity.hostId)
    .setJti(identity.sessionId)
    .setIssuedAt(Math.floor(now / 1000))
    // JWT times are seconds: rounded down, an identity never outlives the certificate.
    .setExpirationTime(Math.floor(expires / 1000))
    .sign(key);
  return { token, expires: Math.floor(expires / 1000) * 1000 };
}

/** The identity, if `token` was signed by `key` for this agent and has not expired; IdentityRefused says why not. */
export async function verifyIdentity(key: Key, token: string, expect: { hostId: string; now?: number }): Promise<KubeIdentity> {
  const now = expect.now ?? Date.now();
  let payload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [ALG],
      issuer: ISSUER,
      audience: expect.hostId,
      currentDate: new Date(now),
      clockTolerance: 0,
      typ: 'kport-identity+jwt',
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new IdentityRefused('the identity has expired');
    if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') throw new IdentityRefused('the identity was made for another agent');
    throw new IdentityRefused(`the identity is not valid: ${(err as Error).message}`);
  }
  const { sub, jti, exp, kube_user: kubeUser, kube_groups: kubeGroups, cluster, cert_exp: certExpires } = payload;
  if (
    typeof sub !== 'string' ||
    typeof jti !== 'string' ||
    typeof exp !== 'number' ||
    typeof kubeUser !== 'string' ||
    typeof cluster !== 'string' ||
    typeof certExpires !== 'number' ||
    !Array.isArray(kubeGroups) ||
    !kubeGroups.every((g) => typeof g === 'string')
  ) {
    throw new IdentityRefused('the identity lacks a claim kport needs');
  }
  if (certExpires <= now) throw new IdentityRefused("the person's certificate has expired");
  return { person: sub, kubeUser, kubeGroups, cluster, hostId: expect.hostId, sessionId: jti, certExpires, expires: exp * 1000 };
}
