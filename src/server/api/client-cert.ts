import { X509Certificate, type KeyObject } from 'node:crypto';
import { ApiError } from '../../api/errors.ts';
import type { TLSSocket } from 'node:tls';
import { hostClaims, publicKeyHash, userClaims } from '../../pki/certs.ts';
import type { PersonCaller, VerifiedCaller } from '../call/caller.ts';

/**
 * Who a client certificate names: an agent when the host CA issued it (its host claims inside), a
 * person when the user CA did (their user claims inside); a ApiError otherwise. Each CA is checked
 * by its own key, and each kind of certificate carries only its own claims, so a user certificate
 * never passes where a host certificate is expected, nor the reverse.
 */
export function verifyClientCert(socket: TLSSocket, keys: { host: KeyObject; user: KeyObject }): VerifiedCaller | PersonCaller | ApiError {
  const peer = socket.getPeerCertificate();
  if (!peer?.raw)
    return new ApiError(
      'unauthenticated',
      "this call needs the agent host certificate it received when it joined, or a person's user certificate from kport login",
    );
  if (!socket.authorized && String(socket.authorizationError) === 'CERT_HAS_EXPIRED') {
    // Checked here for its message: the per-call check (people-routes.ts) says the same of a login that expires on an open connection.
    const expired = new X509Certificate(peer.raw);
    const claims = expired.verify(keys.user) ? userClaims(peer.raw) : undefined;
    if (claims)
      return new ApiError('cert_expired', `your kport login expired at ${new Date(expired.validTo).toISOString()}: run kport login`, { user: claims.user });
  }
  if (!socket.authorized)
    return new ApiError(
      'unauthenticated',
      `the client certificate was not issued by this cluster's host CA (agents) or user CA (people) (${String(socket.authorizationError)}): join again, or run kport login`,
    );
  const cert = new X509Certificate(peer.raw);
  const keyHash = publicKeyHash(peer.raw);
  const notAfter = Date.parse(cert.validTo);
  if (cert.verify(keys.host)) {
    const identity = hostClaims(peer.raw);
    if (!identity) return new ApiError('unauthenticated', 'the client certificate is not a kport host certificate');
    return { hostId: identity.hostId, roles: identity.claims.roles, group: identity.claims.discovery_group, keyHash, notAfter };
  }
  if (cert.verify(keys.user)) {
    const identity = userClaims(peer.raw);
    if (!identity) return new ApiError('unauthenticated', 'the client certificate is not a kport user certificate');
    return {
      person: identity.user,
      roles: identity.roles,
      ...(identity.uid && { uid: identity.uid }),
      keyHash,
      notAfter,
      notBefore: Date.parse(cert.validFrom),
    };
  }
  return new ApiError(
    'unauthenticated',
    "the client certificate was not issued by this cluster's host CA (agents) or user CA (people): join again, or run kport login",
  );
}
