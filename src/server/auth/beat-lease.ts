// How the server stores a Kubernetes agent's kube_server heartbeat so that 10,000 agents beating
// every 30 s do not write the store 333 times a second (etcd's users hit timeouts at 30-60k
// heartbeats a minute): the record lives on a lease, and a heartbeat that says what the record
// already says only keeps that lease alive, which in etcd is no revision (leases live beside the
// key space). The record is rewritten when what it says changes, and at least every
// RECORD_REFRESH_MS, so its last_heartbeat (the server's time of that write) is never older than
// that while it exists; it vanishes one TTL (three intervals) after the agent's last heartbeat.
import type { Backend, Item } from '../../backend/backend.ts';
import type { KubeServer } from '../../resources/kube-server.ts';

/** The longest a stored record goes without a rewrite while its agent beats unchanged (kport get kube_server's Last Heartbeat). */
export const RECORD_REFRESH_MS = 10 * 60_000;

/**
 * Stores `value` (a kube_server heartbeat the policy let through) at `key`, living `ttlMs` after
 * the agent's last heartbeat. The stored record carries no metadata.expires: it exists exactly
 * while its lease lives, which its heartbeats extend. Undefined when another write came between
 * the read of `current` and this one (the agent's next heartbeat tries again).
 */
export async function storeHeartbeat(
  backend: Backend,
  key: string,
  value: string,
  ttlMs: number,
  current: Item | undefined,
  now: number,
): Promise<Item | undefined> {
  const beat = JSON.parse(value) as KubeServer;
  const { expires: _expires, ...metadata } = beat.metadata;
  // The server's clock, not the agent's: what `kport get kube_server` shows, and what the refresh is timed by.
  const next: KubeServer = { ...beat, metadata, spec: { ...beat.spec, last_heartbeat: new Date(now).toISOString() } };
  const held = current?.lease ? backend.leaseById(current.lease, ttlMs) : undefined;
  const alive = held ? await held.keepAlive() : false;
  if (alive && current && unchanged(current.value, next, now)) return current;
  const lease = alive && held ? held.id : (await backend.grantLease(ttlMs)).id;
  const stored = JSON.stringify(next);
  return current ? backend.compareAndSwap(key, stored, current.revision, { lease }) : backend.create(key, stored, { lease });
}

/** Whether the stored record says what `next` says, but for its time, and was written less than RECORD_REFRESH_MS ago. */
function unchanged(stored: string, next: KubeServer, now: number): boolean {
  let before: KubeServer;
  try {
    before = JSON.parse(stored) as KubeServer;
  } catch {
    return false;
  }
  const written = Date.parse(before.spec?.last_heartbeat ?? '');
  if (!(now - written < RECORD_REFRESH_MS)) return false;
  const timeless = (b: KubeServer) => JSON.stringify({ ...b, metadata: { ...b.metadata, expires: undefined }, spec: { ...b.spec, last_heartbeat: undefined } });
  return timeless(before) === timeless(next);
}
