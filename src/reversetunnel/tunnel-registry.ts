import { constants, type ClientHttp2Session, type ClientHttp2Stream, type ClientSessionRequestOptions } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';
import { IDENTITY_HEADER } from './protocol.ts';

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

/**
 * The reset a server that holds an agent's tunnel answers a peer's stream with when request() says
 * 'busy' (peer-listener.ts): the person's server counts it as a busy agent, as it counts its own
 * tunnels' 'busy', and tells the person so. Nothing else in kport resets a stream with it.
 */
export const BUSY_RESET = constants.NGHTTP2_ENHANCE_YOUR_CALM;

/**
 * The share of an agent's tunnel one person may hold: about a quarter of tunnelStreamLimit, at most
 * 256 (256 of a kport agent's 900; the same as a person's bound at one server, MAX_REQUESTS_PER_PERSON
 * in kube-open.ts, so at one server that bound answers first, with its 429). Counted here, where every
 * stream onto the tunnel passes on the server that holds it (a person's own server's requests and the
 * streams other servers splice in alike), so a person spreading over servers still holds at most this
 * much of one agent (README "Several servers").
 */
export function personStreamShare(session: ClientHttp2Session): number {
  return Math.max(1, Math.min(256, Math.floor(tunnelStreamLimit(session) * 0.3)));
}

/** Open streams per tunnel session (the server's own count: node does not expose one). */
const open = new WeakMap<ClientHttp2Session, number>();

/**
 * The person a stream is for: the `sub` of its signed identity (identity.ts). Read, not verified:
 * the person's server signed it, peers are mutually authenticated, and the agent verifies it. A
 * header that is not a JWS with a string `sub` is no person (such a stream reaches no cluster).
 */
export function personOf(headers: OutgoingHttpHeaders | string[]): string | undefined {
  let token: unknown;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (headers[i]!.toLowerCase() === IDENTITY_HEADER) token = headers[i + 1];
  } else token = headers[IDENTITY_HEADER];
  if (typeof token !== 'string') return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    const sub = (claims as { sub?: unknown } | null)?.sub;
    return typeof sub === 'string' && sub !== '' ? sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The reverse tunnels open to this server, by agent host id (src/reversetunnel/protocol.ts). A session
 * leaves when it closes. Which tunnel serves a cluster is decided by the routing on top of this.
 */
export class TunnelRegistry {
  readonly #byHost = new Map<string, Set<ClientHttp2Session>>();
  /** Open streams by agent, then by person (personOf): each held to personStreamShare. */
  readonly #byPerson = new Map<string, Map<string, number>>();
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
   * it closes; 'busy' when every open tunnel of the agent is full, or the stream's person already
   * holds their share of it (personStreamShare), undefined when it has none.
   */
  request(hostId: string, headers: OutgoingHttpHeaders | string[], options?: ClientSessionRequestOptions): ClientHttp2Stream | 'busy' | undefined {
    const sessions = this.sessions(hostId).reverse();
    if (sessions.length === 0) return undefined;
    const person = personOf(headers);
    let people = this.#byPerson.get(hostId);
    const held = person === undefined ? 0 : (people?.get(person) ?? 0);
    if (person !== undefined && held >= Math.max(...sessions.map(personStreamShare))) return 'busy';
    const session = sessions.find((s) => (open.get(s) ?? 0) < tunnelStreamLimit(s));
    if (!session) return 'busy';
    const stream = session.request(headers as OutgoingHttpHeaders, options);
    open.set(session, (open.get(session) ?? 0) + 1);
    if (person !== undefined) {
      if (!people) this.#byPerson.set(hostId, (people = new Map()));
      people.set(person, held + 1);
    }
    const counted = people;
    stream.once('close', () => {
      open.set(session, (open.get(session) ?? 1) - 1);
      if (person === undefined || !counted) return;
      const left = (counted.get(person) ?? 1) - 1;
      if (left > 0) counted.set(person, left);
      else counted.delete(person);
      if (counted.size === 0 && this.#byPerson.get(hostId) === counted) this.#byPerson.delete(hostId);
    });
    return stream;
  }

  /** Streams `person` holds open on `hostId`'s tunnels. */
  personStreams(hostId: string, person: string): number {
    return this.#byPerson.get(hostId)?.get(person) ?? 0;
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
