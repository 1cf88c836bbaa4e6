/**
 * The cause of a failed connection, in words a person can act on ("connection refused
 * (ECONNREFUSED 127.0.0.1:6443)", "DNS name not found (ENOTFOUND x.eks.amazonaws.com)", "TLS
 * verification failed (self-signed certificate)"), looking through wrappers (`fetch failed`, an
 * HTTP/2 stream cancelled because its session failed). undefined when there is no such cause.
 */
export function describeConnectError(err: unknown): string | undefined {
  for (
    let e = err as (NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string; cause?: unknown }) | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (!code) continue;
    const where = e.address ? `${e.address}${e.port ? `:${e.port}` : ''}` : (e.hostname ?? '');
    const at = where ? ` ${where}` : '';
    switch (code) {
      case 'ECONNREFUSED':
        return `connection refused (ECONNREFUSED${at})`;
      case 'ENOTFOUND':
        return `DNS name not found (ENOTFOUND${at})`;
      case 'EAI_AGAIN':
        return `DNS lookup failed for now (EAI_AGAIN${at})`;
      case 'ETIMEDOUT':
      case 'UND_ERR_CONNECT_TIMEOUT':
        return `connection timed out (${code}${at})`;
      case 'ECONNRESET':
        return `connection reset by the server (ECONNRESET${at})`;
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        return `no route to the host (${code}${at})`;
    }
    // A TLS client's first bytes answered in plain text (an HTTP port): no certificate was ever looked at.
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG')
      return `no TLS at this port: it answered in plain text (${code}${at})`;
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code))
      return `TLS verification failed (${e.message.replace(/; if the root CA is installed locally.*$/, '')})`;
  }
  return undefined;
}
