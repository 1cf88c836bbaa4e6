import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { Server } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { addressPort } from '../call/remote-address.ts';

/**
 * The PROXY protocol (HAProxy's spec, v2 binary and v1 text) on the server's main listener, for
 * `proxy_service.proxy_protocol: on` behind an L4 load balancer (HAProxy's `send-proxy-v2`): every
 * connection must begin with the header, read here before TLS, and the client's address in it
 * becomes the connection's remoteAddress, so every per-source bound (limits.ts) and every audit
 * event's remote_addr name the real client, not the balancer. A connection without a valid header
 * is closed: it is never counted as a source of its own (it would be the balancer's address).
 * Hand-written: the framing (where the header ends and TLS begins, bounded in size and time) is the
 * part that matters here, and the decoding of two address families is a few lines.
 */

/** v2 begins with these 12 bytes, which no TLS record or v1 line can. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v1's longest line (the spec's 107 bytes, CRLF included). */
const V1_MAX = 107;
/**
 * A v2 header's longest accepted: 16 bytes, the addresses (36 for IPv6) and the TLVs a balancer may
 * add (unique id up to 128, authority up to 255, TLS details); the format allows 64 KiB, which a
 * stranger would make the server buffer before TLS.
 */
export const PROXY_HEADER_MAX = 1024;

export interface ProxySource {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type ProxyHeader =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; why: string }
  /** `source` is absent for a LOCAL (v2) or UNKNOWN (v1) header: the balancer's own connection, which keeps its real address. */
  | { kind: 'header'; length: number; source?: ProxySource };

/** Reads the header at the start of `buf`: complete, invalid, or needing more bytes. */
export function parseProxyHeader(buf: Buffer): ProxyHeader {
  const sig = buf.subarray(0, Math.min(buf.length, V2_SIGNATURE.length));
  if (sig.equals(V2_SIGNATURE.subarray(0, sig.length))) return buf.length < 16 ? { kind: 'incomplete' } : parseV2(buf);
  const v1 = Buffer.from('PROXY ');
  if (buf.subarray(0, Math.min(buf.length, v1.length)).equals(v1.subarray(0, Math.min(buf.length, v1.length)))) return parseV1(buf);
  return { kind: 'invalid', why: 'no PROXY protocol header' };
}

function parseV2(buf: Buffer): ProxyHeader {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { kind: 'invalid', why: `PROXY v2 header of version ${verCmd >> 4}` };
  const length = 16 + buf.readUInt16BE(14);
  if (length > PROXY_HEADER_MAX) return { kind: 'invalid', why: `PROXY v2 header of ${length} bytes (at most ${PROXY_HEADER_MAX})` };
  if (buf.length < length) return { kind: 'incomplete' };
  const command = verCmd & 0x0f;
  if (command === 0x0) return { kind: 'header', length };
  if (command !== 0x1) return { kind: 'invalid', why: `PROXY v2 command ${command}` };
  const family = buf[13]!;
  // TCP over IPv4 (0x11) or IPv6 (0x21): the source address comes first, its port after both addresses.
  if (family === 0x11 && length >= 16 + 12)
    return { kind: 'header', length, source: { address: [...buf.subarray(16, 20)].join('.'), port: buf.readUInt16BE(24), family: 'IPv4' } };
  if (family === 0x21 && length >= 16 + 36) {
    const groups = Array.from({ length: 8 }, (_, i) => buf.readUInt16BE(16 + 2 * i).toString(16));
    const source = ipv6Source(groups.join(':'), buf.readUInt16BE(48));
    if (source) return { kind: 'header', length, source };
  }
  // UNSPEC, UDP or a unix socket with the PROXY command: no client address to count by.
  return { kind: 'invalid', why: `PROXY v2 header of address family 0x${family.toString(16)} (only TCP over IPv4 or IPv6)` };
}

function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= V1_MAX ? { kind: 'invalid', why: `PROXY v1 line longer than ${V1_MAX} bytes` } : { kind: 'incomplete' };
  if (end + 2 > V1_MAX) return { kind: 'invalid', why: `PROXY v1 line longer than ${V1_MAX} bytes` };
  const line = buf.subarray(0, end).toString('latin1');
  if (/^PROXY UNKNOWN( |$)/.test(line)) return { kind: 'header', length: end + 2 };
  const m = /^PROXY (TCP4|TCP6) (\S+) (\S+) (0|[1-9]\d{0,4}) (0|[1-9]\d{0,4})$/.exec(line);
  const v4 = m?.[1] === 'TCP4';
  if (!m || !(v4 ? isIPv4 : isIPv6)(m[2]!) || !(v4 ? isIPv4 : isIPv6)(m[3]!) || Number(m[4]) > 65_535 || Number(m[5]) > 65_535)
    return { kind: 'invalid', why: 'malformed PROXY v1 line' };
  const port = Number(m[4]);
  const source = v4 ? { address: m[2]!, port, family: 'IPv4' as const } : ipv6Source(m[2]!, port);
  return source ? { kind: 'header', length: end + 2, source } : { kind: 'invalid', why: 'malformed PROXY v1 line' };
}

/**
 * An IPv6 source as a socket reports it (RFC 5952, by the URL parser), and an IPv4-mapped one
 * (a balancer listening on :: sends IPv4 clients so) as the IPv4 address: limits.ts counts IPv6 by
 * its /64, which would put every IPv4 client in one.
 */
function ipv6Source(text: string, port: number): ProxySource | undefined {
  // A scope (fe80::1%eth0) or anything else the parser refuses is no client address.
  const host = URL.parse(`http://[${text}]/`)?.hostname.slice(1, -1);
  if (!host) return undefined;
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!mapped) return { address: host, port, family: 'IPv6' };
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return { address: [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.'), port, family: 'IPv4' };
}

/** Makes `socket` report `source` as its peer, for everything that reads remoteAddress (limits, audit). */
function present(socket: Socket, source: ProxySource): void {
  for (const [key, value] of [
    ['remoteAddress', source.address],
    ['remotePort', source.port],
    ['remoteFamily', source.family],
  ] as const)
    Object.defineProperty(socket, key, { value, configurable: true });
}

/**
 * Requires the header on every connection `server` accepts, before TLS: its 'connection' listeners
 * (node's TLS one and the server's own, connections.ts) run only once the header is read, with its
 * source as the socket's address; the TLS socket made on it says the same. Call it after every other
 * 'connection' and 'secureConnection' listener is added. `refuse` closes and counts what had no valid
 * header; at most `pending` connections wait for theirs at once (every one comes from the balancer).
 */
export function requireProxyHeader(server: Server, opts: { timeoutMs: number; pending: number; refuse: (socket: Socket, why: string) => void }): void {
  const listeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const sources = new WeakMap<Socket, ProxySource>();
  // Before connections.ts's own, so the TLS socket says the header's address when it is first read.
  // node keeps the TCP socket a TLS socket wraps as `_parent` (not documented): should that go, no
  // connection would be let in under the balancer's address, each is closed and logged instead.
  server.prependListener('secureConnection', (tls: TLSSocket) => {
    const raw = (tls as TLSSocket & { _parent?: Socket })._parent;
    if (!raw) return opts.refuse(tls, "node's TLS socket no longer names its TCP socket (_parent), so the PROXY header's client is unknown");
    const source = sources.get(raw);
    if (source) present(tls, source);
  });
  // The server tells connections apart by address and port (connections.ts): a header may not claim
  // those of one still open (only a client that reaches the server past the balancer could send one).
  const open = new Set<string>();
  let waiting = 0;
  server.on('connection', (raw: Socket) => {
    if (waiting >= opts.pending) return opts.refuse(raw, `more than ${opts.pending} connections at once still sending their PROXY header`);
    waiting++;
    let got = Buffer.alloc(0);
    let done = false;
    const finish = (why?: string, header?: { length: number; source?: ProxySource }) => {
      if (done) return;
      done = true;
      waiting--;
      clearTimeout(timer);
      raw.off('readable', read);
      raw.off('close', closed);
      if (why !== undefined || !header) return opts.refuse(raw, why ?? 'no PROXY protocol header');
      // What followed the header (the ClientHello, often in the same segment) is read by TLS next.
      const rest = got.subarray(header.length);
      if (rest.length > 0) raw.unshift(rest);
      const source = header.source ?? { address: raw.remoteAddress ?? '?', port: raw.remotePort ?? 0 };
      const id = `${source.address}|${source.port}`;
      if (open.has(id)) return opts.refuse(raw, `a PROXY header naming ${addressPort(source.address, source.port)}, the client of a connection still open`);
      open.add(id);
      raw.once('close', () => open.delete(id));
      if (header.source) {
        sources.set(raw, header.source);
        present(raw, header.source);
      }
      for (const listener of listeners) listener.call(server, raw);
    };
    const read = () => {
      let chunk: Buffer | null;
      while (!done && (chunk = raw.read() as Buffer | null) !== null) {
        got = Buffer.concat([got, chunk]);
        let header: ProxyHeader;
        try {
          header = parseProxyHeader(got);
        } catch (err) {
          // A stranger's bytes never take the server down, whatever the parser missed.
          header = { kind: 'invalid', why: `an unreadable PROXY header (${(err as Error).message})` };
        }
        if (header.kind === 'invalid') return finish(header.why);
        if (header.kind === 'header') return finish(undefined, header);
        if (got.length >= PROXY_HEADER_MAX) return finish(`a PROXY header longer than ${PROXY_HEADER_MAX} bytes`);
      }
    };
    const closed = () => finish('closed before its PROXY header');
    const timer = setTimeout(() => finish(`no complete PROXY header within ${opts.timeoutMs} ms`), opts.timeoutMs).unref();
    raw.on('error', () => {});
    raw.on('readable', read);
    raw.once('close', closed);
  });
}
