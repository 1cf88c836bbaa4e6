/** How long the store has to answer a readiness read before the server says it is not ready. */
export const STORE_PROBE_MS = 2000;
/** A probe's answer serves every /readyz in this window: a load balancer's checks never multiply into store reads. */
const PROBE_REUSE_MS = 1000;
/** A key no record has: reading it costs the store one lookup. */
const PROBE_KEY = '/health/readyz';

export interface ReadinessDeps {
  /** The store as the server opened it (a read of one absent key). */
  read(key: string): Promise<unknown>;
  /** Whether every watch-fed cache has its first list (the server answers from them). */
  loaded(): boolean;
  /** Whether the server was asked to stop (SIGTERM) and is draining. */
  draining(): boolean;
  probeMs?: number;
}

export type Verdict = { ready: true } | { ready: false; why: string };

/**
 * Whether this server should be sent new work (README "Diagnostics"): a load balancer health-checks
 * `/readyz`, so a server that is draining, whose caches are not loaded yet, or whose store does not
 * answer within STORE_PROBE_MS is taken out of rotation. One probe at a time, its answer reused
 * briefly, so a flood of /readyz costs the store at most one read a second.
 */
export class Readiness {
  readonly #deps: ReadinessDeps;
  #probe?: { at: number; answer: Promise<string | undefined> };

  constructor(deps: ReadinessDeps) {
    this.#deps = deps;
  }

  async check(): Promise<Verdict> {
    if (this.#deps.draining()) return { ready: false, why: 'draining' };
    const store = await this.#store();
    if (store) return { ready: false, why: store };
    // Draining may have begun while the store answered.
    if (this.#deps.draining()) return { ready: false, why: 'draining' };
    if (!this.#deps.loaded()) return { ready: false, why: 'the caches are still loading from the store' };
    return { ready: true };
  }

  /** Undefined when the store answered in time, else why not. */
  #store(): Promise<string | undefined> {
    const now = Date.now();
    if (this.#probe && now - this.#probe.at < PROBE_REUSE_MS) return this.#probe.answer;
    const ms = this.#deps.probeMs ?? STORE_PROBE_MS;
    const answer = new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(`the store did not answer within ${ms / 1000} s`), ms);
      const done = (why: string | undefined) => {
        clearTimeout(timer);
        resolve(why);
      };
      this.#deps.read(PROBE_KEY).then(
        () => done(undefined),
        (err: Error) => done(`the store failed a read: ${err.message.split('\n')[0]?.slice(0, 200) ?? ''}`),
      );
    });
    // A probe still running is shared however long it takes; a finished one for PROBE_REUSE_MS.
    const probe = { at: Number.POSITIVE_INFINITY, answer };
    this.#probe = probe;
    void answer.then(() => (probe.at = Date.now()));
    return answer;
  }
}
