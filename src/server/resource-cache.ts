import type { Backend, WatchEvent } from '../backend/backend.ts';
import { kindPrefix, type Resource } from '../resources/resource.ts';
import { decodeResource, listResources } from '../resources/store.ts';
import type { WatchHub } from './watch-hub.ts';

/** A full re-read this often repairs whatever a broken watch missed (WatchHub reopens feeds without a replay). */
const RELIST_MS = 30_000;

/**
 * The records of one kind, kept in memory from a shared watch (WatchHub) and re-read on an
 * interval, so the routing answers a Kubernetes request without reading the store for them.
 */
export class ResourceCache<R extends Resource> {
  readonly #backend: Backend;
  readonly #kind: string;
  readonly #byName = new Map<string, R>();
  readonly #onChange: () => void;
  readonly #unsubscribe: () => void;
  readonly #timer: NodeJS.Timeout;
  readonly ready: Promise<void>;

  constructor(backend: Backend, hub: WatchHub, kind: string, onChange: () => void = () => {}) {
    this.#backend = backend;
    this.#kind = kind;
    this.#onChange = onChange;
    this.#unsubscribe = hub.subscribe(kindPrefix(kind), (event) => this.#apply(event));
    this.ready = this.#relist();
    this.#timer = setInterval(() => void this.#relist(), RELIST_MS).unref();
  }

  get(name: string): R | undefined {
    return this.#byName.get(name);
  }

  values(): IterableIterator<R> {
    return this.#byName.values();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
  }

  #apply(event: WatchEvent): void {
    const prefix = kindPrefix(this.#kind);
    if (event.type === 'delete') this.#byName.delete(event.key.slice(prefix.length));
    else {
      try {
        const resource = decodeResource<R>(event.item);
        this.#byName.set(resource.metadata.name, resource);
      } catch {
        return;
      }
    }
    this.#onChange();
  }

  async #relist(): Promise<void> {
    try {
      const all = await listResources<R>(this.#backend, this.#kind);
      this.#byName.clear();
      for (const r of all) this.#byName.set(r.metadata.name, r);
      this.#onChange();
    } catch {
      // The store is unreachable: the last view stands until the next try.
    }
  }
}
