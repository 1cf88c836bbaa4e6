import type { ClientHttp2Session } from 'node:http2';

/**
 * The reverse tunnels open to this server, by agent host id (src/tunnel/protocol.ts). A session
 * leaves when it closes. Which tunnel serves a cluster is decided by the routing on top of this.
 */
export class TunnelRegistry {
  readonly #byHost = new Map<string, Set<ClientHttp2Session>>();

  /** A tunnel the server accepted from `hostId`, already an HTTP/2 session with the server as client. */
  attach(hostId: string, session: ClientHttp2Session): void {
    let sessions = this.#byHost.get(hostId);
    if (!sessions) this.#byHost.set(hostId, (sessions = new Set()));
    sessions.add(session);
    session.once('close', () => {
      sessions.delete(session);
      if (sessions.size === 0 && this.#byHost.get(hostId) === sessions) this.#byHost.delete(hostId);
    });
  }

  /** The open tunnels of one agent, newest last. */
  sessions(hostId: string): ClientHttp2Session[] {
    return [...(this.#byHost.get(hostId) ?? [])].filter((s) => !s.closed && !s.destroyed);
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
