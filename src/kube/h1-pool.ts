import { createRequire } from 'node:module';
import type { Agent } from 'undici';

/**
 * HTTP/1.1 keep-alive connections to one API server, made on first use. Short requests take this
 * way: Node's HTTP/1.1 client (undici) does less work per request than an HTTP/2 stream. So does
 * everything for an API server without HTTP/2.
 */
export class Http1Pool {
  /** Requests under way; past a limit, short requests share HTTP/2 rather than open more connections. */
  inFlight = 0;
  readonly #tls: object;
  #agent: Agent | undefined;

  constructor(tls: object) {
    this.#tls = tls;
  }

  dispatcher(): Agent {
    if (!this.#agent) {
      // Loaded on first use: a proxy serving only watches never pays for it.
      const { Agent } = createRequire(import.meta.url)('undici') as typeof import('undici');
      // No body or headers timeout: logs and slow lists take as long as they take.
      // HTTP/1.1 only: undici's HTTP/2 folds repeated Impersonate-Group headers into one, which the API server reads as one group.
      this.#agent = new Agent({ connect: this.#tls, allowH2: false, bodyTimeout: 0, headersTimeout: 0, keepAliveTimeout: 30_000 });
    }
    return this.#agent;
  }
}
