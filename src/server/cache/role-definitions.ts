import type { Backend, Item } from '../../backend/backend.ts';
import type { RoleConfig } from '../../config/schema.ts';
import { ROLE } from '../../resources/role.ts';
import { kindPrefix, type Resource } from '../../resources/resource.ts';
import { decodeResource } from '../../resources/store.ts';
import { roleDefinitions } from '../../roles/load.ts';
import type { RoleV7 } from '../../resources/role.ts';
import { WatchCache } from './watch-cache.ts';
import type { WatchHub } from './watch-hub.ts';

/**
 * Every role by name for a person's call, from the stored roles a watch keeps in memory (WatchCache):
 * no store read per call, and the definitions decoded again only after a role changed. `current`
 * answers once the cache holds every role write this server made or (on SQLite) any process
 * committed before the call, and within the watch's delay those of other servers.
 */
export class RoleDefinitions {
  readonly #cache: WatchCache<Resource>;
  readonly #configRoles: RoleConfig[];
  #definitions: Map<string, RoleV7> | undefined;

  constructor(opts: { backend: Backend; hub: WatchHub; configRoles: RoleConfig[]; onChange?: () => void }) {
    this.#configRoles = opts.configRoles;
    const prefix = kindPrefix(ROLE);
    this.#cache = new WatchCache<Resource>({
      backend: opts.backend,
      hub: opts.hub,
      prefix,
      readOwnWrites: true,
      decode: (item) => storedRole(item, item.key.slice(prefix.length)),
      onChange: () => {
        this.#definitions = undefined;
        opts.onChange?.();
      },
    });
  }

  /** The definitions as the store has them (see the class); the same map while no role changed (read it, never change it). */
  async current(asOf?: number): Promise<ReadonlyMap<string, RoleV7>> {
    await this.#cache.current(asOf);
    return (this.#definitions ??= roleDefinitions([...this.#cache.values()], this.#configRoles));
  }

  close(): void {
    this.#cache.close();
  }
}

/** A role whose value is not even JSON (written by hand) is kept as one that does not read, so it denies everything (readStoredRole). */
function storedRole(item: Item, name: string): Resource {
  try {
    return decodeResource<Resource>(item);
  } catch {
    return { kind: ROLE, version: 'unreadable', metadata: { name }, spec: {} } as Resource;
  }
}
