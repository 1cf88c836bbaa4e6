import type { Backend, Item, Lease, Snapshot, TxnOp, WatchEvent, WriteOptions } from '../../backend/backend.ts';
import type { WatchHub } from './watch-hub.ts';

/**
 * The store as the server's parts write to it: each write, once it returns (or fails, since a
 * failed write may still have landed), is told to the watch hub, so a cache that must read this
 * server's own writes (a lock an editor just made through the server) reads the store again before
 * it next answers instead of waiting for the watch to report it. Reads and watches pass through.
 */
export class ObservedBackend implements Backend {
  readonly #inner: Backend;
  readonly #hub: WatchHub;

  constructor(inner: Backend, hub: WatchHub) {
    this.#inner = inner;
    this.#hub = hub;
  }

  get kind(): string {
    return this.#inner.kind;
  }

  get(key: string): Promise<Item | undefined> {
    return this.#inner.get(key);
  }

  put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.#told([key], this.#inner.put(key, value, opts));
  }

  create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#told([key], this.#inner.create(key, value, opts));
  }

  compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#told([key], this.#inner.compareAndSwap(key, value, revision, opts));
  }

  delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean> {
    return this.#told([key], this.#inner.delete(key, revision, opts));
  }

  list(prefix: string): Promise<Item[]> {
    return this.#inner.list(prefix);
  }

  snapshot(prefix: string): Promise<Snapshot> {
    return this.#inner.snapshot(prefix);
  }

  watch(prefix: string, signal: AbortSignal, opened?: () => void): AsyncIterable<WatchEvent> {
    return this.#inner.watch(prefix, signal, opened);
  }

  foreignVersion(): number | undefined {
    return this.#inner.foreignVersion?.();
  }

  transact(ops: TxnOp[]): Promise<boolean> {
    return this.#told(
      ops.filter((op) => !op.checkOnly).map((op) => op.key),
      this.#inner.transact(ops),
    );
  }

  /** A revoked lease's items are reported by the watch alone: no cache that reads its own writes holds leased items. */
  grantLease(ttlMs: number): Promise<Lease> {
    return this.#inner.grantLease(ttlMs);
  }

  leaseById(id: string, ttlMs: number): Lease {
    return this.#inner.leaseById(id, ttlMs);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  /**
   * A put's item is passed on (a cache takes it as it would the watch's event, without a list); a
   * delete or a transaction that happened, or a write that failed (it may have landed), is passed
   * on without one. A create or compare-and-swap that lost wrote nothing.
   */
  async #told<T extends Item | boolean | undefined>(keys: string[], write: Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await write;
    } catch (err) {
      for (const key of keys) this.#hub.wrote(key);
      throw err;
    }
    if (typeof result === 'object') this.#hub.wrote(result.key, result);
    else if (result === true) for (const key of keys) this.#hub.wrote(key);
    return result;
  }
}
