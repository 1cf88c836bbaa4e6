// Two servers' person records on one real etcd (src/server/cache/person-records.ts): a lock, a role edit and
// a removal made through one server count at its very next call and reach the other's records (and
// its sessions, by the change it is told of) within a second, with no store read per call.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend } from '../../src/backend/backend.ts';
import { EtcdBackend } from '../../src/backend/etcd.ts';
import { addUser, lockUser, removeUser, unlockUser } from '../../src/people/users.ts';
import { ROLE } from '../../src/resources/role.ts';
import { upsertResource } from '../../src/resources/store.ts';
import type { PersonCaller } from '../../src/server/call/caller.ts';
import { ObservedBackend } from '../../src/server/cache/observed-backend.ts';
import { PeopleRoutes, asRefusal } from '../../src/server/auth/people-routes.ts';
import { PersonRecords, type RecordChange } from '../../src/server/cache/person-records.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { havePeer } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

let etcd: EtcdCluster | undefined;
before(async (t) => {
  if (havePeer(t as never, 'etcd', [BINARIES.etcd()])) etcd = await startEtcd({ members: 1 });
});
after(() => etcd?.stop());

async function server(prefix: string) {
  const store = await EtcdBackend.connect({ type: 'etcd', peers: etcd!.endpoints, prefix });
  let reads = 0;
  const counted = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'get' || prop === 'list' || prop === 'snapshot')
        return (...args: unknown[]) => (reads++, (value as (...a: unknown[]) => unknown).apply(target, args));
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  }) as Backend;
  const hub = new WatchHub(counted);
  const backend = new ObservedBackend(counted, hub);
  const records = new PersonRecords({ backend, hub, configRoles: [] });
  const people = new PeopleRoutes({
    backend,
    records,
    configRoles: [],
    now: () => new Date(),
    sealKey: randomBytes(32),
    authorities: undefined as never,
    audit: undefined as never,
  });
  const changes: RecordChange[] = [];
  records.onChange((c) => changes.push(c));
  return { backend, people, changes, reads: () => reads, close: async () => (records.close(), hub.close(), await store.close()) };
}

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'allowed',
    (err) => asRefusal(err)?.code ?? `error: ${(err as Error).message}`,
  );

/** Polls `check` until it holds or a second has passed: the bound the design promises for another server's write. */
async function withinASecond(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 1000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within a second`);
    await sleep(5);
  }
}

test("etcd: a lock, a role edit and a removal made through server A count at A's next call and at B within a second; B is told whose records changed; no store read per call", async (t) => {
  if (!etcd) return t.skip('no etcd peer');
  const prefix = `/records-${randomUUID()}`;
  const a = await server(prefix);
  const b = await server(prefix);
  try {
    await upsertResource(a.backend, { kind: ROLE, version: 'v7', metadata: { name: 'dev' }, spec: { allow: { kubernetes_labels: { env: 'dev' } } } } as never);
    await addUser(a.backend, { name: 'dee', roles: ['dev'] }, new Date());
    const uid = JSON.parse((await a.backend.get('/resources/user/dee'))!.value).spec.uid as string;
    const dee: PersonCaller = { person: 'dee', roles: ['dev'], uid, keyHash: 'k', notAfter: Date.now() + 3_600_000, notBefore: 0 };
    assert.equal(await outcome(a.people.person(dee)), 'allowed');
    await withinASecond('the new user at B', async () => (await outcome(b.people.person(dee))) === 'allowed');
    const [readsA, readsB] = [a.reads(), b.reads()];
    for (let i = 0; i < 50; i++) await Promise.all([a.people.person(dee), b.people.person(dee)]);
    assert.deepEqual([a.reads() - readsA, b.reads() - readsB], [0, 0], 'no store read in 50 calls at either server');

    b.changes.length = 0;
    await lockUser(a.backend, { name: 'dee' }, new Date());
    assert.equal(await outcome(a.people.person(dee)), 'user_locked', 'A: at the very next call');
    await withinASecond('the lock at B', async () => (await outcome(b.people.person(dee))) === 'user_locked');
    assert.ok(
      b.changes.some((c) => c.kind === 'lock' && c.names.includes('dee')),
      'B was told: its sessions of dee are checked again',
    );

    await unlockUser(a.backend, 'dee', new Date());
    await withinASecond('the unlock at B', async () => (await outcome(b.people.person(dee))) === 'allowed');

    await upsertResource(a.backend, {
      kind: ROLE,
      version: 'v7',
      metadata: { name: 'dev' },
      spec: { allow: { kubernetes_labels: { env: 'staging' } } },
    } as never);
    assert.equal((await a.people.person(dee)).roles.kubeAccess({ env: 'dev' }), undefined, 'A: the edit at the next call');
    await withinASecond('the role edit at B', async () => (await b.people.person(dee)).roles.kubeAccess({ env: 'dev' }) === undefined);

    await removeUser(a.backend, 'dee');
    assert.equal(await outcome(a.people.person(dee)), 'user_removed');
    await withinASecond('the removal at B', async () => (await outcome(b.people.person(dee))) === 'user_removed');
  } finally {
    await a.close();
    await b.close();
  }
});
