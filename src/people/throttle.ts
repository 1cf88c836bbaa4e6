/** Failed logins for one user in WINDOW_MS before the next is refused unchecked (the 6th). */
export const MAX_FAILURES = 5;
/** ... and from one source address (or IPv6 /64): more, since an office behind one NAT shares it. */
export const MAX_SOURCE_FAILURES = 20;
export const WINDOW_MS = 60_000;
const MAX_KEYS = 100_000;

/**
 * Failed logins per user and per source address, in the server's memory (each server of a shared
 * store counts its own). Past MAX_FAILURES within a minute the next attempt is refused before its
 * password is checked, so guessing costs the guesser time and the server no scrypt.
 */
export class LoginThrottle {
  readonly #failures = new Map<string, number[]>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Why an attempt for `user` from `source` is refused unchecked, or undefined. */
  blocked(user: string, source: string): string | undefined {
    const now = this.#now();
    for (const [key, what, max] of [[`u:${user}`, `user ${user}`, MAX_FAILURES], [`s:${source}`, source, MAX_SOURCE_FAILURES]] as const) {
      const recent = this.#recent(key, now);
      if (recent.length >= max) {
        const wait = Math.ceil((recent[recent.length - max]! + WINDOW_MS - now) / 1000);
        return `${max} failed logins for ${what} within a minute: try again in ${wait} s (this attempt was not checked)`;
      }
    }
    return undefined;
  }

  failed(user: string, source: string): void {
    const now = this.#now();
    if (this.#failures.size > MAX_KEYS) this.#sweep(now);
    this.#failures.set(`u:${user}`, [...this.#recent(`u:${user}`, now), now].slice(-MAX_FAILURES));
    this.#failures.set(`s:${source}`, [...this.#recent(`s:${source}`, now), now].slice(-MAX_SOURCE_FAILURES));
  }

  #recent(key: string, now: number): number[] {
    return (this.#failures.get(key) ?? []).filter((t) => now - t < WINDOW_MS);
  }

  #sweep(now: number): void {
    for (const [key, times] of this.#failures) if (times.every((t) => now - t >= WINDOW_MS)) this.#failures.delete(key);
  }
}
