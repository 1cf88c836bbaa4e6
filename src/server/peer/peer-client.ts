import type { OutgoingHttpHeaders } from 'node:http';
import { connect, type ClientHttp2Session, type ClientHttp2Stream, type ClientSessionRequestOptions } from 'node:http2';
import type { PeerCertificate, SecureContextOptions } from 'node:tls';
import type { PeerDirectory } from './peer-directory.ts';
import { peerOf, type PeerIdentity } from './peer-identity.ts';
import { PEER_HOST_HEADER, PEER_LIMITS } from './peer-listener.ts';

/** A peer that answers no PING for this long is dead (a partition, not a refused connection) and its streams fail. */
const PING_EVERY_MS = 15_000;
/** A peer whose connection failed this recently is tried after the agent's other holders. */
const FAILED_LAST_MS = 30_000;

interface Pooled {
  session: ClientHttp2Session;
  address: string;
  ping: NodeJS.Timeout;
  /** Streams open on it, and when the last one closed: one idle for PEER_LIMITS.idleMs is closed. */
  open: number;
  lastUsed: number;
}

/**
 * This server's side of proxy peering: one HTTP/2 session per other server (dialled when first
 * needed, with this server's peer certificate), on which a person's request for an agent whose
 * tunnel ends there goes as a stream naming the agent. The other server must present a peer
 * certificate from the host CA naming the server id dialled: an address taken over by anything
 * else is not trusted. A dead peer's stream fails before any answer, which the forwarding engine
 * takes as a failed tunnel and tries its next candidate.
 */
export class PeerClients {
  readonly #identity: PeerIdentity;
  readonly #hostCaPem: string;
  readonly #directory: PeerDirectory;
  readonly #pool = new Map<string, Pooled>();
  readonly #tls: SecureContextOptions;
  readonly #log: (line: string) => void;
  /** Per peer, when it last failed; failures logged at most once in 10 s per peer, with how many there were: a failing peer cannot flood the log. */
  readonly #failures = new Map<string, { count: number; logged: number; at: number }>();

  constructor(identity: PeerIdentity, hostCaPem: string, directory: PeerDirectory, tls: SecureContextOptions, log: (line: string) => void = () => {}) {
    this.#tls = tls;
    this.#log = log;
    this.#identity = identity;
    this.#hostCaPem = hostCaPem;
    this.#directory = directory;
    // Sessions made with the old certificate finish what they carry and are not used again.
    identity.onRenew(() => {
      for (const [id, pooled] of this.#pool) this.#drop(id, pooled, false);
    });
  }

  /** How many other live servers hold a tunnel of `hostId` (0: none): a request may try each. */
  holders(hostId: string): number {
    return this.#directory.serversFor(hostId).length;
  }

  /**
   * A stream to `hostId` through a server holding its tunnel, the newest record first, skipping the
   * servers in `tried` (this request's earlier attempts at the agent, which this adds to): a stale
   * or unreachable holder costs one attempt, not the agent. Undefined when none is left.
   */
  open(hostId: string, headers: OutgoingHttpHeaders | string[], options?: ClientSessionRequestOptions, tried?: Set<string>): ClientHttp2Stream | undefined {
    const left = this.#directory.serversFor(hostId).filter((s) => !tried?.has(s));
    // A holder that failed lately goes last: while it is down, a request pays for it only when no other holder answers.
    const now = Date.now();
    const serverId = left.find((s) => now - (this.#failures.get(s)?.at ?? -Infinity) >= FAILED_LAST_MS) ?? left[0];
    const record = serverId && this.#directory.server(serverId);
    if (!serverId || !record) return undefined;
    tried?.add(serverId);
    const pooled = this.#session(serverId, record.peer_addr);
    const routed = Array.isArray(headers) ? [...headers, PEER_HOST_HEADER, hostId] : { ...headers, [PEER_HOST_HEADER]: hostId };
    const stream = pooled.session.request(routed as OutgoingHttpHeaders, options);
    pooled.open++;
    stream.once('close', () => {
      pooled.open--;
      pooled.lastUsed = Date.now();
    });
    return stream;
  }

  close(): void {
    for (const [id, pooled] of this.#pool) this.#drop(id, pooled, true);
  }

  #session(serverId: string, address: string): Pooled {
    const pooled = this.#pool.get(serverId);
    // A session near the end of its stream ids (2^31, odd ones: a billion requests) is replaced before node refuses the next.
    const fresh = (pooled?.session.state.nextStreamID ?? 0) < 2 ** 31 - 1024;
    if (pooled && fresh && pooled.address === address && !pooled.session.closed && !pooled.session.destroyed) return pooled;
    if (pooled) this.#drop(serverId, pooled, false);
    const { cert, key } = this.#identity.current;
    const session = connect(`https://${address}`, {
      cert,
      key,
      ca: [this.#hostCaPem],
      ...this.#tls,
      // The peer is trusted by what its certificate says, not by its address: a peer certificate naming the server dialled.
      checkServerIdentity: (_host: string, presented: PeerCertificate) => {
        const peer = presented.raw ? peerOf(presented.raw) : 'no certificate';
        if (typeof peer === 'string') return new Error(`the peer at ${address} is not a kport server: ${peer}`);
        if (peer.serverId !== serverId) return new Error(`the peer at ${address} is server ${peer.serverId}, not ${serverId}`);
        return undefined;
      },
      settings: { enablePush: false, maxHeaderListSize: PEER_LIMITS.headerBytes },
      peerMaxConcurrentStreams: PEER_LIMITS.streams,
    });
    // Why a peer failed (its address, its certificate, TLS's words) is the server's log's, never the person's.
    session.on('error', (err) => this.#failed(serverId, address, err));
    // A peer that does not complete the handshake in time (a partition: no refusal ever comes) fails its streams, like a refusal.
    const handshake = setTimeout(() => {
      if (!session.destroyed) session.destroy(new Error(`no TLS handshake within ${PEER_LIMITS.handshakeMs} ms`));
    }, PEER_LIMITS.handshakeMs).unref();
    session.once('connect', () => clearTimeout(handshake));
    session.once('close', () => clearTimeout(handshake));
    const ping = setInterval(() => {
      if (entry.open === 0 && Date.now() - entry.lastUsed >= PEER_LIMITS.idleMs) return this.#drop(serverId, entry, false);
      const timer = setTimeout(() => session.destroy(), PING_EVERY_MS).unref();
      try {
        session.ping((err) => (err ? session.destroy() : clearTimeout(timer)));
      } catch {
        clearTimeout(timer);
      }
    }, PING_EVERY_MS).unref();
    const entry: Pooled = { session, address, ping, open: 0, lastUsed: Date.now() };
    session.once('close', () => {
      clearInterval(ping);
      if (this.#pool.get(serverId) === entry) this.#pool.delete(serverId);
    });
    this.#pool.set(serverId, entry);
    return entry;
  }

  #failed(serverId: string, address: string, err: Error): void {
    const seen = this.#failures.get(serverId) ?? { count: 0, logged: -Infinity, at: 0 };
    this.#failures.set(serverId, seen);
    seen.count++;
    const now = Date.now();
    seen.at = now;
    if (now - seen.logged < 10_000) return;
    this.#log(
      JSON.stringify({
        level: 'warn',
        msg: `proxy peering: ${seen.count} failure(s) reaching server ${serverId} at ${address} since the last such line: ${err.message}`,
      }),
    );
    seen.logged = now;
    seen.count = 0;
  }

  #drop(serverId: string, pooled: Pooled, now: boolean): void {
    if (this.#pool.get(serverId) === pooled) this.#pool.delete(serverId);
    clearInterval(pooled.ping);
    if (now) pooled.session.destroy();
    else pooled.session.close();
  }
}
