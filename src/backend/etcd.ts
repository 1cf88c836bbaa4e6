import { readFileSync } from 'node:fs';
import type { Etcd3, IKeyValue, Namespace } from 'etcd3';
import type { StorageConfig } from './storage-config.ts';
import { ExternalError } from '../core/errors.ts';
import {
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
} from './backend.ts';

type EtcdStorage = Extract<StorageConfig, { type: 'etcd' }>;

const LIST_PAGE = 2000;

/**
 * The distributed backend: etcd's mod revisions are the revisions, transactions give
 * compare-and-swap, leases give TTLs and leadership, and watches are native.
 */
export class EtcdBackend implements Backend {
  readonly kind = 'etcd';
  readonly #client: Etcd3;
  readonly #ns: Namespace;

  private constructor(client: Etcd3, ns: Namespace) {
    this.#client = client;
    this.#ns = ns;
  }

  static async connect(storage: EtcdStorage, opts: { timeoutMs?: number } = {}): Promise<EtcdBackend> {
    const { Etcd3 } = await import('etcd3');
    const tls = storage.tls;
    const client = new Etcd3({
      hosts: storage.peers,
      ...(tls?.ca_file && {
        credentials: {
          rootCertificate: readFileSync(tls.ca_file),
          ...(tls.key_file && { privateKey: readFileSync(tls.key_file) }),
          ...(tls.cert_file && { certChain: readFileSync(tls.cert_file) }),
        },
      }),
      ...(storage.username && { auth: { username: storage.username, password: storage.password ?? '' } }),
      dialTimeout: opts.timeoutMs ?? 5000,
    });
    const backend = new EtcdBackend(client, client.namespace(storage.prefix.endsWith('/') ? storage.prefix.slice(0, -1) : storage.prefix));
    try {
      await client.maintenance.status();
    } catch (err) {
      client.close();
      throw new ExternalError(
        'etcd Status',
        `Cannot reach etcd at ${storage.peers.join(', ')} (${grpcReason(err)}): check teleport.storage.peers and that etcd is running.`,
        1,
        { cause: err },
      );
    }
    return backend;
  }

  async get(key: string): Promise<Item | undefined> {
    const res = await this.#ns.get(key).exec();
    // A single-key read answers with the namespaced key (lists and watches strip it): name it as asked.
    return res.kvs[0] && { ...toItem(res.kvs[0]), key };
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    const lease = await this.#leaseFor(opts);
    if (opts?.fence) {
      const res = await this.#fenced(
        opts.fence,
        [],
        this.#ns
          .put(key)
          .value(value)
          .lease(lease ?? 0),
        opts,
      );
      return { key, value, revision: Number(res.header.revision), ...(lease && { lease }) };
    }
    const res = await this.#ns
      .put(key)
      .value(value)
      .lease(lease ?? 0)
      .exec()
      .catch((err) => leaseError(err, opts));
    return { key, value, revision: Number(res.header.revision), ...(lease && { lease }) };
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#txn(key, 'Create', 0, value, opts);
  }

  async compareAndSwap(key: string, value: string, revision: number, opts?: WriteOptions): Promise<Item | undefined> {
    return this.#txn(key, 'Mod', revision, value, opts);
  }

  async delete(key: string, revision?: number, opts?: Pick<WriteOptions, 'fence'>): Promise<boolean> {
    const conditions: Condition[] = revision === undefined ? [] : [[key, 'Mod', revision]];
    if (opts?.fence) {
      const res = await this.#fenced(opts.fence, conditions, this.#ns.delete().key(key), opts).catch((err) => {
        if (err instanceof ConditionFailed) return undefined;
        throw err;
      });
      return res !== undefined && Number(res.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
    }
    if (revision === undefined) return Number((await this.#ns.delete().key(key).exec()).deleted) > 0;
    const res = await this.#ns.if(key, 'Mod', '==', revision).then(this.#ns.delete().key(key)).commit();
    return res.succeeded;
  }

  async list(prefix: string): Promise<Item[]> {
    return (await this.snapshot(prefix)).items;
  }

  /**
   * Paged, so a large inventory never exceeds gRPC's message limit; sorted by key as etcd stores
   * them. Every page is read at the first page's revision, so the pages are one state of the store
   * and that revision is the snapshot's (a watch event above it is newer than every item here).
   */
  async snapshot(prefix: string): Promise<Snapshot> {
    const { Range } = await import('etcd3');
    const end = Range.prefix(prefix).end;
    const items: Item[] = [];
    let from = Buffer.from(prefix);
    let revision: string | undefined;
    for (;;) {
      const range = this.#ns.getAll().inRange(new Range(from, end)).limit(LIST_PAGE);
      const res = await (revision === undefined ? range : range.revision(revision)).exec();
      revision ??= res.header.revision;
      items.push(...res.kvs.map(toItem));
      if (!res.more || res.kvs.length === 0) return { items, revision: Number(revision) };
      from = Buffer.concat([res.kvs.at(-1)!.key, Buffer.from([0])]);
    }
  }

  async *watch(prefix: string, signal: AbortSignal, opened?: () => void): AsyncIterable<WatchEvent> {
    const watcher = await this.#ns.watch().prefix(prefix).create();
    const queue: WatchEvent[] = [];
    let wake: (() => void) | undefined;
    let failed: Error | undefined;
    const push = (event: WatchEvent) => {
      queue.push(event);
      wake?.();
    };
    const ns = (key: Buffer) => key.toString();
    watcher.on('put', (kv) => push({ type: 'put', item: toItem(kv) }));
    // A delete's kv carries the revision of the delete as its mod_revision.
    watcher.on('delete', (kv) => push({ type: 'delete', key: ns(kv.key), revision: Number(kv.mod_revision) }));
    // etcd cancelled the watch (its start compacted away, say), or the connection to it broke: the
    // feed ends with the reason, so its owner knows it may miss writes (a cache then reads the store
    // until a new watch is in place and it relisted) instead of trusting a watch that reports nothing.
    const fail = (err: Error) => {
      failed ??= err;
      wake?.();
    };
    let cancelled = false;
    watcher.on('error', (err) => {
      cancelled = true;
      fail(err);
    });
    watcher.on('disconnected', fail);
    opened?.();
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        const event = queue.shift();
        if (event) yield event;
        else if (failed) throw failed;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      // One etcd cancelled is gone already: cancelling it again would wait for an end that never comes.
      if (!cancelled) await watcher.cancel();
    }
  }

  async transact(ops: TxnOp[]): Promise<boolean> {
    if (ops.length === 0) return true;
    const leases = await Promise.all(
      ops.map((op) => (!op.checkOnly && op.value !== undefined && op.ttlMs !== undefined ? this.grantLease(op.ttlMs).then((l) => l.id) : undefined)),
    );
    let txn = this.#ns.if(ops[0]!.key, ops[0]!.revision === 0 ? 'Create' : 'Mod', '==', ops[0]!.revision);
    for (const op of ops.slice(1)) txn = txn.and(op.key, op.revision === 0 ? 'Create' : 'Mod', '==', op.revision);
    const writes = ops.flatMap((op, i) =>
      op.checkOnly
        ? []
        : [
            op.value === undefined
              ? this.#ns.delete().key(op.key)
              : this.#ns
                  .put(op.key)
                  .value(op.value)
                  .lease(leases[i] ?? 0),
          ],
    );
    return (await txn.then(...writes).commit()).succeeded;
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    const granted = await this.#ns.leaseClient.leaseGrant({ TTL: Math.max(1, Math.ceil(ttlMs / 1000)) });
    return this.leaseById(granted.ID, ttlMs);
  }

  /**
   * Straight on etcd's Lease service (etcd3's Lease class only wraps a lease it granted itself): a
   * keep-alive is one request on a LeaseKeepAlive stream, answered with the TTL left (0: gone), and
   * a revoke deletes the lease's keys. Neither is a revision: leases live beside the key space.
   */
  leaseById(id: string, ttlMs: number): Lease {
    const leases = this.#ns.leaseClient;
    return {
      id,
      ttlMs,
      keepAlive: async () => {
        try {
          const stream = await leases.leaseKeepAlive();
          try {
            const res = await new Promise<{ TTL: string }>((resolve, reject) => {
              stream.on('data', resolve);
              stream.on('error', reject);
              stream.write({ ID: id });
            });
            return Number(res.TTL) > 0;
          } finally {
            stream.end();
          }
        } catch {
          return false;
        }
      },
      revoke: async () => {
        await leases.leaseRevoke({ ID: id }).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.#client.close();
  }

  async #leaseFor(opts: WriteOptions | undefined): Promise<string | undefined> {
    if (opts?.lease) return opts.lease;
    if (opts?.ttlMs === undefined) return undefined;
    return (await this.grantLease(opts.ttlMs)).id;
  }

  /**
   * One transaction: the write happens only if the fence key still holds our claim and every
   * condition holds. A failed fence is FencedOutError; a failed condition is ConditionFailed.
   */
  async #fenced(fence: Fence, conditions: Condition[], op: Parameters<ReturnType<Namespace['if']>['then']>[0], opts: Pick<WriteOptions, 'fence' | 'lease'>) {
    let txn = this.#ns.if(fence.key, 'Value', '==', fence.value);
    for (const [key, target, value] of conditions) txn = txn.and(key, target, '==', value);
    const res = await txn
      .then(op)
      .else(this.#ns.get(fence.key))
      .commit()
      .catch((err) => leaseError(err, opts));
    if (res.succeeded) return res;
    const holder = res.responses[0]?.response_range?.kvs?.[0]?.value?.toString();
    if (holder !== fence.value) throw new FencedOutError(fence);
    throw new ConditionFailed();
  }

  async #txn(key: string, target: 'Create' | 'Mod', revision: number, value: string, opts?: WriteOptions): Promise<Item | undefined> {
    const lease = await this.#leaseFor(opts);
    if (opts?.fence) {
      try {
        const res = await this.#fenced(
          opts.fence,
          [[key, target, revision]],
          this.#ns
            .put(key)
            .value(value)
            .lease(lease ?? 0),
          opts,
        );
        return { key, value, revision: Number(res.header.revision), ...(lease && { lease }) };
      } catch (err) {
        if (err instanceof ConditionFailed) return undefined;
        throw err;
      }
    }
    const res = await this.#ns
      .if(key, target, '==', revision)
      .then(
        this.#ns
          .put(key)
          .value(value)
          .lease(lease ?? 0),
      )
      .commit()
      .catch((err) => leaseError(err, opts));
    return res.succeeded ? { key, value, revision: Number(res.header.revision), ...(lease && { lease }) } : undefined;
  }
}

/** gRPC's "14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED ..." in a few words. */
function grpcReason(err: unknown): string {
  const message = (err as Error).message ?? String(err);
  return message.match(/Last error: (?:Error: )?(.*?)(?:\. Resolution note.*)?$/s)?.[1]?.trim() ?? message.replace(/^\d+ [A-Z_]+: /, '');
}

type Condition = [key: string, target: 'Create' | 'Mod', value: number];

class ConditionFailed extends Error {}

function leaseError(err: unknown, opts: WriteOptions | undefined): never {
  if (opts?.lease && /lease not found/i.test((err as Error).message)) throw new LeaseExpiredError(opts.lease);
  throw err;
}

function toItem(kv: IKeyValue): Item {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    revision: Number(kv.mod_revision),
    ...(kv.lease && kv.lease !== '0' && { lease: String(kv.lease) }),
  };
}
