import type { Backend, Item, Snapshot, WatchEvent } from '../../backend/backend.ts';
import type { WatchHub } from './watch-hub.ts';

/** A full re-read this often repairs whatever a feed could not report (a watch stuck on an etcd member cut off from the others). */
export const RELIST_MS = 30_000;
/** A first load that failed (the store unreachable at startup) is tried again this often, until one succeeds. */
const RETRY_MS = 1000;

export interface WatchCacheOptions<V> {
  backend: Backend;
  hub: WatchHub;
  prefix: string;
  /** The value an item holds; one that throws (or gives undefined) is held as absent. */
  decode: (item: Item) => V | undefined;
  /** After the cache changed: the names (keys less the prefix) whose value changed or went. */
  onChange?: (names: string[]) => void;
  /** Writes this server made under the prefix are read again at once (see `current`), not when the watch reports them. */
  readOwnWrites?: boolean;
  now?: () => number;
  relistMs?: number;
}

interface Entry<V> {
  /** The store revision of the newest write seen for the key, a delete included. */
  revision: number;
  /** Undefined: deleted (a tombstone, until a relist newer than it completes) or unreadable. */
  value?: V;
  /** Epoch ms past which the store reads the item as absent, though no delete was reported yet. */
  expires?: number;
}

/**
 * The items under one prefix, kept in memory from a shared watch (WatchHub) and relisted when the
 * watch (re)opens and every RELIST_MS. Every key keeps the revision of the newest write seen for it,
 * deletes included, so nothing goes back in time: an event older than what is held is dropped, and
 * a relist (a snapshot of the store at one revision) never overwrites or revives a key that an event
 * newer than the snapshot changed while the list was on its way. Every cache of the server that a
 * watch feeds is one of these.
 */
export class WatchCache<V> {
  readonly #opts: WatchCacheOptions<V>;
  readonly #entries = new Map<string, Entry<V>>();
  readonly #unsubscribe: () => void;
  readonly #timer: NodeJS.Timeout;
  /** The revision of the newest snapshot applied: every write up to it is reflected, so an event at or below it is old. */
  #floor = 0;
  /** Counts the feed's openings: a snapshot begun before the latest one may have missed what the feed did not report. */
  #openings = 0;
  #open = false;
  /** The feed is open and a snapshot begun since it opened is applied: the cache holds every write the feed reported. */
  #live = false;
  /** Writes this server made under the prefix, and how many of them the last applied snapshot began after. */
  #writes = 0;
  #writesSeen = 0;
  /** The store's foreignVersion when the last applied snapshot began. */
  #foreignSeen: number | undefined;
  #queued: Promise<void> | undefined;
  #running: Promise<void> | undefined;
  #loaded!: () => void;
  #closed = false;
  /** Resolves once a first snapshot is applied. */
  readonly ready: Promise<void>;

  constructor(opts: WatchCacheOptions<V>) {
    this.#opts = opts;
    this.ready = new Promise((resolve) => (this.#loaded = resolve));
    this.#unsubscribe = opts.hub.subscribe(opts.prefix, {
      event: (event) => this.#apply(event),
      opened: () => {
        this.#openings++;
        this.#open = true;
        void this.relist().catch(() => undefined);
      },
      closed: () => {
        this.#open = false;
        this.#live = false;
      },
      wrote: (key, item) => {
        if (!opts.readOwnWrites) return;
        // What the store answered is applied as its event would be; otherwise the key is read again.
        if (item) return this.#apply({ type: 'put', item: { ...item, key } });
        this.#writes++;
        void this.relist().catch(() => undefined);
      },
    });
    void this.#firstLoad();
    this.#timer = setInterval(() => void this.relist().catch(() => undefined), opts.relistMs ?? RELIST_MS).unref();
  }

  get(name: string): V | undefined {
    const entry = this.#entries.get(name);
    return entry && this.#shown(entry);
  }

  *values(): IterableIterator<V> {
    for (const entry of this.#entries.values()) {
      const value = this.#shown(entry);
      if (value !== undefined) yield value;
    }
  }

  /**
   * Resolves once the cache holds every write made before the call that this process could know
   * of: at once while the feed is open and nothing it cannot report yet is pending; after a new
   * snapshot when the feed is broken, when this server wrote under the prefix (readOwnWrites), when
   * another process committed to a store that says so cheaply (SQLite), or when `asOf` (a revision
   * another feed reported) is past the last snapshot, since feeds report apart and one may lag.
   * Rejects when the store cannot answer.
   */
  async current(asOf?: number): Promise<void> {
    const foreign = this.#opts.backend.foreignVersion?.();
    if (this.#live && this.#writes === this.#writesSeen && foreign === this.#foreignSeen && (asOf === undefined || asOf <= this.#floor)) return;
    await this.relist();
  }

  /** A snapshot begun after this call, applied; concurrent callers share one that has not begun yet. */
  relist(): Promise<void> {
    if (this.#queued) return this.#queued;
    const queued = (this.#running ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        const running = this.#relistOnce();
        this.#running = running;
        return running.finally(() => {
          if (this.#running === running) this.#running = undefined;
        });
      });
    this.#queued = queued;
    return queued;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unsubscribe();
  }

  async #firstLoad(): Promise<void> {
    while (!this.#closed) {
      try {
        return await this.relist();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  }

  async #relistOnce(): Promise<void> {
    // What the snapshot is sure to include, read before it begins; a failed one changes nothing.
    const openings = this.#openings;
    const writes = this.#writes;
    const foreign = this.#opts.backend.foreignVersion?.();
    const snapshot = await this.#opts.backend.snapshot(this.#opts.prefix);
    if (this.#closed) return;
    this.#applySnapshot(snapshot);
    this.#writesSeen = Math.max(this.#writesSeen, writes);
    this.#foreignSeen = foreign;
    if (this.#open && openings === this.#openings) this.#live = true;
    this.#loaded();
  }

  #applySnapshot(snapshot: Snapshot): void {
    const { prefix } = this.#opts;
    const changed: string[] = [];
    const listed = new Set<string>();
    for (const item of snapshot.items) {
      const name = item.key.slice(prefix.length);
      listed.add(name);
      const held = this.#entries.get(name);
      // An event newer than the snapshot (a write during the list) stands.
      if (held && held.revision >= item.revision) continue;
      this.#entries.set(name, this.#entry(item));
      changed.push(name);
    }
    for (const [name, held] of this.#entries) {
      // Absent from the snapshot: deleted at or before its revision, unless an event after it wrote the key again.
      if (listed.has(name) || held.revision > snapshot.revision) continue;
      this.#entries.delete(name);
      if (held.value !== undefined) changed.push(name);
    }
    this.#floor = Math.max(this.#floor, snapshot.revision);
    if (changed.length > 0) this.#opts.onChange?.(changed);
  }

  #apply(event: WatchEvent): void {
    const key = event.type === 'put' ? event.item.key : event.key;
    const revision = event.type === 'put' ? event.item.revision : event.revision;
    // The snapshot applied already holds this write, or one after it (an event the feed reports late).
    if (revision <= this.#floor) return;
    const name = key.slice(this.#opts.prefix.length);
    const held = this.#entries.get(name);
    if (held && held.revision >= revision) return;
    this.#entries.set(name, event.type === 'put' ? this.#entry(event.item) : { revision });
    if (held?.value !== undefined || event.type === 'put') this.#opts.onChange?.([name]);
  }

  #entry(item: Item): Entry<V> {
    let value: V | undefined;
    try {
      value = this.#opts.decode(item);
    } catch {
      // Unreadable is absent: the key keeps its revision, so an older copy cannot come back.
    }
    return { revision: item.revision, ...(value !== undefined && { value }), ...(item.expires !== undefined && { expires: item.expires }) };
  }

  #shown(entry: Entry<V>): V | undefined {
    if (entry.expires !== undefined && entry.expires <= (this.#opts.now ?? Date.now)()) return undefined;
    return entry.value;
  }
}
