import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { isIP } from 'node:net';
import { SERVER_SNI_DOMAIN } from '../../kube/sni.ts';
import { certPem, generateKeys, issueLeaf, keyPem } from '../../pki/certs.ts';
import type { Authorities } from '../auth/authorities.ts';
import { LIMITS } from '../call/limits.ts';
import { TLS_POLICY } from './tls-policy.ts';

/**
 * The server's TLS listener, not yet listening: a fresh key and a leaf from the server TLS CA for
 * every name it is reached by (a wildcard for the per-cluster names), HTTP/2 with HTTP/1.1 beside it,
 * client certificates asked for (the host and user CAs) and checked per call, not at the handshake.
 */
export async function createTlsListener(authorities: Authorities, hostNames: string[], handshakeMs: number): Promise<Http2SecureServer> {
  const keys = await generateKeys();
  const names = [...new Set(['localhost', '127.0.0.1', '::1', ...hostNames].filter((n) => n && n !== '0.0.0.0' && n !== '::'))];
  const leaf = await issueLeaf(authorities.server_tls, keys.publicKey, {
    commonName: 'kport server',
    usage: 'server',
    validForMs: 365 * 86_400_000,
    // The wildcard: one TLS server name per cluster (kube/sni.ts), for clients that drop a URL's path.
    dnsNames: [...names.filter((n) => !isIP(n)), `*.${SERVER_SNI_DOMAIN}`],
    ips: names.filter((n) => isIP(n)),
  });
  return createSecureServer({
    allowHTTP1: true,
    key: await keyPem(keys.privateKey),
    // The chain ends with the CA, so a joining agent can pin it before trusting anything.
    cert: certPem(leaf) + authorities.server_tls.certPem,
    ca: [authorities.host.certPem, authorities.user.certPem],
    requestCert: true,
    rejectUnauthorized: false,
    ...TLS_POLICY,
    handshakeTimeout: handshakeMs,
    // A stranger's connection gets these; ConnectionGuard raises them for an agent's.
    settings: { maxConcurrentStreams: LIMITS.unauthenticatedStreams },
    // nghttp2 drops, unseen, a header value with spaces around it: a padded Impersonate-Group would
    // pass unchecked and unaudited. Taken in; kube-routes.ts trims and checks it as HTTP/1.1 does.
    strictFieldWhitespaceValidation: false,
  });
}
