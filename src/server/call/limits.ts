import { isIPv6 } from 'node:net';

/**
 * What the server lets a peer make it hold before that peer has shown a host certificate (issue 18).
 * A joined agent presents its certificate in the TLS handshake, so none of the per-source limits
 * below touch it; they bound what a stranger (or a botnet of them) can pin in memory.
 */
export const LIMITS = {
  /** A join is a token, a hostname and a P-256 CSR: well under 2 KiB. */
  joinBodyBytes: 16 * 1024,
  /** An agent's call (a kube_cluster record is the largest): as before. */
  agentBodyBytes: 1 << 20,
  /** Join bodies being read at once, across all peers: 512 full ones (one address can hold at most half: 32 x 8 x 16 KiB). */
  unauthenticatedBodyBudget: 8 << 20,
  /** Agents' bodies being read at once: 64 full ones; an agent's heartbeat is about 1 KiB. */
  agentBodyBudget: 64 << 20,
  /** Streams on a connection without a host certificate (a join is one; `kport login` a few). */
  unauthenticatedStreams: 8,
  /** Streams on an agent's connection (its watches and calls share one connection). */
  agentStreams: 256,
  /**
   * Streams on a person's connection: kubectl, k9s and a `kube login` proxy keep a watch per
   * resource they show on one connection per cluster, beside discovery's bursts; a quarter of what
   * one agent's tunnel carries (1,000), so one connection cannot fill a tunnel alone.
   */
  personStreams: 256,
  /** A login body: a password (at most 1 KiB), a TOTP code, an invite and a CSR (at most 2 KiB). */
  loginBodyBytes: 8 * 1024,
  /** People's bodies being read at once (a static kube_cluster with its kubeconfig is the largest). */
  personBodyBudget: 16 << 20,
  /** Connections without a host certificate from one address or IPv6 /64 (a NAT of agents joining at once stays under it). */
  unauthenticatedPerSource: 32,
  /** ... and from everywhere (each costs ~250 KiB of TLS and HTTP/2 state). */
  unauthenticatedTotal: 512,
  /** TLS handshakes in progress from one address: the certificate is not known before the end of one. */
  handshakesPerSource: 64,
  handshakesTotal: 1024,
  /**
   * Connections still sending their PROXY protocol header (proxy_service.proxy_protocol: on), from
   * everywhere: they all come from the load balancer, so no per-source cap applies before the header
   * names the client (after it, the ones above count by that client's address).
   */
  proxyHeadersPending: 1024,
  /** A TLS handshake that has not finished in this long is dropped. */
  handshakeMs: 10_000,
  /** ... and a connection that has sent nothing at all (not even a ClientHello) in this long: an agent's comes at once. */
  silentMs: 5_000,
  /** A join body must have come whole within this long (a join is one small write), else 408. */
  joinBodyMs: 10_000,
  /** A connection without a host certificate that has done nothing for this long is closed (agents' connections: 120 s). */
  unauthenticatedIdleMs: 20_000,
} as const;

/**
 * The waits a server keeps, which a test shortens (config/test-timeouts.ts) so that it does not sleep
 * past the real ones: LIMITS' four, and how long a silent reverse tunnel lasts (tunnel-accept.ts).
 */
export interface ServerTimeouts {
  handshakeMs: number;
  silentMs: number;
  joinBodyMs: number;
  unauthenticatedIdleMs: number;
  tunnelIdleMs: number;
}

/**
 * Joins per source address: a token bucket; Teleport-style `period`/`average`/`burst`. Every limit
 * in this file is counted in this server's memory: it bounds what one server holds or spends, and
 * N servers of one store allow N times as much (README, "Several servers").
 */
export interface RateLimit {
  periodMs: number;
  average: number;
  burst: number;
}

export const DEFAULT_JOIN_RATE: RateLimit = { periodMs: 60_000, average: 60, burst: 30 };
/** Unauthenticated login calls per source address (invite, local, OIDC): a person logs in with two or three. */
export const DEFAULT_LOGIN_RATE: RateLimit = { periodMs: 60_000, average: 60, burst: 30 };

/** The key a per-source limit counts under: the address, or its /64 for IPv6 (one host holds a whole /64). */
export function sourceKey(address: string | undefined): string {
  const a = (address ?? '?').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (!isIPv6(a)) return a;
  const [head = '', tail = ''] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, '').toLowerCase())
    .join(':')}::/64`;
}

/** One token bucket per source; idle sources are forgotten so the map stays as small as the sources that call. */
export class RateLimiter {
  readonly #limit: RateLimit;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;

  constructor(limit: RateLimit, now: () => number = Date.now) {
    this.#limit = limit;
    this.#now = now;
  }

  /** Takes one token for `key`; returns how many ms until one is available when there is none. */
  take(key: string): { ok: true } | { ok: false; retryAfterMs: number } {
    const now = this.#now();
    const perMs = this.#limit.average / this.#limit.periodMs;
    if (this.#buckets.size > 10_000) this.#forgetFull(now, perMs);
    const bucket = this.#buckets.get(key) ?? { tokens: this.#limit.burst, at: now };
    bucket.tokens = Math.min(this.#limit.burst, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / perMs) };
  }

  #forgetFull(now: number, perMs: number): void {
    for (const [key, b] of this.#buckets) if (b.tokens + (now - b.at) * perMs >= this.#limit.burst) this.#buckets.delete(key);
  }
}

/** Bytes of request bodies held at once; a body that would pass the budget is refused, not waited for. */
export class BodyBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  reserve(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/** Open things per key, with a cap per key and in total. */
export class Counter {
  readonly #perKey: number;
  readonly #total: number;
  readonly #counts = new Map<string, number>();
  #sum = 0;

  constructor(perKey: number, total: number) {
    this.#perKey = perKey;
    this.#total = total;
  }

  /** Counts one more for `key`, or says which cap it would pass. */
  acquire(key: string): 'ok' | 'per_source' | 'total' {
    const n = this.#counts.get(key) ?? 0;
    if (n >= this.#perKey) return 'per_source';
    if (this.#sum >= this.#total) return 'total';
    this.#counts.set(key, n + 1);
    this.#sum++;
    return 'ok';
  }

  release(key: string): void {
    const n = this.#counts.get(key) ?? 0;
    if (n <= 0) return;
    if (n === 1) this.#counts.delete(key);
    else this.#counts.set(key, n - 1);
    this.#sum--;
  }
}
