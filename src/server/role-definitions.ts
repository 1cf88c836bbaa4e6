import type { Backend, Item } from '../backend/backend.ts';
import type { RoleConfig } from '../config/schema.ts';
import { ROLE } from '../resources/role.ts';
import { kindPrefix, type Resource } from '../resources/resource.ts';
import { decodeResource } from '../resources/store.ts';
import { roleDefinitions } from '../roles/load.ts';
import type { RoleV7 } from '../roles/role.ts';

/**
 * Every role by name for a person's call (loadRoleDefinitions), without decoding and checking every
 * stored role on every request: with 100 roles that was ~270 µs of the server's CPU per proxied
 * request. The role items are still listed on every call (a few µs) and the definitions rebuilt
 * when any key or revision differs, so a role edited or removed counts at the next call, exactly
 * as before; no watch, so no window in which a revoked role still works.
 */
export class RoleDefinitions {
  readonly #backend: Backend;
  readonly #configRoles: RoleConfig[];
  #items: Item[] = [];
  #definitions: Map<string, RoleV7> | undefined;

  constructor(backend: Backend, configRoles: RoleConfig[]) {
    this.#backend = backend;
    this.#configRoles = configRoles;
  }

  /** The definitions as the store has them now; the same map while no role changed (read it, never change it). */
  async current(): Promise<ReadonlyMap<string, RoleV7>> {
    const items = await this.#backend.list(kindPrefix(ROLE));
    if (!this.#definitions || !sameItems(items, this.#items)) {
      this.#definitions = roleDefinitions(items.map((i) => decodeResource<Resource>(i)), this.#configRoles);
      this.#items = items;
    }
    return this.#definitions;
  }
}

/** A revision is the store's revision of the write that last changed the key, so equal keys and revisions mean equal values. */
function sameItems(a: Item[], b: Item[]): boolean {
  return a.length === b.length && a.every((item, i) => item.key === b[i]!.key && item.revision === b[i]!.revision);
}
