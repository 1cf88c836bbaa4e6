import type { Backend, Item, Lease, Snapshot, TxnOp, WatchEvent, WriteOptions } from '../../backend/backend.ts';

/**
 * The store as the server calls it, each call timed into the store latency histogram
 * (`kport_store_call_seconds`): one wrapper where the server opens its store, so no call site
 * measures on its own and none is missed. A watch is a stream, not a call: it passes through.
 */
export class MeteredBackend implements Backend {
  readonly #inner: Backend;
  readonly #observe: (op: string, seconds: number, ok: boolean) => void;

  constructor(inner: Backend, observe: (op: string, seconds: number, ok: boolean) => void) {
    this.#inner = inner;
    this.#observe = observe;
  }

  get kind(): string {
    return this.#inner.kind;
  }

  get(key: string): Promise<Item | undefined> {
    return this.#timed('get', () => this.#inner.get(key));
  }

  put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.#timed('put', () => this.#inner.put(key, value, opts));
  }

  create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#timed('create', () => this.#inner.create(key, value, opts));
  }

  compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#timed('compare_and_swap', () => this.#inner.compareAndSwap(key, value, revision, opts));
  }

  delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean> {
    return this.#timed('delete', () => this.#inner.delete(key, revision, opts));
  }

  list(prefix: string): Promise<Item[]> {
    return this.#timed('list', () => this.#inner.list(prefix));
  }

  snapshot(prefix: string): Promise<Snapshot> {
    return this.#timed('snapshot', () => this.#inner.snapshot(prefix));
  }

  watch(prefix: string, signal: AbortSignal, opened?: () => void): AsyncIterable<WatchEvent> {
    return this.#inner.watch(prefix, signal, opened);
  }

  foreignVersion(): number | undefined {
    return this.#inner.foreignVersion?.();
  }

  transact(ops: TxnOp[]): Promise<boolean> {
    return this.#timed('transact', () => this.#inner.transact(ops));
  }

  grantLease(ttlMs: number): Promise<Lease> {
    return this.#timed('grant_lease', () => this.#inner.grantLease(ttlMs));
  }

  /** Not timed: naming a lease calls nothing; its keep-alives and revokes go to the store unmetered. */
  leaseById(id: string, ttlMs: number): Lease {
    return this.#inner.leaseById(id, ttlMs);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  async #timed<T>(op: string, call: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    let ok = false;
    try {
      const result = await call();
      ok = true;
      return result;
    } finally {
      this.#observe(op, Number(process.hrtime.bigint() - started) / 1e9, ok);
    }
  }
}
