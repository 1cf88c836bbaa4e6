import { closeSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { cannotWrite, diskFull, isSqliteError, makeDirs, openReadOnly, storeError } from './sqlite-files.ts';
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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  revision INTEGER NOT NULL,
  expires INTEGER,
  lease TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, type TEXT NOT NULL, value TEXT, expires INTEGER, lease TEXT);
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (id, revision) VALUES (1, 0);
`;

/** How long watch events are kept for slow watchers, in revisions... */
const EVENT_HISTORY = 10_000;
/**
 * ... and in bytes of values: a writer replacing one large value in a loop would otherwise keep
 * 10,000 copies of it. Checked each time a process has written a 64th of the budget since its last
 * check (the check scans the whole history, ~10 ms at 10,000 events: checking every 100 revisions
 * cost the server ~15% of its CPU under the audit events of 800 proxied requests a second), so the
 * history holds at most the budget, a 64th of it and one value per writing process; a watcher
 * polls every 100 ms, so only one more than 64 MiB behind loses events.
 */
export const EVENT_HISTORY_BYTES = 64 << 20;

/**
 * The embedded default backend: one SQLite file in WAL mode, shared safely by several processes.
 * Every write is one IMMEDIATE transaction that bumps a global revision, so compare-and-swap
 * holds across processes.
 */
export class SqliteBackend implements Backend {
  readonly kind = 'sqlite';
  readonly #db: DatabaseSync;
  readonly #path: string;
  /** Set when the store could be opened only for reading: why writes cannot happen. */
  #readOnlyBecause?: Error;
  readonly #now: () => number;
  readonly #pollMs: number;
  readonly #historyBytes: number;
  readonly #stmts: Record<string, StatementSync>;
  #lastPurge = 0;
  /** Bytes of values this process wrote since it last checked the history's byte budget. */
  #unchecked = 0;

  private constructor(db: DatabaseSync, path: string, now: () => number, pollMs: number, historyBytes = EVENT_HISTORY_BYTES) {
    this.#db = db;
    this.#historyBytes = historyBytes;
    this.#path = path;
    this.#now = now;
    this.#pollMs = pollMs;
    this.#stmts = {
      get: db.prepare(
        'SELECT key, value, revision, expires, lease FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?) AND (lease IS NULL OR lease IN (SELECT id FROM leases WHERE expires > ?))',
      ),
      list: db.prepare(
        'SELECT key, value, revision, expires, lease FROM kv WHERE key >= ? AND key < ? AND (expires IS NULL OR expires > ?) AND (lease IS NULL OR lease IN (SELECT id FROM leases WHERE expires > ?)) ORDER BY key',
      ),
      bump: db.prepare('UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision'),
      current: db.prepare('SELECT revision FROM meta WHERE id = 1'),
      dataVersion: db.prepare('PRAGMA data_version'),
      upsert: db.prepare(
        'INSERT INTO kv (key, value, revision, expires, lease) VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, revision = excluded.revision, expires = excluded.expires, lease = excluded.lease',
      ),
      del: db.prepare('DELETE FROM kv WHERE key = ?'),
      event: db.prepare('INSERT INTO events (revision, key, type, value, expires, lease) VALUES (?, ?, ?, ?, ?, ?)'),
      events: db.prepare(
        'SELECT revision, key, type, value, expires, lease FROM events WHERE revision > ? AND revision <= ? AND key >= ? AND key < ? ORDER BY revision',
      ),
      trimEvents: db.prepare('DELETE FROM events WHERE revision <= ?'),
      // The newest revision past which the kept values add up to more than the byte budget.
      trimEventBytes: db.prepare(
        'DELETE FROM events WHERE revision <= (SELECT revision FROM (SELECT revision, SUM(octet_length(value)) OVER (ORDER BY revision DESC) AS kept FROM events) WHERE kept > ? ORDER BY revision DESC LIMIT 1)',
      ),
      expired: db.prepare('SELECT key FROM kv WHERE (expires IS NOT NULL AND expires <= ?) OR lease IN (SELECT id FROM leases WHERE expires <= ?)'),
      dropLeases: db.prepare('DELETE FROM leases WHERE expires <= ?'),
      leaseExpires: db.prepare('SELECT expires FROM leases WHERE id = ?'),
      putLease: db.prepare('INSERT OR REPLACE INTO leases (id, expires) VALUES (?, ?)'),
      dropLease: db.prepare('DELETE FROM leases WHERE id = ?'),
      leaseKeys: db.prepare('SELECT key FROM kv WHERE lease = ?'),
    };
  }

  static async open(path: string, opts: { now?: () => number; pollMs?: number; eventHistoryBytes?: number } = {}): Promise<SqliteBackend> {
    const { DatabaseSync } = await import('node:sqlite');
    let db: DatabaseSync;
    try {
      if (path !== ':memory:') {
        makeDirs(dirname(path));
        // The file holds token hashes and kubeconfigs of static clusters: owner only.
        closeSync(openSync(path, 'a', 0o600));
      }
      db = new DatabaseSync(path, { timeout: 10_000 });
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
      db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`);
    } catch (err) {
      // A read-only data dir or mount: reads (get, kube ls) still work; writes say why they cannot.
      // Anything else (a full disk, a damaged file) is reported as it is.
      const readOnly = path !== ':memory:' && (cannotWrite(err) || diskFull(path)) && openReadOnly(DatabaseSync, path);
      if (!readOnly) throw storeError(err, path, 'open');
      const backend = new SqliteBackend(readOnly, path, opts.now ?? Date.now, opts.pollMs ?? 100);
      backend.#readOnlyBecause = storeError(err, path, 'write');
      return backend;
    }
    return new SqliteBackend(db, path, opts.now ?? Date.now, opts.pollMs ?? 100, opts.eventHistoryBytes);
  }

  async get(key: string): Promise<Item | undefined> {
    return this.#read(() => toItem(this.#stmts.get!.get(key, this.#now(), this.#now())));
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.#tx(() => {
      this.#checkFence(opts?.fence);
      return this.#write(key, value, opts);
    });
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#tx(() => {
      this.#checkFence(opts?.fence);
      return this.#stmts.get!.get(key, this.#now(), this.#now()) ? undefined : this.#write(key, value, opts);
    });
  }

  async compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#tx(() => {
      this.#checkFence(opts?.fence);
      const current = toItem(this.#stmts.get!.get(key, this.#now(), this.#now()));
      return current?.revision === revision ? this.#write(key, value, opts) : undefined;
    });
  }

  async delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean> {
    return this.#tx(() => {
      this.#checkFence(opts?.fence);
      const current = toItem(this.#stmts.get!.get(key, this.#now(), this.#now()));
      if (!current || (revision !== undefined && current.revision !== revision)) return false;
      this.#remove(key, this.#nextRevision());
      return true;
    });
  }

  async list(prefix: string): Promise<Item[]> {
    return (await this.snapshot(prefix)).items;
  }

  async snapshot(prefix: string): Promise<Snapshot> {
    return this.#read(() => {
      // One read transaction: the revision and the items are one state of the file, whichever
      // process writes meanwhile (two statements would each see their own).
      this.#db.exec('BEGIN');
      try {
        const revision = Number((this.#stmts.current!.get() as { revision: number }).revision);
        const items = this.#stmts.list!.all(prefix, `${prefix}\u{10FFFF}`, this.#now(), this.#now()).map((row) => toItem(row)!);
        return { items, revision };
      } finally {
        this.#db.exec('COMMIT');
      }
    });
  }

  /** Moves whenever another connection (another process) commits to the file: SQLite's data_version, ~1 µs. */
  foreignVersion(): number {
    return this.#read(() => Number((this.#stmts.dataVersion!.get() as { data_version: number }).data_version));
  }

  async *watch(prefix: string, signal: AbortSignal, opened?: () => void): AsyncIterable<WatchEvent> {
    const current = () => Number((this.#stmts.current!.get() as { revision: number }).revision);
    let seen = current();
    opened?.();
    while (!signal.aborted) {
      // Each poll reads the revisions since the last poll, not since this prefix's last event: other
      // prefixes' writes (the audit events of every proxied request) would otherwise be scanned
      // again on every poll, up to the whole history. A revision is committed with its event.
      const upTo = current();
      const rows = this.#stmts.events!.all(seen, upTo, prefix, `${prefix}\u{10FFFF}`) as Array<Record<string, unknown>>;
      seen = upTo;
      for (const row of rows) {
        const revision = Number(row.revision);
        yield row.type === 'delete' ? { type: 'delete', key: String(row.key), revision } : { type: 'put', item: toItem(row)! };
      }
      try {
        await sleep(this.#pollMs, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  async transact(ops: TxnOp[]): Promise<boolean> {
    return this.#tx(() => {
      const current = (key: string) => toItem(this.#stmts.get!.get(key, this.#now(), this.#now()))?.revision ?? 0;
      if (!ops.every((op) => current(op.key) === op.revision)) return false;
      for (const op of ops) {
        if (op.checkOnly) continue;
        if (op.value === undefined) {
          if (op.revision !== 0) this.#remove(op.key, this.#nextRevision());
        } else this.#write(op.key, op.value, op.ttlMs === undefined ? undefined : { ttlMs: op.ttlMs });
      }
      return true;
    });
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    const id = randomUUID();
    this.#tx(() => this.#stmts.putLease!.run(id, this.#now() + ttlMs));
    return this.leaseById(id, ttlMs);
  }

  leaseById(id: string, ttlMs: number): Lease {
    return {
      id,
      ttlMs,
      keepAlive: async () =>
        this.#tx(() => {
          const row = this.#stmts.leaseExpires!.get(id) as { expires: number } | undefined;
          if (!row || Number(row.expires) <= this.#now()) return false;
          this.#stmts.putLease!.run(id, this.#now() + ttlMs);
          return true;
        }),
      revoke: async () =>
        this.#tx(() => {
          for (const { key } of this.#stmts.leaseKeys!.all(id) as Array<{ key: string }>) this.#remove(key, this.#nextRevision());
          this.#stmts.dropLease!.run(id);
        }),
    };
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }

  /** Inside the write transaction, so the check and the write are one atomic step. */
  #checkFence(fence: Fence | undefined): void {
    if (fence && (this.#stmts.get!.get(fence.key, this.#now(), this.#now()) as { value?: string } | undefined)?.value !== fence.value) {
      throw new FencedOutError(fence);
    }
  }

  #write(key: string, value: string, opts: WriteOptions | undefined): Item {
    let expires: number | undefined;
    if (opts?.lease) {
      const row = this.#stmts.leaseExpires!.get(opts.lease) as { expires: number } | undefined;
      if (!row || Number(row.expires) <= this.#now()) throw new LeaseExpiredError(opts.lease);
    }
    if (opts?.ttlMs !== undefined) expires = this.#now() + opts.ttlMs;
    const revision = this.#nextRevision();
    this.#unchecked += Buffer.byteLength(value);
    if (this.#unchecked >= this.#historyBytes / 64) {
      this.#unchecked = 0;
      this.#stmts.trimEventBytes!.run(this.#historyBytes);
    }
    this.#stmts.upsert!.run(key, value, revision, expires ?? null, opts?.lease ?? null);
    this.#stmts.event!.run(revision, key, 'put', value, expires ?? null, opts?.lease ?? null);
    return { key, value, revision, ...(expires !== undefined && { expires }), ...(opts?.lease && { lease: opts.lease }) };
  }

  #remove(key: string, revision: number): void {
    this.#stmts.del!.run(key);
    this.#stmts.event!.run(revision, key, 'delete', null, null, null);
  }

  #nextRevision(): number {
    const revision = Number((this.#stmts.bump!.get() as { revision: number }).revision);
    if (revision % 1000 === 0) this.#stmts.trimEvents!.run(revision - EVENT_HISTORY);
    return revision;
  }

  /** Expired items and lease-bound items of lapsed leases are deleted, with delete events. */
  #expire(): void {
    const now = this.#now();
    const keys = this.#stmts.expired!.all(now, now) as Array<{ key: string }>;
    for (const { key } of keys) this.#remove(key, this.#nextRevision());
    this.#stmts.dropLeases!.run(now);
  }

  /**
   * Every write is one IMMEDIATE transaction. Expired items are purged (with delete events) by
   * writers, at most once a second, so readers and watchers never take the write lock.
   */
  #tx<T>(fn: () => T): T {
    if (this.#readOnlyBecause) throw this.#readOnlyBecause;
    try {
      this.#db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      throw storeError(err, this.#path, 'write');
    }
    try {
      if (this.#now() - this.#lastPurge >= 1000) {
        this.#lastPurge = this.#now();
        this.#expire();
      }
      const result = fn();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      // SQLite may already have rolled back (SQLITE_FULL does): a second ROLLBACK must not hide the cause.
      try {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      } catch {}
      throw isSqliteError(err) ? storeError(err, this.#path, 'write') : err;
    }
  }

  #read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw isSqliteError(err) ? storeError(err, this.#path, 'read') : err;
    }
  }
}

function toItem(row: unknown): Item | undefined {
  if (!row) return undefined;
  const r = row as Record<string, unknown>;
  return {
    key: String(r.key),
    value: String(r.value),
    revision: Number(r.revision),
    ...(r.expires != null && { expires: Number(r.expires) }),
    ...(r.lease != null && { lease: String(r.lease) }),
  };
}
