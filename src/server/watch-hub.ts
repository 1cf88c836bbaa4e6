import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, WatchEvent } from '../backend/backend.ts';

/**
 * One backend watch per prefix, shared by every agent watching it: a thousand Kubernetes agents
 * watching kube_cluster cost the store one watch, not a thousand. A broken feed (an etcd member
 * going away) is opened again; a subscriber may miss what happened in between, as after any
 * reconnect, so subscribers also refresh on their own interval.
 */
export class WatchHub {
  readonly #backend: Backend;
  readonly #feeds = new Map<string, { subscribers: Set<(event: WatchEvent) => void>; stop: AbortController }>();

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  subscribe(prefix: string, onEvent: (event: WatchEvent) => void): () => void {
    let feed = this.#feeds.get(prefix);
    if (!feed) {
      const created = { subscribers: new Set<(event: WatchEvent) => void>(), stop: new AbortController() };
      this.#feeds.set(prefix, created);
      void this.#run(prefix, created);
      feed = created;
    }
    feed.subscribers.add(onEvent);
    return () => {
      feed.subscribers.delete(onEvent);
      if (feed.subscribers.size === 0 && this.#feeds.get(prefix) === feed) {
        this.#feeds.delete(prefix);
        feed.stop.abort();
      }
    };
  }

  close(): void {
    for (const feed of this.#feeds.values()) feed.stop.abort();
    this.#feeds.clear();
  }

  async #run(prefix: string, feed: { subscribers: Set<(event: WatchEvent) => void>; stop: AbortController }): Promise<void> {
    while (!feed.stop.signal.aborted) {
      try {
        for await (const event of this.#backend.watch(prefix, feed.stop.signal)) for (const deliver of feed.subscribers) deliver(event);
      } catch {}
      await sleep(1000, undefined, { signal: feed.stop.signal }).catch(() => undefined);
    }
  }
}
