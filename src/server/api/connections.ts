import type { Http2SecureServer, Http2ServerRequest, ServerHttp2Session } from 'node:http2';
import type { ApiError } from '../../api/errors.ts';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Caller, Connection, ConnectionLookup } from '../call/caller.ts';
import { Counter, LIMITS, sourceKey, type ServerTimeouts } from '../call/limits.ts';

interface State extends Connection {
  closedBecause?: string;
  dropping?: Set<(reason: string | undefined) => void>;
  socket: TLSSocket;
  session?: ServerHttp2Session;
  timer?: NodeJS.Timeout;
}

const LOG_EVERY_MS = 10_000;

/**
 * The connection layer of the server (issue 18): how many connections a stranger may hold, how many
 * streams a connection without a certificate gets, and the end of a connection whose certificate
 * expires. The host or user certificate is verified once, at the handshake; its expiry is checked on
 * every call (router.ts) and closes the connection when it comes (here).
 */
export class ConnectionGuard implements ConnectionLookup {
  readonly #verify: (socket: TLSSocket) => Caller | ApiError;
  readonly #log: (line: string) => void;
  readonly #timeouts: Pick<ServerTimeouts, 'silentMs' | 'unauthenticatedIdleMs'>;
  readonly #handshaking = new Counter(LIMITS.handshakesPerSource, LIMITS.handshakesTotal);
  readonly #unauthenticated = new Counter(LIMITS.unauthenticatedPerSource, LIMITS.unauthenticatedTotal);
  /** What ends a TCP connection's handshake count, by `address|port`, until its handshake ends or it closes. */
  readonly #handshakeDone = new Map<string, () => void>();
  readonly #byId = new Map<string, State>();
  readonly #bySession = new WeakMap<ServerHttp2Session, State>();
  readonly #bySocket = new WeakMap<object, State>();
  #refused = 0;
  #lastLogged = 0;

  constructor(
    server: Http2SecureServer,
    opts: {
      verify: (socket: TLSSocket) => Caller | ApiError;
      log: (line: string) => void;
      timeouts: Pick<ServerTimeouts, 'silentMs' | 'unauthenticatedIdleMs'>;
    },
  ) {
    this.#verify = opts.verify;
    this.#log = opts.log;
    this.#timeouts = opts.timeouts;
    server.on('connection', (raw: Socket) => this.#accept(raw));
    // Before node:http2's own listener, so the session it makes finds its caller already verified.
    server.prependListener('secureConnection', (socket: TLSSocket) => this.#secured(socket));
    server.on('session', (session: ServerHttp2Session) => this.#session(session));
    // After node's own listener, which sets the server's idle timeout on the session or socket it makes.
    server.on('secureConnection', (socket: TLSSocket) => this.#shortenIdle(socket));
  }

  /** The connection a request came on; undefined only for a socket that closed meanwhile. */
  of(req: Pick<Http2ServerRequest, 'socket'> & { stream?: Http2ServerRequest['stream'] }): Connection | undefined {
    const session = req.stream?.session as ServerHttp2Session | undefined;
    return session ? this.#bySession.get(session) : this.#bySocket.get(req.socket);
  }

  /** The connection an HTTP/2 stream or an HTTP/1.1 socket (an upgrade's) came on. */
  ofSession(session: object | undefined): Connection | undefined {
    return session && this.#bySession.get(session as ServerHttp2Session);
  }

  ofSocket(socket: object): Connection | undefined {
    return this.#bySocket.get(socket);
  }

  /** The open connections of `person`'s certificates (every login of theirs), or of every person: to end them when that person is locked or removed. */
  ofPeople(person?: string): Connection[] {
    return [...this.#byId.values()].filter(
      ({ caller, socket }) => 'person' in caller && (person === undefined || caller.person === person) && !socket.destroyed,
    );
  }

  /** A TCP connection: counted while its TLS handshake runs (the certificate is known only at its end). */
  #accept(raw: Socket): void {
    const key = sourceKey(raw.remoteAddress);
    const verdict = this.#handshaking.acquire(key);
    if (verdict !== 'ok')
      return this.#refuse(
        raw,
        verdict === 'per_source'
          ? `more than ${LIMITS.handshakesPerSource} TLS handshakes at once from ${key}`
          : `more than ${LIMITS.handshakesTotal} TLS handshakes at once`,
      );
    const id = connectionId(raw);
    let counted = true;
    const release = () => {
      if (counted) this.#handshaking.release(key);
      counted = false;
      if (this.#handshakeDone.get(id) === release) this.#handshakeDone.delete(id);
    };
    // A peer that has sent nothing in a few seconds is not an agent (its ClientHello comes at once):
    // it goes well before the handshake timeout, so it holds its address's handshake share briefly.
    const silent = setTimeout(() => {
      if (counted && raw.bytesRead === 0) raw.destroy();
    }, this.#timeouts.silentMs).unref();
    raw.once('close', () => {
      clearTimeout(silent);
      release();
    });
    this.#handshakeDone.set(id, release);
  }

  #secured(socket: TLSSocket): void {
    const id = connectionId(socket);
    this.#handshakeDone.get(id)?.();
    const caller = this.#verify(socket);
    if (!('notAfter' in caller)) {
      // A stranger (no host certificate, or not one of ours): a few connections per address.
      const key = sourceKey(socket.remoteAddress);
      const verdict = this.#unauthenticated.acquire(key);
      if (verdict !== 'ok')
        return this.#refuse(
          socket,
          verdict === 'per_source'
            ? `more than ${LIMITS.unauthenticatedPerSource} connections without a host certificate from ${key}`
            : `more than ${LIMITS.unauthenticatedTotal} connections without a host certificate in all`,
        );
      socket.once('close', () => this.#unauthenticated.release(key));
    }
    const state: State = {
      socket,
      caller,
      drop: (reason) => drop(state, reason),
      onDrop: (fn) => {
        (state.dropping ??= new Set()).add(fn);
        return () => state.dropping?.delete(fn);
      },
    };
    this.#byId.set(id, state);
    this.#bySocket.set(socket, state);
    socket.once('close', () => {
      clearTimeout(state.timer);
      if (this.#byId.get(id) === state) this.#byId.delete(id);
    });
    if (!('notAfter' in caller)) return;
    // An agent's or a person's connection closes when its certificate expires.
    const arm = () => {
      const left = caller.notAfter - Date.now();
      if (left <= 0)
        return state.drop(
          `the ${'person' in caller ? `certificate of ${caller.person}` : 'host certificate'} expired at ${new Date(caller.notAfter).toISOString()}`,
        );
      state.timer = setTimeout(arm, Math.min(left, 2 ** 31 - 1));
      state.timer.unref();
    };
    arm();
  }

  /** A stranger has a join or a login to make, not a connection to keep: it goes when idle a while. */
  #shortenIdle(socket: TLSSocket): void {
    const state = this.#bySocket.get(socket);
    if (!state || 'notAfter' in state.caller) return;
    if (state.session) state.session.setTimeout(this.#timeouts.unauthenticatedIdleMs);
    else socket.setTimeout(this.#timeouts.unauthenticatedIdleMs);
  }

  /** Closes a connection refused before TLS (a missing PROXY header: proxy-header.ts), logged as the others are. */
  refuse(socket: Socket, why: string): void {
    this.#refuse(socket, why);
  }

  #refuse(socket: Socket, why: string): void {
    socket.destroy();
    this.#refused++;
    const now = Date.now();
    if (now - this.#lastLogged < LOG_EVERY_MS) return;
    this.#lastLogged = now;
    this.#log(
      JSON.stringify({
        level: 'warn',
        msg: `refused ${this.#refused} connection(s) since the last such line (at most one in ${LOG_EVERY_MS / 1000} s), the last for ${why}`,
      }),
    );
    this.#refused = 0;
  }

  #session(session: ServerHttp2Session): void {
    const state = this.#byId.get(connectionId(session.socket));
    if (!state || state.socket.destroyed) return void session.destroy();
    state.session = session;
    this.#bySession.set(session, state);
    // Strangers get the few streams of the initial SETTINGS; an agent's watches and calls get more, a person's some.
    if ('notAfter' in state.caller) session.settings({ maxConcurrentStreams: 'person' in state.caller ? LIMITS.personStreams : LIMITS.agentStreams });
  }
}

function connectionId(socket: { remoteAddress?: string; remotePort?: number }): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;
}

function drop(state: State, reason: string | undefined): void {
  state.closedBecause ??= reason;
  clearTimeout(state.timer);
  const dropping = state.dropping;
  state.dropping = undefined;
  for (const fn of dropping ?? []) fn(state.closedBecause);
  if (state.session && !state.session.closed) state.session.close();
  else if (!state.session) state.socket.end();
  // A watch never ends on its own, so the graceful close gets a second.
  setTimeout(() => state.socket.destroy(), 1000).unref();
}
