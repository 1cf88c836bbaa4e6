import { randomUUID } from 'node:crypto';
import { on } from 'node:events';
import { EventEmitter } from 'node:events';
import {
  FencedOutError,
  LeaseExpiredError,
  type Backend,
  type Fence,
  type Item,
  type Lease,
  type Snapshot,
  type TxnOp,
  type WatchEvent,
  type WriteOptions,
} from './backend.ts';

/** An in-process backend for unit tests; same contract as the others, nothing persisted. */
export class MemoryBackend implements Backend {
  readonly kind = 'memory';
  readonly #items = new Map<string, Item>();
  readonly #leases = new Map<string, number>();
  readonly #events = new EventEmitter();
  readonly #now: () => number;
  #revision = 0;

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#events.setMaxListeners(0);
  }

  async get(key: string): Promise<Item | undefined> {
    return this.#live(key);
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#checkFence(opts?.fence);
    return this.#write(key, value, opts);
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    this.#checkFence(opts?.fence);
    return this.#live(key) ? undefined : this.#write(key, value, opts);
  }

  async compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined> {
    this.#checkFence(opts?.fence);
    return this.#live(key)?.revision === revision ? this.#write(key, value, opts) : undefined;
  }

  async delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean> {
    this.#checkFence(opts?.fence);
    const current = this.#live(key);
    if (!current || (revision !== undefined && current.revision !== revision)) return false;
    this.#remove(key);
    return true;
  }

  async list(prefix: string): Promise<Item[]> {
    return (await this.snapshot(prefix)).items;
  }

  async snapshot(prefix: string): Promise<Snapshot> {
    const items = [...this.#items.keys()]
      .filter((k) => k.startsWith(prefix))
      .sort()
      .flatMap((k) => this.#live(k) ?? []);
    // Read after the items: the expiries #live found are deletes at or below it.
    return { items, revision: this.#revision };
  }

  async *watch(prefix: string, signal: AbortSignal, opened?: () => void): AsyncIterable<WatchEvent> {
    try {
      const changes = on(this.#events, 'change', { signal }) as AsyncIterable<[WatchEvent]>;
      opened?.();
      for await (const [event] of changes) {
        const key = event.type === 'put' ? event.item.key : event.key;
        if (key.startsWith(prefix)) yield event;
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  }

  async transact(ops: TxnOp[]): Promise<boolean> {
    if (!ops.every((op) => (this.#live(op.key)?.revision ?? 0) === op.revision)) return false;
    for (const op of ops) {
      if (op.checkOnly) continue;
      if (op.value === undefined) {
        if (op.revision !== 0) this.#remove(op.key);
      } else this.#write(op.key, op.value, op.ttlMs === undefined ? undefined : { ttlMs: op.ttlMs });
    }
    return true;
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    const id = randomUUID();
    this.#leases.set(id, this.#now() + ttlMs);
    return this.leaseById(id, ttlMs);
  }

  leaseById(id: string, ttlMs: number): Lease {
    return {
      id,
      ttlMs,
      keepAlive: async () => {
        if (!this.#leaseAlive(id)) return false;
        this.#leases.set(id, this.#now() + ttlMs);
        return true;
      },
      revoke: async () => {
        for (const [key, item] of this.#items) if (item.lease === id) this.#remove(key);
        this.#leases.delete(id);
      },
    };
  }

  async close(): Promise<void> {}

  #checkFence(fence: Fence | undefined): void {
    if (fence && this.#live(fence.key)?.value !== fence.value) throw new FencedOutError(fence);
  }

  #leaseAlive(id: string): boolean {
    return (this.#leases.get(id) ?? 0) > this.#now();
  }

  #live(key: string): Item | undefined {
    const item = this.#items.get(key);
    if (!item) return undefined;
    if ((item.expires !== undefined && item.expires <= this.#now()) || (item.lease && !this.#leaseAlive(item.lease))) {
      this.#remove(key);
      return undefined;
    }
    return item;
  }

  #write(key: string, value: string, opts: WriteOptions | undefined): Item {
    if (opts?.lease && !this.#leaseAlive(opts.lease)) throw new LeaseExpiredError(opts.lease);
    const item: Item = {
      key,
      value,
      revision: ++this.#revision,
      ...(opts?.ttlMs !== undefined && { expires: this.#now() + opts.ttlMs }),
      ...(opts?.lease && { lease: opts.lease }),
    };
    this.#items.set(key, item);
    this.#events.emit('change', { type: 'put', item } satisfies WatchEvent);
    return item;
  }

  #remove(key: string): void {
    this.#items.delete(key);
    this.#events.emit('change', { type: 'delete', key, revision: ++this.#revision } satisfies WatchEvent);
  }
}
