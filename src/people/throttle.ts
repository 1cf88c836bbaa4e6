import { foldName } from './names.ts';

/** Failed logins for one user from one address before that pair waits (a person mistyping at their desk gets these). */
export const FREE_PAIR_FAILURES = 5;
/** Failed logins for one user from every address before addresses it has not logged in from lately wait too (a guesser with many addresses). */
export const FREE_USER_FAILURES = 20;
/** The first wait; each failure past the free ones doubles it, up to MAX_BACKOFF_MS. */
export const BASE_BACKOFF_MS = 60_000;
export const MAX_BACKOFF_MS = 3_600_000;
/** A count of failures is forgotten after this long without one. */
export const FORGET_MS = 24 * 3_600_000;
/** An address a user logged in from within this long is theirs: others' failures do not hold them back there. */
export const KNOWN_ADDRESS_MS = 30 * 24 * 3_600_000;
const KNOWN_ADDRESSES_PER_USER = 8;
/** Failed logins from one address (an IPv6 /64) for any users within WINDOW_MS (spraying): more, since an office behind one NAT shares it. */
export const MAX_SOURCE_FAILURES = 20;
export const WINDOW_MS = 60_000;
/** Entries of each table; past it the oldest (least lately failed) that hold no one back go first. */
export const MAX_ENTRIES = 100_000;

/** A wait beginning, for the audit trail: `scope` pair is one user from one address, user is one user from every address. */
export interface ThrottleAlert {
  scope: 'pair' | 'user';
  user: string;
  source: string;
  failures: number;
  waitMs: number;
  /** For scope user: how many addresses the failures came from (as counted, at most MAX_SOURCES_SEEN). */
  sources?: number;
}

interface Counter {
  failures: number;
  last: number;
  /** Attempts are refused unchecked until then. */
  until: number;
  sources?: Set<string>;
}

const MAX_SOURCES_SEEN = 64;

/**
 * Failed logins, in the server's memory (each server of a shared store counts its own), decided
 * first per user and address: past FREE_PAIR_FAILURES that pair waits, a minute and then twice as
 * long at each failure, up to an hour, so guessing a TOTP code with the password known gets about
 * 35 tries a day from one address (50 from many) instead of 7,200 (5 a minute): with three codes
 * valid at once, about 1 in 7,000 a day instead of 2%. An attempt refused that way costs no scrypt.
 * Failures for a user from every address count too: past FREE_USER_FAILURES they back off the same
 * way for every address the user has not logged in from in 30 days, so many addresses do not buy
 * many guesses; but an address the user has logged in from is held back only by its own failures,
 * so strangers failing elsewhere cannot keep the person out. A wait beginning is an alert for the
 * audit. Tables are bounded (MAX_ENTRIES each).
 */
export class LoginThrottle {
  readonly #pairs = new Map<string, Counter>();
  readonly #users = new Map<string, Counter>();
  readonly #sources = new Map<string, number[]>();
  /** Per user, the addresses they logged in from and when. */
  readonly #known = new Map<string, Map<string, number>>();
  readonly #now: () => number;
  readonly #alert: (alert: ThrottleAlert) => void;

  constructor(opts: { now?: () => number; alert?: (alert: ThrottleAlert) => void } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#alert = opts.alert ?? (() => {});
  }

  /** Entries held over all tables (bounded: MAX_ENTRIES each). */
  get size(): number {
    return this.#pairs.size + this.#users.size + this.#sources.size + this.#known.size;
  }

  /** Why an attempt for `user` from `source` is refused unchecked, or undefined. */
  blocked(user: string, source: string): string | undefined {
    const now = this.#now();
    const key = foldName(user);
    const pair = this.#live(this.#pairs, pairKey(key, source), now);
    if (pair && pair.until > now)
      return `${pair.failures} failed logins for user ${key} from ${source}: try again from there in ${wait(pair.until - now)} (this attempt was not checked)`;
    const recent = (this.#sources.get(source) ?? []).filter((t) => now - t < WINDOW_MS);
    if (recent.length >= MAX_SOURCE_FAILURES) {
      return `${MAX_SOURCE_FAILURES} failed logins from ${source} within a minute: try again in ${wait(recent[recent.length - MAX_SOURCE_FAILURES]! + WINDOW_MS - now)} (this attempt was not checked)`;
    }
    const all = this.#live(this.#users, key, now);
    if (all && all.until > now && !this.#isKnown(key, source, now)) {
      return `${all.failures} failed logins for user ${key} from several addresses: from an address it has not logged in from lately, try again in ${wait(all.until - now)}, or log in from one it has (this attempt was not checked)`;
    }
    return undefined;
  }

  failed(user: string, source: string): void {
    const now = this.#now();
    const key = foldName(user);
    const pair = this.#count(this.#pairs, pairKey(key, source), now, FREE_PAIR_FAILURES);
    if (alerting(pair, FREE_PAIR_FAILURES)) this.#alert({ scope: 'pair', user: key, source, failures: pair.failures, waitMs: pair.until - now });
    const all = this.#count(this.#users, key, now, FREE_USER_FAILURES);
    all.sources ??= new Set();
    if (all.sources.size < MAX_SOURCES_SEEN) all.sources.add(source);
    if (alerting(all, FREE_USER_FAILURES))
      this.#alert({ scope: 'user', user: key, source, failures: all.failures, waitMs: all.until - now, sources: all.sources.size });
    const times = [...(this.#sources.get(source) ?? []).filter((t) => now - t < WINDOW_MS), now].slice(-MAX_SOURCE_FAILURES);
    this.#sources.delete(source);
    this.#sources.set(source, times);
    if (this.#sources.size > MAX_ENTRIES) this.#sources.delete(this.#sources.keys().next().value!);
  }

  /** A login that passed: its pair starts over, and the address is the user's (others' failures do not hold them back there). */
  succeeded(user: string, source: string): void {
    const now = this.#now();
    const key = foldName(user);
    this.#pairs.delete(pairKey(key, source));
    const known = this.#known.get(key) ?? new Map<string, number>();
    known.delete(source);
    known.set(source, now);
    if (known.size > KNOWN_ADDRESSES_PER_USER) known.delete(known.keys().next().value!);
    this.#known.delete(key);
    this.#known.set(key, known);
    if (this.#known.size > MAX_ENTRIES) this.#known.delete(this.#known.keys().next().value!);
  }

  #isKnown(user: string, source: string, now: number): boolean {
    const at = this.#known.get(user)?.get(source);
    return at !== undefined && now - at < KNOWN_ADDRESS_MS;
  }

  /** The counter at `key` unless it was forgotten (no failure for FORGET_MS). */
  #live(table: Map<string, Counter>, key: string, now: number): Counter | undefined {
    const counter = table.get(key);
    if (counter && now - counter.last >= FORGET_MS && counter.until <= now) {
      table.delete(key);
      return undefined;
    }
    return counter;
  }

  /** One more failure at `key`: past `free`, a wait of BASE_BACKOFF_MS doubled per failure beyond, up to MAX_BACKOFF_MS. Kept newest last. */
  #count(table: Map<string, Counter>, key: string, now: number, free: number): Counter {
    const counter = this.#live(table, key, now) ?? { failures: 0, last: now, until: 0 };
    counter.failures++;
    counter.last = now;
    if (counter.failures >= free) counter.until = now + Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(30, counter.failures - free));
    table.delete(key);
    table.set(key, counter);
    if (table.size > MAX_ENTRIES) evict(table, now);
    return counter;
  }
}

/** The failures after which the wait first reaches MAX_BACKOFF_MS, counted past the free ones. */
const CAPPED_AFTER = Math.ceil(Math.log2(MAX_BACKOFF_MS / BASE_BACKOFF_MS));

/** Alerts when a wait begins and when it reaches its longest: a few events per guesser, not one per guess. */
function alerting(counter: Counter, free: number): boolean {
  return counter.failures === free || counter.failures === free + CAPPED_AFTER;
}

function pairKey(user: string, source: string): string {
  return `${source} ${user}`;
}

/**
 * Makes room: the least lately failed counters that hold no one back go first, down to 90% of
 * MAX_ENTRIES, so a flood of new names or addresses cannot push out the waits it is under; only if
 * every counter is a wait do the oldest waits go.
 */
function evict(table: Map<string, Counter>, now: number): void {
  const target = Math.floor(MAX_ENTRIES * 0.9);
  for (const [key, counter] of table) {
    if (table.size <= target) return;
    if (counter.until <= now) table.delete(key);
  }
  for (const key of table.keys()) {
    if (table.size <= target) return;
    table.delete(key);
  }
}

function wait(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.ceil(s / 60)} min`;
}
