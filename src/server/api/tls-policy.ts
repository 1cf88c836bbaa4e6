import { constants } from 'node:crypto';
import type { SecureServerOptions } from 'node:http2';

/**
 * What the server's TLS accepts (issue 18). TLS 1.2 only with ECDHE and an AEAD cipher: the server
 * key is ECDSA P-256, and these are what HTTP/2 requires anyway (RFC 9113 §9.2.2); CBC with SHA-1
 * is gone. TLS 1.3's suites are all AEAD. No renegotiation at all: a client-initiated one costs the
 * server a handshake at the client's will, and nothing kport speaks needs it.
 */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
} satisfies SecureServerOptions;
