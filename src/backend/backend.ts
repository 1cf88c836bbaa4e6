import { UserError } from '../core/errors.ts';

/**
 * The storage contract every backend honours (docs/architecture.md §3). Revisions are global and strictly
 * increasing, as in etcd: an item's revision is the revision of the write that last changed it.
 */
export interface Item {
  key: string;
  value: string;
  revision: number;
  /** Epoch milliseconds after which the item reads as absent. */
  expires?: number;
  lease?: string;
}

export interface WriteOptions {
  /** Time to live; the item disappears after it. */
  ttlMs?: number;
  /** Attach to a lease: the item disappears when the lease ends. */
  lease?: string;
  /** Write only while this key still holds this value (a leader's claim); FencedOutError otherwise. */
  fence?: Fence;
}

export interface Fence {
  key: string;
  value: string;
}

/** One step of a transaction: applies only if `key` is still at `revision` (0: absent). */
export interface TxnOp {
  key: string;
  revision: number;
  /** The new value; undefined deletes the key (unless `checkOnly`). */
  value?: string;
  ttlMs?: number;
  /** Only the condition: the key must still be at `revision`; nothing is written to it. */
  checkOnly?: boolean;
}

export type WatchEvent = { type: 'put'; item: Item } | { type: 'delete'; key: string; revision: number };

/**
 * The items under a prefix as of one store revision: every write up to `revision` is in them, none
 * after it, so a watch event with a greater revision is newer than the list and one at most it is not.
 */
export interface Snapshot {
  items: Item[];
  revision: number;
}

export interface Lease {
  id: string;
  ttlMs: number;
  /** Extends the lease by its TTL; false when it has already expired. */
  keepAlive(): Promise<boolean>;
  revoke(): Promise<void>;
}

export interface Backend {
  readonly kind: string;
  get(key: string): Promise<Item | undefined>;
  put(key: string, value: string, opts?: WriteOptions): Promise<Item>;
  /** Writes only when the key is absent; undefined when it exists. */
  create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined>;
  /** Writes only when the key's revision is still `revision`; undefined otherwise. */
  compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined>;
  /** Deletes; with `revision`, only when it still matches. True when something was deleted. */
  delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean>;
  /** Items under the prefix, sorted by key. */
  list(prefix: string): Promise<Item[]>;
  /** The same items, with the store revision they are the state of (what a cache relists from). */
  snapshot(prefix: string): Promise<Snapshot>;
  /**
   * Changes under the prefix after now, until the signal aborts. `opened` is called once the watch
   * is in place (every write after that call is reported), so a list taken then misses nothing.
   * The server's stores call it; an agent's remote backend cannot tell, and never does.
   */
  watch(prefix: string, signal: AbortSignal, opened?: () => void): AsyncIterable<WatchEvent>;
  /**
   * Where it is cheap (SQLite's data_version): a number that moves whenever another process commits
   * to the store, so a cache of it can tell, before it answers, that it has something to catch up on.
   */
  foreignVersion?(): number | undefined;
  /** All the writes or none: each op's key must still be at its revision. False when one has moved. */
  transact(ops: TxnOp[]): Promise<boolean>;
  grantLease(ttlMs: number): Promise<Lease>;
  /**
   * A lease granted before, by this process or another, named by its id: what lets any server keep
   * alive or revoke an agent's lease after the server that granted it died. `ttlMs` is the TTL it
   * was granted with (etcd keeps it itself; the memory and SQLite stores extend by it).
   */
  leaseById(id: string, ttlMs: number): Lease;
  close(): Promise<void>;
}

export class LeaseExpiredError extends Error {
  constructor(id: string) {
    super(`lease ${id} has expired`);
    this.name = 'LeaseExpiredError';
  }
}

/** A fenced write found that its leader claim is gone: a successor may be writing now. */
export class FencedOutError extends Error {
  constructor(fence: Fence) {
    super(`no longer the holder of ${fence.key}: another agent took over`);
    this.name = 'FencedOutError';
  }
}

/** The server refused this caller (removed, or not allowed): retrying cannot help, so the agent stops. */
export class AccessDeniedError extends UserError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message, 4);
    this.name = 'AccessDeniedError';
    this.code = code;
  }
}
