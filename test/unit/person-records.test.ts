// The per-call check of a person answered from the records a watch keeps (src/server/cache/person-records.ts):
// no store read per call, and every lock, removal and role change still counts at once: the
// server's own writes at the very next call, another process's on SQLite too, and a watch event
// never reaches a person before the records are at least as new as it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { Backend, WatchEvent } from '../../src/backend/backend.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser, lockUser, removeUser, unlockUser } from '../../src/people/users.ts';
import { ROLE } from '../../src/resources/role.ts';
import { upsertResource } from '../../src/resources/store.ts';
import type { PersonCaller } from '../../src/server/call/caller.ts';
import { ObservedBackend } from '../../src/server/cache/observed-backend.ts';
import { PeopleRoutes, asRefusal } from '../../src/server/auth/people-routes.ts';
import { PersonRecords } from '../../src/server/cache/person-records.ts';
import { WatchCache } from '../../src/server/cache/watch-cache.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';

/** The backend with its reads counted: what a person's call costs the store. */
function counted(inner: Backend): { backend: Backend; reads: () => number } {
  let reads = 0;
  const backend = new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'get' || prop === 'list' || prop === 'snapshot')
        return (...args: unknown[]) => (reads++, (value as (...a: unknown[]) => unknown).apply(target, args));
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { backend, reads: () => reads };
}

/** The server's side: its hub, its records, its people routes, all over `store` (writes through `server`). */
function serverOver(store: Backend) {
  const hub = new WatchHub(store);
  const server = new ObservedBackend(store, hub);
  const records = new PersonRecords({ backend: server, hub, configRoles: [] });
  const people = new PeopleRoutes({
    backend: server,
    records,
    configRoles: [],
    now: () => new Date(),
    sealKey: randomBytes(32),
    authorities: undefined as never,
    audit: undefined as never,
  });
  return { hub, server, records, people, close: () => (records.close(), hub.close()) };
}

async function callerFor(backend: Backend, name: string, roles: string[]): Promise<PersonCaller> {
  await addUser(backend, { name, roles }, new Date());
  const item = await backend.get(`/resources/user/${name}`);
  const uid = JSON.parse(item!.value).spec.uid as string;
  return { person: name, roles, uid, keyHash: 'k', notAfter: Date.now() + 3_600_000, notBefore: 0 };
}

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => 'allowed',
    (err) => asRefusal(err)?.code ?? `error: ${(err as Error).message}`,
  );
const devRole = (env: string) =>
  ({ kind: ROLE, version: 'v7', metadata: { name: 'dev' }, spec: { allow: { kubernetes_labels: { env }, kubernetes_groups: ['developers'] } } }) as never;

test("a person's calls read nothing from the store once the records are loaded; a lock, a role edit and a removal made through the server count at the very next call", async () => {
  const { backend: store, reads } = counted(new MemoryBackend());
  const s = serverOver(store);
  try {
    await upsertResource(s.server, devRole('dev'));
    const ann = await callerFor(s.server, 'ann', ['dev']);
    await s.people.person(ann);
    const before = reads();
    for (let i = 0; i < 100; i++) await s.people.person(ann);
    assert.equal(reads() - before, 0, 'no store read in 100 calls');

    await lockUser(s.server, { name: 'ann', message: 'on leave' }, new Date());
    const written = reads();
    assert.equal(await refusal(s.people.person(ann)), 'user_locked');
    assert.equal(reads() - written, 0, 'a put through the server is taken as the store answered it: no list');
    await unlockUser(s.server, 'ann', new Date());
    assert.equal(await refusal(s.people.person(ann)), 'allowed');

    assert.equal((await s.people.person(ann)).roles.kubeAccess({ env: 'dev' }) !== undefined, true);
    await upsertResource(s.server, devRole('prod'));
    assert.equal((await s.people.person(ann)).roles.kubeAccess({ env: 'dev' }), undefined, 'the edited role no longer allows env=dev');

    await removeUser(s.server, 'ann');
    assert.equal(await refusal(s.people.person(ann)), 'user_removed');
    // Added again under the same name: a new uid, so the old certificate stays refused.
    await addUser(s.server, { name: 'ann', roles: ['dev'] }, new Date());
    assert.equal(await refusal(s.people.person(ann)), 'login_revoked');
  } finally {
    s.close();
  }
});

test('SQLite: a lock and a removal written by another process count at the very next call; its calls read the store only after such a write', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'kport-records-')), 'kport.db');
  const { backend: store, reads } = counted(await SqliteBackend.open(path));
  const admin = await SqliteBackend.open(path);
  const s = serverOver(store);
  try {
    const bea = await callerFor(admin, 'bea', ['access']);
    assert.equal(await refusal(s.people.person(bea)), 'allowed');
    const before = reads();
    for (let i = 0; i < 20; i++) await s.people.person(bea);
    assert.equal(reads() - before, 0, 'nothing written elsewhere: no store read');
    await lockUser(admin, { name: 'bea' }, new Date());
    assert.equal(await refusal(s.people.person(bea)), 'user_locked');
    await unlockUser(admin, 'bea', new Date());
    assert.equal(await refusal(s.people.person(bea)), 'allowed');
    await removeUser(admin, 'bea');
    assert.equal(await refusal(s.people.person(bea)), 'user_removed');
  } finally {
    s.close();
    await admin.close();
    await store.close();
  }
});

test('records tell of each change they apply (a lock by another writer, reported by the watch) within a second, with whose it is', async () => {
  const store = new MemoryBackend();
  const s = serverOver(store);
  const changes: string[] = [];
  s.records.onChange((c) => changes.push(c.kind === 'role' ? 'role' : `${c.kind} ${c.names.join(',')}`));
  try {
    const cy = await callerFor(s.server, 'cy', ['access']);
    await s.people.person(cy);
    changes.length = 0;
    await lockUser(store, { name: 'cy' }, new Date());
    const deadline = Date.now() + 1000;
    while (!changes.includes('lock cy') && Date.now() < deadline) await sleep(5);
    assert.deepEqual(changes, ['lock cy']);
    assert.equal(await refusal(s.people.person(cy)), 'user_locked');
  } finally {
    s.close();
  }
});

test('a cache asked for records as new as a revision another feed reported reads the store when its own feed lags behind it', async () => {
  const store = new MemoryBackend();
  // A feed for /lag/ that opens but reports nothing: as a watch running behind the others.
  const lagging = new Proxy(store, {
    get(target, prop) {
      if (prop === 'watch') {
        return (prefix: string, signal: AbortSignal, opened?: () => void) =>
          prefix === '/lag/'
            ? (async function* (): AsyncIterable<WatchEvent> {
                opened?.();
                await new Promise((resolve) => signal.addEventListener('abort', resolve));
              })()
            : target.watch(prefix, signal, opened);
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const hub = new WatchHub(lagging);
  const cache = new WatchCache<string>({ backend: lagging, hub, prefix: '/lag/', decode: (i) => i.value });
  try {
    await cache.current();
    const written = await store.put('/lag/lock', 'locked');
    await cache.current();
    assert.equal(cache.get('lock'), undefined, 'without a revision: the lagging feed has not reported it');
    await cache.current(written.revision);
    assert.equal(cache.get('lock'), 'locked', 'as of its revision: read from the store');
  } finally {
    cache.close();
    hub.close();
  }
});

test('while its watch is broken, a cache reads the store at every look, so nothing missed counts for a moment', async () => {
  const store = new MemoryBackend();
  let broke!: () => void;
  const isBroken = new Promise<void>((resolve) => (broke = resolve));
  // Every feed opens, reports nothing and breaks (the store's watch is down); the hub opens another after a second.
  const broken = new Proxy(store, {
    get(target, prop) {
      if (prop === 'watch') {
        return (_prefix: string, _signal: AbortSignal, opened?: () => void) =>
          // biome-ignore lint/correctness/useYield: a feed that breaks before its first event, as a failing store watch does
          (async function* (): AsyncIterable<WatchEvent> {
            opened?.();
            await sleep(20);
            setImmediate(broke);
            throw new Error('the watch broke');
          })();
      }
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const hub = new WatchHub(broken);
  const cache = new WatchCache<string>({ backend: broken, hub, prefix: '/b/', decode: (i) => i.value });
  try {
    await cache.current();
    await isBroken;
    await store.put('/b/lock', 'locked');
    await cache.current();
    assert.equal(cache.get('lock'), 'locked');
  } finally {
    cache.close();
    hub.close();
  }
});
