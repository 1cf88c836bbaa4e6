import type { Backend } from '../../backend/backend.ts';
import { WatchCache } from '../cache/watch-cache.ts';
import type { WatchHub } from '../cache/watch-hub.ts';
import { parseServerRecord, SERVERS_PREFIX, TUNNELS_PREFIX, tunnelOf, type ServerRecord } from './peer-keys.ts';

/**
 * The live servers and which of them hold each agent's tunnels, kept in memory from the shared
 * watch (WatchCache: never back in time, relisted when the feed reopens), so routing a request
 * reads nothing from the store. A record vanishes with its server's lease (peer-presence.ts).
 */
export class PeerDirectory {
  readonly #self: string;
  readonly #servers: WatchCache<ServerRecord>;
  /** Tunnel records, valued by the store revision that wrote them: the newest is the agent's live tunnel. */
  readonly #tunnels: WatchCache<number>;
  /** agent host id -> servers whose tunnel record for it is held, updated as the cache changes. */
  readonly #byHost = new Map<string, Set<string>>();
  readonly ready: Promise<void>;

  constructor(backend: Backend, hub: WatchHub, self: string) {
    this.#self = self;
    this.#servers = new WatchCache<ServerRecord>({ backend, hub, prefix: SERVERS_PREFIX, decode: (item) => parseServerRecord(item.value) });
    this.#tunnels = new WatchCache<number>({
      backend,
      hub,
      prefix: TUNNELS_PREFIX,
      decode: (item) => (tunnelOf(item.key.slice(TUNNELS_PREFIX.length)) ? item.revision : undefined),
      onChange: (names) => this.#index(names),
    });
    this.ready = Promise.all([this.#servers.ready, this.#tunnels.ready]).then(() => undefined);
  }

  /**
   * Other live servers holding a tunnel of `hostId`, the newest tunnel record first: an agent whose
   * server died has redialled, and the dead server's record lingers until its lease ends (up to 6 s),
   * so the newest is the tunnel that is up.
   */
  serversFor(hostId: string): string[] {
    const servers = [...(this.#byHost.get(hostId) ?? [])].filter((s) => s !== this.#self && this.#servers.get(s) !== undefined);
    const written = (server: string) => this.#tunnels.get(`${hostId}/${server}`) ?? 0;
    return servers.sort((a, b) => written(b) - written(a));
  }

  /** A live server's record (its peer address); undefined once its record is gone. */
  server(serverId: string): ServerRecord | undefined {
    return this.#servers.get(serverId);
  }

  close(): void {
    this.#servers.close();
    this.#tunnels.close();
  }

  #index(names: string[]): void {
    for (const name of names) {
      const tunnel = tunnelOf(name);
      if (!tunnel) continue;
      let servers = this.#byHost.get(tunnel.hostId);
      if (this.#tunnels.get(name)) {
        if (!servers) this.#byHost.set(tunnel.hostId, (servers = new Set()));
        servers.add(tunnel.serverId);
      } else if (servers) {
        servers.delete(tunnel.serverId);
        if (servers.size === 0) this.#byHost.delete(tunnel.hostId);
      }
    }
  }
}
