import { isIPv4, isIPv6 } from 'node:net';

/**
 * An address and port as every audit event's remote_addr and every log line writes them: an IPv6
 * address in brackets, as in a URL ([2001:db8::5]:40000), since without them the port reads as
 * the address's last group (2001:db8::5:40000). IPv4 and names as they are (203.0.113.9:443).
 */
export function addressPort(address: string | undefined, port: number | string | undefined): string {
  // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d: written as the IPv4 address
  // it is, as a PROXY header's is, so one client reads the same on every path.
  const mapped = address?.toLowerCase().startsWith('::ffff:') ? address.slice(7) : undefined;
  const host = mapped && isIPv4(mapped) ? mapped : (address ?? '?');
  return `${isIPv6(host) ? `[${host}]` : host}:${port ?? '?'}`;
}

/** A connection's peer as addressPort writes it. */
export function remoteOf(socket: { remoteAddress?: string; remotePort?: number } | undefined): string {
  return addressPort(socket?.remoteAddress, socket?.remotePort);
}
