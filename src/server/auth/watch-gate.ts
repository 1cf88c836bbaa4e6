/**
 * Events on their way to one agent's watch, each let through only after the agent was found still
 * in the store (not removed by `kport agents rm`) at a moment after the event was written: so no
 * event written after a removal reaches the removed agent. One check covers every event queued
 * before it began, so a burst of events costs one store read per watcher, not one per event.
 */
export class WatchGate<E> {
  readonly #stillThere: (batch: E[]) => Promise<boolean>;
  readonly #deliver: (event: E) => void;
  readonly #removed: () => void;
  #queue: E[] = [];
  #running = false;
  #closed = false;

  /** `stillThere` is asked about each batch before it goes out: whether the watcher may still see it. */
  constructor(opts: { stillThere: (batch: E[]) => Promise<boolean>; deliver: (event: E) => void; removed: () => void }) {
    this.#stillThere = opts.stillThere;
    this.#deliver = opts.deliver;
    this.#removed = opts.removed;
  }

  push(event: E): void {
    if (this.#closed) return;
    this.#queue.push(event);
    if (!this.#running) void this.#drain();
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  async #drain(): Promise<void> {
    this.#running = true;
    while (this.#queue.length > 0 && !this.#closed) {
      const batch = this.#queue;
      this.#queue = [];
      // A store that cannot answer is not a removal, but nothing goes out unchecked either.
      const there = await this.#stillThere(batch).catch(() => false);
      if (this.#closed) break;
      if (!there) {
        this.close();
        this.#removed();
        break;
      }
      for (const event of batch) this.#deliver(event);
    }
    this.#running = false;
  }
}
