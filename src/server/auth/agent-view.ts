import type { Item, WatchEvent } from '../../backend/backend.ts';
import { agentView } from './gate.ts';

/**
 * What an agent may see of a stored item (docs/architecture.md §9.1, "credentials stay where they
 * are used"): its kind's agent view (src/resources/kinds.ts; a kube_cluster without its kubeconfig
 * or any field agents do not use), other items as they are. Undefined: not shown at all.
 */
export const agentItem: (item: Item) => Item | undefined = agentView;

export function agentItems(items: Item[]): Item[] {
  return items.flatMap((item) => agentItem(item) ?? []);
}

/** A watch event as an agent sees it; undefined when the item is not shown. */
export function agentEvent(event: WatchEvent): WatchEvent | undefined {
  if (event.type !== 'put') return event;
  const item = agentItem(event.item);
  return item && { type: 'put', item };
}
