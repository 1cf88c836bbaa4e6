import { constants, createSecureServer, type Http2SecureServer, type Http2Session, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { remoteOf } from '../call/remote-address.ts';
import type { TLSSocket } from 'node:tls';
import { BUSY_RESET, type TunnelRegistry } from '../../reversetunnel/tunnel-registry.ts';
import type { SecureContextOptions } from 'node:tls';
import { peerOf, type PeerIdentity } from './peer-identity.ts';
import type { PeerDirectory } from './peer-directory.ts';
import { splice } from './peer-splice.ts';

/** The header naming the agent a peer stream is for; removed before the stream goes on to its tunnel. */
export const PEER_HOST_HEADER = 'kport-peer-host';

/** The bounds on the peer listener (README "Several servers"). */
export const PEER_LIMITS = {
  /**
   * Streams one peer session carries at once: every request a server's people have open to agents
   * tunnelled here. Each agent's tunnel takes up to 1,000 (tunnel-registry.ts) and a person 256
   * (kube-open.ts); a stream costs a few KiB, so 20,000 stays in tens of MiB.
   */
  streams: 20_000,
  /**
   * A request's header block: what a person's server already accepted (node's 64 KiB default), plus
   * the signed identity (~1 KiB) and the routing header, with room to spare.
   */
  headerBytes: 80 * 1024,
  /** A session with no stream open for this long is closed; the dialling server opens another when it needs one. */
  idleMs: 5 * 60_000,
  /** Handshakes that take longer are dropped. */
  handshakeMs: 10_000,
} as const;

interface Deps {
  identity: PeerIdentity;
  /** The host CA's certificate: the only issuer a peer's certificate may have. */
  hostCaPem: string;
  directory: PeerDirectory;
  tunnels: TunnelRegistry;
  /** The versions and ciphers the server's main listener allows (api/tls-policy.ts). */
  tls: SecureContextOptions;
  now: () => number;
  log: (line: string) => void;
}

/**
 * The peer listener: another server's people's requests for agents whose tunnels end here, as
 * HTTP/2 streams on a mutual-TLS connection (Teleport's proxy peering, RFD 69). The client's
 * certificate must come from the host CA with the servers' role (an agent's never does), and every
 * stream is checked again: the certificate unexpired, the server's record still in the store (a
 * server whose record is deleted, or whose lease lapsed, is out). A stream names its agent in
 * PEER_HOST_HEADER and is spliced onto the agent's local tunnel (peer-splice.ts); with no tunnel here
 * it is refused (REFUSED_STREAM), so the other server tries its next candidate; with the tunnel busy
 * (full, or the person at their share) it is reset with BUSY_RESET, which that server tells as 'busy'.
 */
export class PeerListener {
  readonly #deps: Deps;
  readonly #server: Http2SecureServer;
  readonly #callers = new WeakMap<Http2Session, { serverId: string; notAfter: number } | string>();
  readonly #sessions = new Set<ServerHttp2Session>();
  /** Open streams per session (node does not expose a count). */
  readonly #open = new WeakMap<Http2Session, number>();
  /** Refusals logged at most once in 10 s, with how many there were: a refused caller cannot flood the log. */
  #refusedCount = 0;
  #lastLogged = 0;

  constructor(deps: Deps) {
    this.#deps = deps;
    const credential = deps.identity.current;
    this.#server = createSecureServer({
      key: credential.key,
      cert: credential.cert,
      ca: [deps.hostCaPem],
      requestCert: true,
      rejectUnauthorized: true,
      ...deps.tls,
      handshakeTimeout: PEER_LIMITS.handshakeMs,
      settings: { maxConcurrentStreams: PEER_LIMITS.streams, maxHeaderListSize: PEER_LIMITS.headerBytes, enablePush: false },
      maxSessionInvalidFrames: 100,
    });
    deps.identity.onRenew((c) => this.#server.setSecureContext({ key: c.key, cert: c.cert, ca: [deps.hostCaPem], ...deps.tls }));
    this.#server.on('session', (session) => this.#session(session));
    this.#server.on('stream', (stream, _headers, flags, rawHeaders) => this.#stream(stream as ServerHttp2Stream, flags, rawHeaders as unknown as string[]));
    this.#server.on('sessionError', () => {});
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as { address: string; port: number };
    return { host: address.address, port: address.port };
  }

  async close(): Promise<void> {
    for (const session of this.#sessions) session.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #session(session: ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    const raw = socket.getPeerCertificate()?.raw;
    const caller = raw ? peerOf(raw) : 'no client certificate';
    this.#callers.set(session, caller);
    this.#sessions.add(session);
    session.on('error', () => {});
    session.once('close', () => this.#sessions.delete(session));
    // Only a session with nothing open is idle: a quiet watch is not.
    session.setTimeout(PEER_LIMITS.idleMs, () => {
      if ((this.#open.get(session) ?? 0) === 0) session.close();
    });
    if (typeof caller === 'string') {
      this.#refused(socket, caller);
      session.destroy();
    }
  }

  #stream(stream: ServerHttp2Stream, flags: number, rawHeaders: string[]): void {
    stream.on('error', () => {});
    const session = stream.session!;
    this.#open.set(session, (this.#open.get(session) ?? 0) + 1);
    stream.once('close', () => this.#open.set(session, (this.#open.get(session) ?? 1) - 1));
    const why = this.#refusal(this.#callers.get(session));
    if (why) {
      this.#refused(session.socket as TLSSocket, why);
      stream.close(constants.NGHTTP2_INADEQUATE_SECURITY);
      return;
    }
    let hostId: string | undefined;
    const headers: string[] = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toLowerCase();
      // The scheme is the tunnel session's own; the routing header is this hop's alone.
      if (name === PEER_HOST_HEADER) hostId = rawHeaders[i + 1];
      else if (name !== ':scheme') headers.push(name, rawHeaders[i + 1]!);
    }
    const ended = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const up = hostId ? this.#deps.tunnels.request(hostId, headers, { endStream: ended }) : undefined;
    // No tunnel of that agent here (it moved): refused before anything was sent, so the caller tries its next candidate.
    if (!up) return void stream.close(constants.NGHTTP2_REFUSED_STREAM);
    // Full, or the person holds their share of it: BUSY_RESET, which the caller tells the person as its own 'busy'.
    if (up === 'busy') return void stream.close(BUSY_RESET);
    splice(stream, up, ended);
  }

  /** Why this session's streams are refused now; undefined when it may go on. */
  #refusal(caller: { serverId: string; notAfter: number } | string | undefined): string | undefined {
    if (caller === undefined) return 'no session';
    if (typeof caller === 'string') return caller;
    if (this.#deps.now() >= caller.notAfter) return `server ${caller.serverId}'s peer certificate expired`;
    if (!this.#deps.directory.server(caller.serverId)) return `server ${caller.serverId} has no server record in the store (stopped, or removed)`;
    return undefined;
  }

  #refused(socket: TLSSocket, why: string): void {
    this.#refusedCount++;
    const now = this.#deps.now();
    if (now - this.#lastLogged < 10_000) return;
    this.#lastLogged = now;
    this.#deps.log(
      JSON.stringify({
        level: 'warn',
        msg: `proxy peering: refused ${this.#refusedCount} peer connection(s) or stream(s) since the last such line, the last from ${remoteOf(socket)}: ${why}`,
      }),
    );
    this.#refusedCount = 0;
  }
}
