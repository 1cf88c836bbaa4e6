import { ApiError } from '../api/errors.ts';
import { OutageLog, retrying, ServerUnreachable, type ServerAddress } from './server-client.ts';

/** How long a person's command retries a server it cannot reach (a restart, a dropped connection) before it says so: a person is waiting. */
export const PERSON_RETRY_MS = 2_000;

/**
 * One command's retries of a server it cannot reach (README "Where commands run"), shared by all its
 * calls: quiet while it lasts (a person waits two seconds rather than reads a log), then the last
 * failure, which says how long it was tried. Ctrl-C (`stop`) ends it at once.
 */
export class RetryBudget {
  readonly signal: AbortSignal;
  readonly outage: OutageLog;
  readonly #stop: AbortSignal;
  readonly #forMs: number;

  constructor(stop: AbortSignal, forMs = PERSON_RETRY_MS) {
    this.#stop = stop;
    this.#forMs = forMs;
    const gaveUp = new AbortController();
    this.outage = new OutageLog(() => {}, {
      afterMs: forMs,
      onGiveUp: (err) => {
        // The very failure retrying() throws next: it says how long it was tried, and what to do.
        if (err instanceof ServerUnreachable)
          err.message = `${err.message.replace(/\.$/, '')}; tried for ${Math.round(forMs / 1000)} s: check that the server runs, then run this again.`;
        gaveUp.abort();
      },
    });
    this.signal = AbortSignal.any([stop, gaveUp.signal]);
  }

  /** `fn` retried while the budget lasts; `retryable` narrows which failures (a call that changes something: only one that never reached the server). */
  async run<T>(fn: () => Promise<T>, address: ServerAddress, retryable?: (err: unknown) => boolean): Promise<T> {
    // A busy server (429, 503) answers, so the outage log never ends the budget for it: the same 2 s do.
    const started = Date.now();
    const within = (err: unknown) => (!(err instanceof ApiError) || Date.now() - started < this.#forMs) && (retryable?.(err) ?? true);
    try {
      return await retrying(fn, this.signal, this.outage, address, within);
    } catch (err) {
      // Ctrl-C while waiting for the server: interrupted (130), not a failure to reach it.
      if (this.#stop.aborted && err instanceof ServerUnreachable) throw new DOMException('interrupted', 'AbortError');
      throw err;
    }
  }
}
