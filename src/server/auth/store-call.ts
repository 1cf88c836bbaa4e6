import type { Backend, Item, WriteOptions } from '../../backend/backend.ts';
import type { BackendCall } from './backend-call.ts';

/** The calls that read or write one key or prefix (leases and watches are the server's own). */
export type KeyCall = Extract<BackendCall, { op: 'get' | 'list' | 'create' | 'put' | 'cas' | 'delete' }>;

export function isKeyCall(call: BackendCall): call is KeyCall {
  return call.op === 'get' || call.op === 'list' || call.op === 'create' || call.op === 'put' || call.op === 'cas' || call.op === 'delete';
}

/**
 * An authorised call, for an agent or a person alike: writes replace exactly the value the policy
 * judged (`current`, read before it), and every item goes back only as `view` lets the caller see
 * it (never a credential). `remove` is how a delete happens (a person removing an agent removes
 * what it said about itself too).
 */
export async function applyStoreCall(
  backend: Backend,
  call: KeyCall,
  current: Item | undefined,
  opts: WriteOptions,
  view: (item: Item) => Item | undefined,
  remove: (key: string, revision: number) => Promise<boolean> = (key, revision) => backend.delete(key, revision, opts),
): Promise<unknown> {
  const shown = (item: Item | undefined) => ({ item: (item && view(item)) ?? null });
  switch (call.op) {
    case 'get':
      return shown(await backend.get(call.key));
    case 'list': {
      const { items, revision } = await backend.snapshot(call.prefix);
      return { items: items.flatMap((item) => view(item) ?? []), revision };
    }
    case 'create':
      return shown(await backend.create(call.key, call.value, opts));
    case 'put':
      // A put is a compare-and-swap at the revision authorised: another writer in between makes it try again.
      return shown(current ? await backend.compareAndSwap(call.key, call.value, current.revision, opts) : await backend.create(call.key, call.value, opts));
    case 'cas':
      if (!current || current.revision !== call.revision) return { item: null };
      return shown(await backend.compareAndSwap(call.key, call.value, call.revision, opts));
    case 'delete':
      if (!current || (call.revision !== undefined && current.revision !== call.revision)) return { deleted: false };
      return { deleted: await remove(call.key, current.revision) };
  }
}
