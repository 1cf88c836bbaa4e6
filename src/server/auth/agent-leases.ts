// The leases agents hold, recorded in the store so that any server keeps them alive, revokes them or
// attaches keys to them: a discovery agent's leadership survives the death of the server that
// granted its lease (its next keep-alive reaches another server through the load balancer).
import { ApiError } from '../../api/errors.ts';
import type { Backend } from '../../backend/backend.ts';
import { leaseRoomLeft } from './agent-limits.ts';

/**
 * `/leases/agents/<host id>/<lease id>` -> the TTL it was granted with, written on that very lease, so
 * the record vanishes with the lease (expired or revoked) and needs no sweeping. The holder is in the
 * key, so one read answers "does this agent hold this lease", and a list of its prefix counts them.
 * Agents cannot reach it: it is no resource kind, and the gate refuses keys outside those.
 */
const PREFIX = '/leases/agents/';
const holderPrefix = (hostId: string) => `${PREFIX}${hostId}/`;
const holderKey = (hostId: string, id: string) => `${holderPrefix(hostId)}${id}`;

export class AgentLeases {
  readonly #backend: Backend;

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /**
   * A new lease for this agent, within MAX_LEASES_PER_AGENT counted in the store. Written first and
   * counted after: two grants racing on two servers both see the other, so at worst both are refused
   * (and revoked), never both let past the bound.
   */
  async grant(hostId: string, ttlMs: number): Promise<{ id: string; ttlMs: number }> {
    leaseRoomLeft(hostId, await this.#count(hostId));
    const lease = await this.#backend.grantLease(ttlMs);
    try {
      await this.#backend.put(holderKey(hostId, lease.id), String(lease.ttlMs), { lease: lease.id });
      leaseRoomLeft(hostId, (await this.#count(hostId)) - 1);
    } catch (err) {
      await lease.revoke();
      throw err;
    }
    return { id: lease.id, ttlMs: lease.ttlMs };
  }

  /** False when the lease lapsed or is not this agent's: either way there is nothing of its to extend. */
  async keepAlive(hostId: string, id: string): Promise<boolean> {
    const ttlMs = await this.#held(hostId, id);
    if (ttlMs === undefined) return false;
    return this.#backend.leaseById(id, ttlMs).keepAlive();
  }

  /** Revokes it when it is this agent's; another agent's lease is left alone, without saying it exists. */
  async revoke(hostId: string, id: string): Promise<void> {
    const ttlMs = await this.#held(hostId, id);
    if (ttlMs !== undefined) await this.#backend.leaseById(id, ttlMs).revoke();
  }

  /** The lease id, when this agent holds it (what it may attach keys to); lease_expired otherwise. */
  async own(hostId: string, id: string): Promise<string> {
    if ((await this.#held(hostId, id)) === undefined) throw new ApiError('lease_expired', `lease ${id} has expired`);
    return id;
  }

  async #held(hostId: string, id: string): Promise<number | undefined> {
    // A lease id is etcd's decimal or a store's UUID; anything else (a '/' to reach another agent's key) names nothing.
    if (!/^[0-9A-Za-z-]{1,64}$/.test(id)) return undefined;
    const item = await this.#backend.get(holderKey(hostId, id));
    const ttlMs = Number(item?.value);
    return item && Number.isSafeInteger(ttlMs) && ttlMs > 0 ? ttlMs : undefined;
  }

  async #count(hostId: string): Promise<number> {
    return (await this.#backend.list(holderPrefix(hostId))).length;
  }
}
