import { connect, constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';

/**
 * HTTP/2 sessions to one API server, shared by every request: hundreds of watches ride a few
 * connections instead of one TLS socket each. A session that fills its stream limit, goes away or
 * fails is replaced.
 */
export class Http2Pool {
  readonly #origin: string;
  readonly #tls: SecureClientSessionOptions;
  readonly #sessions = new Set<ClientHttp2Session>();
  readonly #active = new Map<ClientHttp2Session, number>();
  /** False once the server turned HTTP/2 down (no h2 in ALPN): callers use HTTP/1.1 instead. */
  supported = true;

  constructor(origin: string, tls: SecureClientSessionOptions) {
    this.#origin = origin;
    this.#tls = tls;
  }

  /** A session with room for one more stream; call `release` when the stream closes. */
  acquire(): { session: ClientHttp2Session; release: () => void } {
    let session: ClientHttp2Session | undefined;
    for (const s of this.#sessions) {
      const limit = s.remoteSettings?.maxConcurrentStreams ?? 100;
      if (!s.closed && !s.destroyed && (this.#active.get(s) ?? 0) < limit) {
        session = s;
        break;
      }
    }
    session ??= this.#open();
    this.#active.set(session, (this.#active.get(session) ?? 0) + 1);
    const chosen = session;
    let released = false;
    return {
      session: chosen,
      release: () => {
        if (released) return;
        released = true;
        this.#active.set(chosen, (this.#active.get(chosen) ?? 1) - 1);
      },
    };
  }

  /** A server that speaks only HTTP/1.1 refuses ALPN h2 ("no application protocol"): stop trying. */
  noteError(err: NodeJS.ErrnoException): void {
    if (/no[_ ]application[_ ]protocol|ALPN/i.test(`${err.code} ${err.message}`)) this.supported = false;
  }

  close(): void {
    for (const s of this.#sessions) s.close();
  }

  #open(): ClientHttp2Session {
    const session = connect(this.#origin, { ...this.#tls, ALPNProtocols: ['h2'], settings: { enablePush: false } });
    const drop = () => {
      this.#sessions.delete(session);
      this.#active.delete(session);
    };
    session.on('goaway', drop).on('close', drop).on('error', drop);
    session.once('connect', () => {
      if (session.alpnProtocol !== 'h2') this.supported = false;
    });
    session.once('error', (err) => this.noteError(err));
    // Idle sessions must not keep the process alive after the proxy stops.
    session.unref();
    this.#sessions.add(session);
    return session;
  }
}

export const { NGHTTP2_CANCEL } = constants;
