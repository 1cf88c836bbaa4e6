import {
  AccessDeniedError,
  FencedOutError,
  LeaseExpiredError,
  type Backend,
  type Fence,
  type Item,
  type Lease,
  type Snapshot,
  type TxnOp,
  type WatchEvent,
  type WriteOptions,
} from '../backend/backend.ts';
import { ApiError } from '../api/errors.ts';
import { routes } from '../api/routes.ts';
import type { BackendCallBody } from '../api/wire.ts';
import { decodeAnswer, retrying, type OutageLog, type ServerClient } from './server-client.ts';

/**
 * The Backend an agent holds in network mode (docs/architecture.md §9): every call goes to the server, which
 * authorises it by the agent's certificate, so the discovery engine, leadership and heartbeats run
 * unchanged. A dropped connection is retried (the compare-and-swap semantics make a repeated write
 * harmless); a refusal stops the agent.
 */
export class RemoteBackend implements Backend {
  readonly kind = 'remote';
  readonly #client: ServerClient;
  readonly #stopRetrying: AbortSignal;
  readonly #onDenied: (err: AccessDeniedError) => AccessDeniedError;
  readonly #outage?: OutageLog;

  constructor(client: ServerClient, opts: { stopRetrying: AbortSignal; onDenied?: (err: AccessDeniedError) => AccessDeniedError; outage?: OutageLog }) {
    this.#client = client;
    this.#stopRetrying = opts.stopRetrying;
    this.#outage = opts.outage;
    this.#onDenied = opts.onDenied ?? ((err) => err);
  }

  async get(key: string): Promise<Item | undefined> {
    return (await this.#call({ op: 'get', key })).item ?? undefined;
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    // The server writes over exactly the value it authorised: another writer in between makes it try again.
    for (let attempt = 1; ; attempt++) {
      const { item } = await this.#call({ op: 'put', key, value, ...wire(opts) }, opts?.fence);
      if (item) return item;
      if (attempt >= 5) throw new Error(`${key} kept changing under this write; will retry`);
    }
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    return (await this.#call({ op: 'create', key, value, ...wire(opts) }, opts?.fence)).item ?? undefined;
  }

  async compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined> {
    return (await this.#call({ op: 'cas', key, value, revision, ...wire(opts) }, opts?.fence)).item ?? undefined;
  }

  async delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean> {
    return (
      (await this.#call({ op: 'delete', key, ...(revision !== undefined && { revision }), ...(opts?.fence && { fence: opts.fence }) }, opts?.fence)).deleted ===
      true
    );
  }

  async list(prefix: string): Promise<Item[]> {
    return (await this.snapshot(prefix)).items;
  }

  /** The items the server lets this agent see, at the store revision the server listed them at. */
  async snapshot(prefix: string): Promise<Snapshot> {
    const { items, revision } = await this.#call({ op: 'list', prefix });
    return { items: items ?? [], revision: revision ?? 0 };
  }

  async *watch(prefix: string, signal: AbortSignal): AsyncIterable<WatchEvent> {
    try {
      for await (const line of this.#client.lines(routes.watch, { op: 'watch', prefix }, signal))
        yield decodeAnswer(this.#client.address, routes.watch, JSON.parse(line)) as WatchEvent;
    } catch (err) {
      throw this.#translate(err);
    }
  }

  async transact(_ops: TxnOp[]): Promise<boolean> {
    throw new AccessDeniedError('forbidden', 'agents do not run transactions: the server does');
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    const { lease } = await this.#call({ op: 'grant', ttl_ms: ttlMs });
    if (!lease) throw new Error('the server answered a lease grant without a lease');
    return this.leaseById(lease.id, lease.ttl_ms);
  }

  leaseById(id: string, ttlMs: number): Lease {
    return {
      id,
      ttlMs,
      keepAlive: async () => (await this.#call({ op: 'keepalive', lease: id })).alive === true,
      revoke: async () => void (await this.#call({ op: 'revoke', lease: id })),
    };
  }

  async close(): Promise<void> {
    this.#client.close();
  }

  async #call(body: BackendCallBody, fence?: Fence) {
    try {
      return await retrying(() => this.#client.call(routes.backend, body), this.#stopRetrying, this.#outage, this.#client.address);
    } catch (err) {
      throw this.#translate(err, fence, 'lease' in body ? body.lease : undefined);
    }
  }

  #translate(err: unknown, fence?: Fence, lease?: string): unknown {
    if (!(err instanceof ApiError)) return err;
    if (err.code === 'fenced_out' && fence) return new FencedOutError(fence);
    if (err.code === 'lease_expired') return new LeaseExpiredError(lease ?? '?');
    return this.#onDenied(new AccessDeniedError(err.code, err.message));
  }
}

function wire(opts: WriteOptions | undefined): Record<string, unknown> {
  return {
    ...(opts?.ttlMs !== undefined && { ttl_ms: opts.ttlMs }),
    ...(opts?.lease && { lease: opts.lease }),
    ...(opts?.fence && { fence: opts.fence }),
  };
}
