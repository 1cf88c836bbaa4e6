import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, Item, WatchEvent } from '../../backend/backend.ts';

/** What a subscriber hears of one feed: its events, and when it (re)opens or breaks. */
export interface FeedListener {
  event(event: WatchEvent): void;
  /** The feed is in place (again): every write from now on is reported, so a list taken now misses nothing. */
  opened?(): void;
  /** The feed broke: events may be missed until it opens again. */
  closed?(): void;
  /**
   * This server wrote `key` under the feed's prefix (ObservedBackend); its event may come later.
   * `item`: what the write stored, when the store said (a put); without it, the key may hold anything.
   */
  wrote?(key: string, item?: Item): void;
}

interface Feed {
  listeners: Set<FeedListener>;
  stop: AbortController;
  open: boolean;
}

/**
 * One backend watch per prefix, shared by every agent watching it: a thousand Kubernetes agents
 * watching kube_cluster cost the store one watch, not a thousand. A broken feed (an etcd member
 * going away) is opened again; a subscriber may miss what happened in between, so it is told when
 * the feed breaks and when it is back (a cache relists then: watch-cache.ts).
 */
export class WatchHub {
  readonly #backend: Backend;
  readonly #feeds = new Map<string, Feed>();

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  subscribe(prefix: string, listener: FeedListener | ((event: WatchEvent) => void)): () => void {
    const subscriber = typeof listener === 'function' ? { event: listener } : listener;
    let feed = this.#feeds.get(prefix);
    if (!feed) {
      const created: Feed = { listeners: new Set(), stop: new AbortController(), open: false };
      this.#feeds.set(prefix, created);
      void this.#run(prefix, created);
      feed = created;
    }
    feed.listeners.add(subscriber);
    // Joining a feed already in place: the newcomer lists now, as the others did when it opened.
    if (feed.open) queueMicrotask(() => feed.open && feed.listeners.has(subscriber) && subscriber.opened?.());
    return () => {
      feed.listeners.delete(subscriber);
      if (feed.listeners.size === 0 && this.#feeds.get(prefix) === feed) {
        this.#feeds.delete(prefix);
        feed.stop.abort();
      }
    };
  }

  /** This server wrote `key` (`item`, when known): the listeners of every feed whose prefix holds it hear of it at once. */
  wrote(key: string, item?: Item): void {
    for (const [prefix, feed] of this.#feeds) if (key.startsWith(prefix)) for (const listener of feed.listeners) listener.wrote?.(key, item);
  }

  close(): void {
    for (const feed of this.#feeds.values()) feed.stop.abort();
    this.#feeds.clear();
  }

  async #run(prefix: string, feed: Feed): Promise<void> {
    const opened = () => {
      feed.open = true;
      for (const listener of feed.listeners) listener.opened?.();
    };
    while (!feed.stop.signal.aborted) {
      try {
        for await (const event of this.#backend.watch(prefix, feed.stop.signal, opened)) for (const listener of feed.listeners) listener.event(event);
      } catch {}
      if (feed.open) {
        feed.open = false;
        for (const listener of feed.listeners) listener.closed?.();
      }
      await sleep(1000, undefined, { signal: feed.stop.signal }).catch(() => undefined);
    }
  }
}
