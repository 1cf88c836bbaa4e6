import type { ClientHttp2Session, ClientHttp2Stream, ClientSessionRequestOptions } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';

/**
 * Streams the server keeps free below what an agent's tunnel allows (its SETTINGS
 * maxConcurrentStreams; 1,000 from kport agents): a stream the server counts as closed may not be
 * closed at the agent yet, and a stream past the agent's limit is queued (no answer) or refused.
 * 10% (at least 8) stays unused, so the server never opens one the agent would not take.
 */
export function tunnelStreamLimit(session: ClientHttp2Session): number {
  const allowed = Math.min(session.remoteSettings?.maxConcurrentStreams ?? 100, 1000);
  return Math.max(1, Math.min(Math.floor(allowed * 0.9), allowed - 8));
}

/** Open streams per tunnel session (the server's own count: node does not expose one). */
const open = new WeakMap<ClientHttp2Session, number>();

/**
 * The reverse tunnels open to this server, by agent host id (src/reversetunnel/protocol.ts). A session
 * leaves when it closes. Which tunnel serves a cluster is decided by the routing on top of this.
 */
export class TunnelRegistry {
  readonly #byHost = new Map<string, Set<ClientHttp2Session>>();
  /** Told when an agent's first tunnel opens and when its last closes (proxy peering's tunnel records). */
  readonly #onHost = new Set<(hostId: string, open: boolean) => void>();

  onHost(listener: (hostId: string, open: boolean) => void): void {
    this.#onHost.add(listener);
  }

  /** A tunnel the server accepted from `hostId`, already an HTTP/2 session with the server as client. */
  attach(hostId: string, session: ClientHttp2Session): void {
    let sessions = this.#byHost.get(hostId);
    const first = !sessions;
    if (!sessions) this.#byHost.set(hostId, (sessions = new Set()));
    sessions.add(session);
    if (first) for (const listener of this.#onHost) listener(hostId, true);
    session.once('close', () => {
      sessions.delete(session);
      if (sessions.size === 0 && this.#byHost.get(hostId) === sessions) {
        this.#byHost.delete(hostId);
        for (const listener of this.#onHost) listener(hostId, false);
      }
    });
  }

  /** The open tunnels of one agent, newest last. */
  sessions(hostId: string): ClientHttp2Session[] {
    return [...(this.#byHost.get(hostId) ?? [])].filter((s) => !s.closed && !s.destroyed);
  }

  /**
   * A stream on the agent's newest tunnel that has room for one (tunnelStreamLimit), counted until
   * it closes; 'busy' when every open tunnel of the agent is full, undefined when it has none.
   */
  request(hostId: string, headers: OutgoingHttpHeaders | string[], options?: ClientSessionRequestOptions): ClientHttp2Stream | 'busy' | undefined {
    const sessions = this.sessions(hostId);
    if (sessions.length === 0) return undefined;
    const session = sessions.reverse().find((s) => (open.get(s) ?? 0) < tunnelStreamLimit(s));
    if (!session) return 'busy';
    const stream = session.request(headers as OutgoingHttpHeaders, options);
    open.set(session, (open.get(session) ?? 0) + 1);
    stream.once('close', () => open.set(session, (open.get(session) ?? 1) - 1));
    return stream;
  }

  /** Streams the server holds open on `session`. */
  openStreams(session: ClientHttp2Session): number {
    return open.get(session) ?? 0;
  }

  hosts(): string[] {
    return [...this.#byHost.keys()];
  }

  get size(): number {
    let n = 0;
    for (const sessions of this.#byHost.values()) n += sessions.size;
    return n;
  }

  /** Every tunnel of `hostId` closed (the agent was removed), or all of them (the server stops). */
  close(hostId?: string): void {
    for (const [host, sessions] of this.#byHost) if (hostId === undefined || host === hostId) for (const s of sessions) s.destroy();
  }
}
