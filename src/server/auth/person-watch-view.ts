import type { WatchEvent } from '../../backend/backend.ts';
import type { PersonPolicy } from './person-policy.ts';

/**
 * What one person's watch shows, event by event: a put as their roles allow now; a delete only of a
 * record they were shown (when the watch opened, or since); and a record that leaves their view
 * (relabelled, or their roles changed) as a delete. So a client's view never keeps what it may no
 * longer see, and never learns the name of a record it never could. It remembers the keys it has
 * shown: at most the records under the watched prefix.
 */
export class PersonWatchView {
  readonly #shown: Set<string>;

  /** `visible`: the keys the person could see when the watch opened (they listed them, or could have). */
  constructor(visible: Iterable<string>) {
    this.#shown = new Set(visible);
  }

  show(policy: PersonPolicy, event: WatchEvent): WatchEvent | undefined {
    if (event.type === 'delete') return this.#shown.delete(event.key) ? event : undefined;
    const shown = policy.event(event);
    if (shown) {
      this.#shown.add(event.item.key);
      return shown;
    }
    return this.#shown.delete(event.item.key) ? { type: 'delete', key: event.item.key, revision: event.item.revision } : undefined;
  }
}
