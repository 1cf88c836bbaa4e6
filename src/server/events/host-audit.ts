// Changes made on the server host (`kport ... -c server.yaml`, or any run on a local store) are
// audited as a person's changes through the server are: one event per write, naming who made it.
// Through the server, /v1/backend records `user.call` for every write of a person; here the same
// event names the OS user, so `kport get audit` tells the whole story whoever changed the store.
import { userInfo } from 'node:os';
import type { Backend, Item, TxnOp, WriteOptions } from '../../backend/backend.ts';
import type { Actor } from '../../people/actor.ts';
import { ServerAudit } from './audit.ts';

/** The OS user running this command, as events name them: `alice (server host)`. */
export function hostUser(): string {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    // A uid with no passwd entry (a container run as an arbitrary uid) still acts: name the uid.
    name = `uid ${process.getuid?.() ?? '?'}`;
  }
  return `${name} (server host)`;
}

export interface HostStore {
  /** The store itself: for services that record their own, more telling events (users, agents rm). */
  raw: Backend;
  /** The store whose every write is recorded as `actor`'s. */
  audited: Backend;
  /** The OS user, with the audit trail their events go to. */
  actor: Required<Actor>;
}

export function hostStore(raw: Backend, opts: { retentionMs?: number; log: (line: string) => void; now: () => Date }): HostStore {
  const audit = new ServerAudit(raw, opts);
  const actor = { audit, user: hostUser(), remote_addr: 'local' };
  return { raw, audited: auditedStore(raw, actor), actor };
}

/**
 * `backend` with each write that changed something recorded after it, as a `user.call` of `actor`
 * with the operation and key (`put /resources/role/dev`). The events go to the store underneath,
 * never through this wrapper, so recording one is not itself recorded.
 */
export function auditedStore(backend: Backend, actor: Required<Actor>): Backend {
  const record = (op: string, key: string) =>
    actor.audit.record({ type: 'user.call', outcome: 'allowed', user: actor.user, action: `${op} ${key}`, remote_addr: actor.remote_addr });
  const after = async <T>(op: string, key: string, write: Promise<T>): Promise<T> => {
    const done = await write;
    if (done) await record(op, key);
    return done;
  };
  return {
    kind: backend.kind,
    get: (key) => backend.get(key),
    list: (prefix) => backend.list(prefix),
    snapshot: (prefix) => backend.snapshot(prefix),
    ...(backend.foreignVersion && { foreignVersion: () => backend.foreignVersion?.() }),
    watch: (...args) => backend.watch(...args),
    grantLease: (ttlMs) => backend.grantLease(ttlMs),
    leaseById: (id, ttlMs) => backend.leaseById(id, ttlMs),
    close: () => backend.close(),
    put: (key, value, opts?: WriteOptions) => after<Item>('put', key, backend.put(key, value, opts)),
    create: (key, value, opts) => after('create', key, backend.create(key, value, opts)),
    compareAndSwap: (key, value, revision, opts) => after('cas', key, backend.compareAndSwap(key, value, revision, opts)),
    delete: (key, revision, opts) => after('delete', key, backend.delete(key, revision, opts)),
    transact: async (ops: TxnOp[]) => {
      const done = await backend.transact(ops);
      if (done) for (const op of ops.filter((o) => !o.checkOnly)) await record(op.value === undefined ? 'delete' : 'put', op.key);
      return done;
    },
  };
}
