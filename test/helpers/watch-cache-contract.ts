// What every watch-fed cache of the server must hold on every backend (src/server/cache/watch-cache.ts):
// nothing goes back in time when a relist (a list that takes a while) lands after watch events
// that are newer than it. The backend test files call watchCacheContract() with a factory.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import type { Backend, Item } from '../../src/backend/backend.ts';
import { ResourceCache } from '../../src/server/cache/resource-cache.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';
import type { KubeCluster } from '../../src/resources/kube-cluster.ts';

const LIST_MS = 300;
const WRITE_AT_MS = 50;
const key = (name: string) => `/resources/kube_cluster/${name}`;
const cluster = (name: string, env: string) => JSON.stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env } }, spec: {} });

/**
 * The backend whose lists take LIST_MS: each is read from the store at once (its items are the
 * store as of then) and handed over LIST_MS later. `listed` resolves when the next one was read.
 */
function slowLists(inner: Backend): { backend: Backend; listed: () => Promise<void> } {
  let read: (() => void) | undefined;
  const slow = async <T>(list: Promise<T>): Promise<T> => {
    const items = await list;
    read?.();
    await sleep(LIST_MS);
    return items;
  };
  const backend = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'list') return (prefix: string) => slow(target.list(prefix));
      if (prop === 'snapshot') return (prefix: string) => slow(target.snapshot(prefix));
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { backend, listed: () => new Promise<void>((resolve) => (read = resolve)) };
}

export function watchCacheContract(name: string, open: () => Promise<Backend>): void {
  describe(`${name}: a watch-fed cache never goes back in time`, { concurrency: false }, () => {
    test(`a delete ${WRITE_AT_MS} ms into a ${LIST_MS} ms relist stays deleted, and an update made then keeps its newer value`, async () => {
      const store = await open();
      const { backend, listed } = slowLists(store);
      const hub = new WatchHub(backend);
      let cache: ResourceCache<KubeCluster> | undefined;
      try {
        await store.put(key('gone'), cluster('gone', 'prod'));
        await store.put(key('moved'), cluster('moved', 'prod'));
        await store.put(key('kept'), cluster('kept', 'prod'));
        const firstList = listed();
        cache = new ResourceCache<KubeCluster>(backend, hub, 'kube_cluster');
        await firstList;
        await sleep(WRITE_AT_MS);
        await store.delete(key('gone'));
        await store.put(key('moved'), cluster('moved', 'staging'));
        await cache.ready;
        assert.equal(cache.get('gone'), undefined, 'deleted during the relist: not routable by its old labels');
        assert.equal(cache.get('moved')?.metadata.labels?.env, 'staging', 'relabelled during the relist: the newer labels');
        assert.equal(cache.get('kept')?.metadata.labels?.env, 'prod');
        // Still so once the events the feed reports late have come in.
        await sleep(300);
        assert.equal(cache.get('gone'), undefined);
        assert.equal(cache.get('moved')?.metadata.labels?.env, 'staging');
        assert.deepEqual([...cache.values()].map((c) => c.metadata.name).sort(), ['kept', 'moved']);
      } finally {
        cache?.close();
        hub.close();
        await store.close();
      }
    });

    test('a snapshot relists what the watch reported: a key written during it is kept, one deleted before it goes', async () => {
      const store = await open();
      const hub = new WatchHub(store);
      const { WatchCache } = await import('../../src/server/cache/watch-cache.ts');
      const cache = new WatchCache<string>({ backend: store, hub, prefix: '/c/', decode: (item: Item) => item.value });
      try {
        await store.put('/c/a', '1');
        await cache.ready;
        await cache.relist();
        assert.equal(cache.get('a'), '1');
        await store.put('/c/b', '2');
        await store.delete('/c/a');
        await cache.relist();
        assert.equal(cache.get('a'), undefined);
        assert.equal(cache.get('b'), '2');
        // The watch reports those writes after the relist: older than the snapshot, they change nothing.
        await sleep(300);
        assert.equal(cache.get('a'), undefined);
        assert.deepEqual([...cache.values()], ['2']);
      } finally {
        cache.close();
        hub.close();
        await store.close();
      }
    });
  });
}
