import type { Item, WatchEvent } from '../../backend/backend.ts';
import type { RoleSet } from '../../roles/evaluate.ts';
import { personEvent, personRefusal, personView } from './gate.ts';
import type { BackendCall } from './backend-call.ts';

/**
 * One person's view and verdicts, by their current roles: the gate (gate.ts) decides their store
 * calls by kind and verb; leases are for discovery agents alone.
 */
export class PersonPolicy {
  readonly user: string;
  readonly #roles: RoleSet;

  constructor(user: string, roles: RoleSet) {
    this.user = user;
    this.#roles = roles;
  }

  /** Why this call is refused, or undefined. `current` is what the key holds, for writes. */
  refusal(call: BackendCall, current?: Item): string | undefined {
    switch (call.op) {
      case 'grant':
      case 'keepalive':
      case 'revoke':
        return 'may not hold leases: they are for discovery agents';
      default:
        return personRefusal(this.#roles, call, current);
    }
  }

  /** The item as this person may see it; undefined when it must look missing. */
  view(item: Item): Item | undefined {
    return personView(this.#roles, item);
  }

  views(items: Item[]): Item[] {
    return items.flatMap((item) => this.view(item) ?? []);
  }

  event(event: WatchEvent): WatchEvent | undefined {
    return personEvent(this.#roles, event);
  }
}
