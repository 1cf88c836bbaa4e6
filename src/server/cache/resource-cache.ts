import type { Backend } from '../../backend/backend.ts';
import { kindPrefix, type Resource } from '../../resources/resource.ts';
import { decodeResource } from '../../resources/store.ts';
import { WatchCache } from './watch-cache.ts';
import type { WatchHub } from './watch-hub.ts';

/**
 * The records of one kind by name, kept in memory from a shared watch (a WatchCache: it never goes
 * back in time), so the routing answers a Kubernetes request without reading the store for them.
 */
export class ResourceCache<R extends Resource> {
  readonly #cache: WatchCache<R>;
  readonly ready: Promise<void>;

  constructor(backend: Backend, hub: WatchHub, kind: string, onChange: () => void = () => {}) {
    this.#cache = new WatchCache<R>({ backend, hub, prefix: kindPrefix(kind), decode: (item) => decodeResource<R>(item), onChange });
    this.ready = this.#cache.ready;
  }

  get(name: string): R | undefined {
    return this.#cache.get(name);
  }

  values(): IterableIterator<R> {
    return this.#cache.values();
  }

  close(): void {
    this.#cache.close();
  }
}
