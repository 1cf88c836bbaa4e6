import { setTimeout as sleep } from 'node:timers/promises';
import { AccessDeniedError, type Backend, type Fence, type Lease } from '../backend/backend.ts';
import { leaderKey } from '../resources/discovery-service.ts';

export const DEFAULT_LEADER_TTL_MS = 15_000;

/** The key whose holder leads a discovery group: its layout lives with the heartbeats that read it. */
export { leaderKey };

/**
 * One leader per discovery group, elected through a lease-bound key (docs/architecture.md §5): whoever
 * creates `/leaders/discovery/<group>` leads until its lease lapses. The key's value is the
 * fence every leader write carries, so a paused or partitioned ex-leader cannot write after
 * a successor took over.
 */
export class GroupLeadership {
  readonly #backend: Backend;
  readonly #key: string;
  readonly #hostId: string;
  readonly #ttlMs: number;
  #lease?: Lease;
  #fence?: Fence;
  #keepAlive?: Promise<void>;
  #lost = new AbortController();

  constructor(backend: Backend, opts: { group: string; hostId: string; ttlMs?: number }) {
    this.#backend = backend;
    this.#key = leaderKey(opts.group);
    this.#hostId = opts.hostId;
    this.#ttlMs = opts.ttlMs ?? DEFAULT_LEADER_TTL_MS;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  get fence(): Fence | undefined {
    return this.#fence;
  }

  /** Aborted when the leadership is lost (the lease could not be kept alive). */
  get lostSignal(): AbortSignal {
    return this.#lost.signal;
  }

  /** The current leader's host id, for status output. */
  async leader(): Promise<string | undefined> {
    return (await this.#backend.get(this.#key))?.value.split('/')[0];
  }

  /** Waits until this agent leads, checking a few times per TTL; false when `signal` aborts first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    const interval = Math.max(200, Math.min(1000, this.#ttlMs / 5));
    while (!signal.aborted) {
      this.#lease ??= await this.#backend.grantLease(this.#ttlMs);
      const value = `${this.#hostId}/${this.#lease.id}`;
      try {
        if (await this.#backend.create(this.#key, value, { lease: this.#lease.id })) {
          this.#fence = { key: this.#key, value };
          this.#lost = new AbortController();
          this.#keepAlive = this.#keepLeading(this.#lease);
          return true;
        }
        const holder = await this.#backend.get(this.#key);
        if (holder?.value.startsWith(`${this.#hostId}/`) && holder.value !== value) {
          // Our own claim from before a restart (the data-dir lock means no other live process
          // is this host): give it up now instead of waiting out its lease.
          await this.#backend.delete(this.#key, holder.revision);
          continue;
        }
        // Someone else leads; keep our own lease alive so it is ready when we are needed.
        if (!(await this.#lease.keepAlive())) this.#lease = undefined;
      } catch (err) {
        // A backend hiccup (an etcd member going away) is retried; so is an expired lease. A refusal is not.
        if (err instanceof AccessDeniedError) throw err;
        this.#lease = undefined;
      }
      await sleep(interval, undefined, { signal }).catch(() => undefined);
    }
    return false;
  }

  /** Gives the leadership up at once (revoking the lease deletes the key), so a standby takes over now. */
  async release(): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    this.#fence = undefined;
    this.#lost.abort();
    await this.#keepAlive;
    await lease?.revoke().catch(() => undefined);
  }

  async #keepLeading(lease: Lease): Promise<void> {
    let lastOk = Date.now();
    while (this.#lease === lease && !this.#lost.signal.aborted) {
      await sleep(this.#ttlMs / 3, undefined, { signal: this.#lost.signal }).catch(() => undefined);
      if (this.#lease !== lease || this.#lost.signal.aborted) return;
      const alive = await lease.keepAlive().catch(() => undefined);
      if (alive === true) lastOk = Date.now();
      // Lapsed, or unreachable for longer than the TTL: a successor may already lead.
      if (alive === false || Date.now() - lastOk >= this.#ttlMs) {
        this.#fence = undefined;
        this.#lease = undefined;
        this.#lost.abort();
        return;
      }
    }
  }
}
