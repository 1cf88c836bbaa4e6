import { createRequire } from 'node:module';
import type { Agent } from 'undici';

/** Connections to one API server past which short requests share HTTP/2 instead. */
const MAX_CONNECTIONS = 32;

/**
 * HTTP/1.1 keep-alive connections to one API server, made on first use. Short requests take this
 * way: Node's HTTP/1.1 client (undici) does less work per request than an HTTP/2 stream. So does
 * everything for an API server without HTTP/2.
 */
export class Http1Pool {
  readonly #tls: object;
  #agent: Agent | undefined;
  #inFlight = 0;
  #connected = 0;
  /**
   * Short requests too go over HTTP/2 while the API server speaks it: for a Kubernetes agent, whose
   * requests all arrive on one HTTP/2 tunnel, one session's batched frames cost less CPU than a TLS
   * write of a request head per request (bench/README.md, through the server).
   */
  preferHttp2 = false;

  constructor(tls: object) {
    this.#tls = tls;
  }

  /**
   * Whether a short request should go this way: a connection is free, or the pool may grow by one.
   * One handshake at a time: a burst (kubectl's discovery) shares the HTTP/2 connection rather
   * than paying a TCP and TLS handshake per request to a cluster that may be far away.
   */
  hasRoom(): boolean {
    if (this.preferHttp2) return false;
    return this.#inFlight < this.#connected || (this.#inFlight === this.#connected && this.#connected < MAX_CONNECTIONS);
  }

  /** The dispatcher for one request; call `done` exactly once when it has ended, however it ended. */
  begin(): { dispatcher: Agent; done: () => void } {
    this.#inFlight++;
    return { dispatcher: this.#dispatcher(), done: () => this.#inFlight-- };
  }

  #dispatcher(): Agent {
    if (!this.#agent) {
      // Loaded on first use: a proxy serving only watches never pays for it.
      const { Agent } = createRequire(import.meta.url)('undici') as typeof import('undici');
      // No body or headers timeout: logs and slow lists take as long as they take.
      // HTTP/1.1 only: undici's HTTP/2 folds repeated Impersonate-Group headers into one, which the API server reads as one group.
      this.#agent = new Agent({ connect: this.#tls, allowH2: false, bodyTimeout: 0, headersTimeout: 0, keepAliveTimeout: 30_000 })
        .on('connect', () => this.#connected++)
        .on('disconnect', () => this.#connected--);
    }
    return this.#agent;
  }
}
