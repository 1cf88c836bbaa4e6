import { ApiError } from '../../api/errors.ts';

/**
 * What one agent may hold open at the server at once. A discovery agent holds one lease (its
 * leadership claim; a new one after a store hiccup, the old one lapsing within its TTL) and a
 * Kubernetes agent one watch (kube_cluster); 16 of each leaves room for restarts and reconnects
 * while an agent flooding grants or watches is refused instead of filling the store and memory.
 */
export const MAX_LEASES_PER_AGENT = 16;
export const MAX_WATCHES_PER_AGENT = 16;

/**
 * Refuses a grant when the agent already holds MAX_LEASES_PER_AGENT live leases (`held`, counted
 * in the store by agent-leases.ts, so the bound holds across servers).
 */
export function leaseRoomLeft(hostId: string, held: number): void {
  if (held >= MAX_LEASES_PER_AGENT) {
    throw new ApiError(
      'too_many_leases',
      `agent ${hostId} already holds ${held} leases, the most one agent may: revoke one (or let it lapse) before asking for another`,
    );
  }
}

/**
 * Open watches per agent, in this process: a watch is a stream held open on one server, so it is
 * bounded where it costs (that server's memory); an agent spreading watches over N servers holds
 * at most N times this, one bound per server (README, "Several servers").
 */
/** Open watches per agent. */
export class WatchCount {
  readonly #open = new Map<string, number>();

  /** Counts a watch in, or refuses it; the returned function counts it out (once). */
  enter(hostId: string): () => void {
    const open = this.#open.get(hostId) ?? 0;
    if (open >= MAX_WATCHES_PER_AGENT) {
      throw new ApiError('too_many_watches', `agent ${hostId} already holds ${open} watches open, the most one agent may: close one before opening another`);
    }
    this.#open.set(hostId, open + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const now = (this.#open.get(hostId) ?? 1) - 1;
      if (now > 0) this.#open.set(hostId, now);
      else this.#open.delete(hostId);
    };
  }
}
