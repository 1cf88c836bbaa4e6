import { AGENT_VALUE_BYTES } from '../../resources/heartbeat-limits.ts';
import { ApiError } from '../../api/errors.ts';
import { KUBE_CLUSTER } from '../../resources/kube-cluster.ts';
import { kindPrefix } from '../../resources/resource.ts';
import type { BackendCall } from './backend-call.ts';

/**
 * What one agent may write a minute, cluster records aside: 300 writes and 1 MiB, as a burst and
 * then refilled evenly. A discovery agent at the shortest poll (2 s) writes its heartbeat about
 * 90 times a minute (every second, and at each poll and change of state) and its leadership claim
 * at most once a lease TTL; a Kubernetes agent its heartbeat every 30 s and after inventory
 * changes: all well under. The kube_cluster writes of a group's fenced leader are not counted: a
 * first poll of 1,000 clusters writes 1,000 records at once, and each is replaced in place, its
 * history bounded by the store (sqlite.ts); only the group's current leader can make them.
 * Kept in this server's memory: it bounds the writes this server makes for the agent, so an agent
 * spreading its calls over N servers has N budgets (README, "Several servers").
 */
export const WRITE_BUDGET = { writes: 300, bytes: 1 << 20, periodMs: 60_000 } as const;

const CLUSTERS = kindPrefix(KUBE_CLUSTER);

interface Bucket {
  writes: number;
  bytes: number;
  at: number;
}

export class WriteBudget {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Refuses a value over AGENT_VALUE_BYTES (413), then a write past the agent's budget (429); takes its share otherwise. */
  charge(hostId: string, call: BackendCall): void {
    if (!('value' in call)) return;
    const size = Buffer.byteLength(call.value);
    if (size > AGENT_VALUE_BYTES) throw new ApiError('too_large', `a value an agent writes is at most ${AGENT_VALUE_BYTES} bytes (this one has ${size})`);
    if (call.key.startsWith(CLUSTERS)) return;
    const now = this.#now();
    if (this.#buckets.size > 10_000) this.#forgetFull(now);
    const bucket = this.#refill(this.#buckets.get(hostId) ?? { writes: WRITE_BUDGET.writes, bytes: WRITE_BUDGET.bytes, at: now }, now);
    this.#buckets.set(hostId, bucket);
    if (bucket.writes < 1 || bucket.bytes < size) {
      const wait = Math.ceil((Math.max((1 - bucket.writes) / WRITE_BUDGET.writes, (size - bucket.bytes) / WRITE_BUDGET.bytes) * WRITE_BUDGET.periodMs) / 1000);
      throw new ApiError(
        'write_budget',
        `agent ${hostId} wrote more than ${WRITE_BUDGET.writes} values or ${WRITE_BUDGET.bytes >> 20} MiB in the last minute: try again in ${Math.max(1, wait)} s`,
      );
    }
    bucket.writes -= 1;
    bucket.bytes -= size;
  }

  #refill(bucket: Bucket, now: number): Bucket {
    const share = Math.max(0, now - bucket.at) / WRITE_BUDGET.periodMs;
    return {
      writes: Math.min(WRITE_BUDGET.writes, bucket.writes + share * WRITE_BUDGET.writes),
      bytes: Math.min(WRITE_BUDGET.bytes, bucket.bytes + share * WRITE_BUDGET.bytes),
      at: now,
    };
  }

  #forgetFull(now: number): void {
    for (const [hostId, bucket] of this.#buckets) {
      const full = this.#refill(bucket, now);
      if (full.writes >= WRITE_BUDGET.writes && full.bytes >= WRITE_BUDGET.bytes) this.#buckets.delete(hostId);
    }
  }
}
