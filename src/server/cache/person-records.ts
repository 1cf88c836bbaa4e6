import type { Backend } from '../../backend/backend.ts';
import type { RoleConfig } from '../../config/schema.ts';
import { LOCK, type Lock, type PersonUser } from '../../people/store.ts';
import { USER } from '../../resources/role.ts';
import { kindPrefix } from '../../resources/resource.ts';
import { decodeResource } from '../../resources/store.ts';
import type { RoleV7 } from '../../resources/role.ts';
import { RoleDefinitions } from './role-definitions.ts';
import { WatchCache } from './watch-cache.ts';
import type { WatchHub } from './watch-hub.ts';

/** Whose records changed: a user's or a lock's (by user name), or the roles. */
export type RecordChange = { kind: 'user' | 'lock'; names: string[] } | { kind: 'role' };

/** What the per-call check of a person reads, as of one moment: their user record, their lock, every role. */
export interface PersonView {
  user(name: string): PersonUser | undefined;
  /** The user's lock when one is in force at `now` (epoch ms). */
  lock(name: string, now: number): Lock | undefined;
  roles: ReadonlyMap<string, RoleV7>;
}

/**
 * The user records, locks and roles every person's call is checked against, kept in memory from
 * the store's watch (WatchCache), so a call reads the store only when the cache must catch up:
 * after this server wrote one of them, after another process committed to a SQLite store, or while
 * the watch is broken (then every call lists them, and fails as a store read did when the store
 * cannot answer). Writes by another server reach the cache by its watch, in milliseconds.
 */
export class PersonRecords {
  readonly #users: WatchCache<PersonUser>;
  readonly #locks: WatchCache<Lock>;
  readonly #roles: RoleDefinitions;
  readonly #listeners = new Set<(change: RecordChange) => void>();

  constructor(opts: { backend: Backend; hub: WatchHub; configRoles: RoleConfig[] }) {
    const cache = <V>(kind: 'user' | 'lock', prefix: string) =>
      new WatchCache<V>({
        backend: opts.backend,
        hub: opts.hub,
        prefix,
        readOwnWrites: true,
        decode: (item) => decodeResource(item) as V,
        onChange: (names) => this.#changed({ kind, names }),
      });
    this.#users = cache<PersonUser>('user', kindPrefix(USER));
    this.#locks = cache<Lock>('lock', kindPrefix(LOCK));
    this.#roles = new RoleDefinitions({ ...opts, onChange: () => this.#changed({ kind: 'role' }) });
  }

  /**
   * The records once every cache is current (WatchCache.current); with `asOf`, also past that
   * revision (an event another feed reported: whoever it reaches is checked against records at least as new).
   */
  async view(asOf?: number): Promise<PersonView> {
    const [roles] = await Promise.all([this.#roles.current(asOf), this.#users.current(asOf), this.#locks.current(asOf)]);
    return {
      user: (name) => this.#users.get(name),
      // As activeLock (people/store.ts): a lock with a TTL may outlive its expiry in a store that sweeps late.
      lock: (name, now) => {
        // Keyed by the name in lower case (people/locks.ts); a lock from before that, by the name as typed.
        const lock = this.#locks.get(name.toLowerCase()) ?? this.#locks.get(name);
        return lock && !(lock.metadata.expires && Date.parse(lock.metadata.expires) <= now) ? lock : undefined;
      },
      roles,
    };
  }

  /** Told after each change the caches applied (a watch event or a relist), so open sessions can be checked again. */
  onChange(listener: (change: RecordChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#users.close();
    this.#locks.close();
    this.#roles.close();
  }

  #changed(change: RecordChange): void {
    for (const listener of this.#listeners) listener(change);
  }
}
