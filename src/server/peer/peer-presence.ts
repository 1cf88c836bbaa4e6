import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, Lease } from '../../backend/backend.ts';
import { serverKey, tunnelKey, type ServerRecord } from './peer-keys.ts';

/**
 * The lease a server's presence lives on: 6 s, kept alive every 2 s, so two keep-alives may be
 * lost before it lapses, and a server killed outright leaves the others' routing within 6 s
 * (etcd deletes every key on an expired lease at once, and the others' watches report it).
 */
export const PRESENCE = { ttlMs: 6000, keepAliveMs: 2000 } as const;

export interface PresenceOptions {
  backend: Backend;
  serverId: string;
  peerAddr: string;
  now: () => Date;
  log: (line: string) => void;
  ttlMs?: number;
  keepAliveMs?: number;
}

/**
 * This server's record and its agents' tunnel records, all on one etcd lease of its own: a server
 * that dies takes them all with it, and no other server has to notice. A tunnel record is written
 * when an agent's first tunnel to this server opens and deleted when its last one closes, so an
 * agent's heartbeats never write anything here (Teleport's etcd users hit timeouts at tens of
 * thousands of heartbeat writes a minute). A lease lost (the store unreachable past the TTL) is
 * granted again and every record written again on it.
 */
export class PeerPresence {
  readonly #opts: PresenceOptions;
  readonly #hosts = new Set<string>();
  /** One write at a time per agent, in order, so an up and a down never land reversed. */
  readonly #chains = new Map<string, Promise<void>>();
  #lease?: Lease;
  #timer?: NodeJS.Timeout;
  #closed = false;
  #renewing?: Promise<void>;

  constructor(opts: PresenceOptions) {
    this.#opts = opts;
  }

  async start(): Promise<void> {
    await this.#grant();
    this.#timer = setInterval(() => void this.#keepAlive(), this.#opts.keepAliveMs ?? PRESENCE.keepAliveMs).unref();
  }

  /** An agent's tunnel count on this server went from 0 to 1 (`open`) or from 1 to 0. */
  tunnel(hostId: string, open: boolean): void {
    if (open) this.#hosts.add(hostId);
    else this.#hosts.delete(hostId);
    this.#sync(hostId);
  }

  /** Revokes the lease: the server's record and its tunnel records go at once, so no peer dials a stopped server. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    // A store out of reach does not hold the server's stop: the lease then lapses by itself within its TTL.
    const leave = Promise.all(this.#chains.values()).then(() => this.#lease?.revoke());
    await Promise.race([leave.catch(() => undefined), sleep(2000, undefined, { ref: false })]);
  }

  async #grant(): Promise<void> {
    const { backend, serverId, peerAddr, now } = this.#opts;
    const lease = await backend.grantLease(this.#opts.ttlMs ?? PRESENCE.ttlMs);
    const record: ServerRecord = { server_id: serverId, peer_addr: peerAddr, started: now().toISOString() };
    await backend.put(serverKey(serverId), JSON.stringify(record), { lease: lease.id });
    this.#lease = lease;
    for (const hostId of this.#hosts) this.#sync(hostId);
  }

  async #keepAlive(): Promise<void> {
    if (this.#closed || this.#renewing) return;
    const alive = await this.#lease!.keepAlive().catch(() => undefined);
    if (alive !== false || this.#closed) return;
    // Expired (the store was out of reach longer than the TTL): this server is back, on a new lease.
    this.#renewing = this.#grant()
      .catch((err: Error) =>
        this.#opts.log(JSON.stringify({ level: 'warn', msg: `proxy peering: this server's presence could not be written again: ${err.message}` })),
      )
      .finally(() => (this.#renewing = undefined));
  }

  #sync(hostId: string): void {
    const previous = this.#chains.get(hostId) ?? Promise.resolve();
    const next = previous.then(() => this.#write(hostId));
    this.#chains.set(hostId, next);
    void next.finally(() => this.#chains.get(hostId) === next && this.#chains.delete(hostId));
  }

  /** Writes the agent's record as it should be now (idempotent: a retry or a regrant writes the same). */
  async #write(hostId: string): Promise<void> {
    const lease = this.#lease;
    if (!lease || this.#closed) return;
    const key = tunnelKey(hostId, this.#opts.serverId);
    try {
      if (this.#hosts.has(hostId)) await this.#opts.backend.put(key, '{}', { lease: lease.id });
      else await this.#opts.backend.delete(key);
    } catch (err) {
      // A lease that expired meanwhile is granted again by the keep-alive, which writes every record.
      this.#opts.log(
        JSON.stringify({ level: 'warn', msg: `proxy peering: the tunnel record of agent ${hostId} could not be written: ${(err as Error).message}` }),
      );
    }
  }
}
