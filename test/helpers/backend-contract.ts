// The contract every Backend honours (docs/architecture.md §3). Each implementation's test file calls
// backendContract() with a factory; the etcd backend reuses it against a real etcd.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { FencedOutError, LeaseExpiredError, type Backend, type WatchEvent } from '../../src/backend/backend.ts';
import { waitFor } from '../peers/process.ts';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export interface ContractTarget {
  open(): Promise<Backend>;
  /** A store shared by several processes: the cas-worker.ts argument naming it, and how to open it here. */
  shared?: () => Promise<{ arg: string; open(): Promise<Backend> }>;
}

export function backendContract(name: string, target: ContractTarget): void {
  describe(`${name} backend contract`, { concurrency: false }, () => {
    const withBackend = (fn: (b: Backend) => Promise<void>) => async () => {
      const backend = await target.open();
      try {
        await fn(backend);
      } finally {
        await backend.close();
      }
    };

    test(
      'put then get returns the value with a revision',
      withBackend(async (b) => {
        const item = await b.put('/a', 'one');
        assert.equal(item.value, 'one');
        const got = await b.get('/a');
        assert.equal(got?.value, 'one');
        assert.equal(got?.revision, item.revision);
        assert.equal(await b.get('/missing'), undefined);
      }),
    );

    test(
      'revisions strictly increase across keys',
      withBackend(async (b) => {
        const r1 = (await b.put('/r/1', 'x')).revision;
        const r2 = (await b.put('/r/2', 'x')).revision;
        const r3 = (await b.put('/r/1', 'y')).revision;
        assert.ok(r1 < r2 && r2 < r3, `${r1} < ${r2} < ${r3}`);
      }),
    );

    test(
      'create writes only when the key is absent',
      withBackend(async (b) => {
        assert.ok(await b.create('/c', 'first'));
        assert.equal(await b.create('/c', 'second'), undefined);
        assert.equal((await b.get('/c'))?.value, 'first');
      }),
    );

    test(
      'compare-and-swap succeeds on the current revision only',
      withBackend(async (b) => {
        const item = await b.put('/cas', '1');
        const swapped = await b.compareAndSwap('/cas', '2', item.revision);
        assert.equal(swapped?.value, '2');
        assert.equal(await b.compareAndSwap('/cas', '3', item.revision), undefined, 'a stale revision must lose');
        assert.equal((await b.get('/cas'))?.value, '2');
        assert.equal(await b.compareAndSwap('/absent', 'x', 1), undefined);
      }),
    );

    test(
      'a transaction writes all of its keys or none',
      withBackend(async (b) => {
        await b.put('/t/token', 'uses=2', { ttlMs: 60_000 });
        // At the key and revision a read returns, as a join reads its token.
        const token = (await b.get('/t/token'))!;
        assert.equal(token.key, '/t/token');
        assert.ok(await b.transact([{ key: token.key, revision: token.revision, checkOnly: true }]), 'a check-only step passes at the revision read');
        assert.ok(
          await b.transact([
            { key: '/t/token', revision: token.revision, value: 'uses=1' },
            { key: '/t/agent-a', revision: 0, value: 'a', ttlMs: 60_000 },
          ]),
        );
        assert.equal((await b.get('/t/token'))?.value, 'uses=1');
        assert.equal((await b.get('/t/agent-a'))?.value, 'a');
        // The token moved since it was read: nothing is written, not even the agent.
        assert.equal(
          await b.transact([
            { key: '/t/token', revision: token.revision, value: 'uses=0' },
            { key: '/t/agent-b', revision: 0, value: 'b' },
          ]),
          false,
        );
        assert.equal(await b.get('/t/agent-b'), undefined);
        const now = (await b.get('/t/token'))!;
        assert.ok(
          await b.transact([
            { key: '/t/token', revision: now.revision },
            { key: '/t/agent-b', revision: 0, value: 'b' },
          ]),
          'the last use deletes the token',
        );
        assert.equal(await b.get('/t/token'), undefined);
        assert.equal(await b.transact([{ key: '/t/agent-b', revision: 0, value: 'again' }]), false, 'an existing key is not absent');
        assert.equal((await b.get('/t/agent-b'))?.value, 'b');
      }),
    );

    test(
      'delete, and conditional delete on revision',
      withBackend(async (b) => {
        const item = await b.put('/d', 'x');
        await b.put('/d', 'y');
        assert.equal(await b.delete('/d', item.revision), false, 'stale revision');
        assert.equal((await b.get('/d'))?.value, 'y');
        assert.equal(await b.delete('/d'), true);
        assert.equal(await b.get('/d'), undefined);
        assert.equal(await b.delete('/d'), false);
      }),
    );

    test(
      'list by prefix is sorted and exact about the prefix',
      withBackend(async (b) => {
        for (const k of ['/p/b', '/p/a', '/p/c/d', '/q/a', '/pa']) await b.put(k, k);
        assert.deepEqual(
          (await b.list('/p/')).map((i) => i.key),
          ['/p/a', '/p/b', '/p/c/d'],
        );
        assert.deepEqual(await b.list('/nothing/'), []);
      }),
    );

    test(
      'list returns every item of a large prefix, in order (paged where the backend pages)',
      withBackend(async (b) => {
        const keys = Array.from({ length: 2500 }, (_, i) => `/big/${String(i).padStart(5, '0')}`);
        for (let i = 0; i < keys.length; i += 250) await Promise.all(keys.slice(i, i + 250).map((k) => b.put(k, 'x'.repeat(100))));
        await b.put('/bigger', 'outside the prefix');
        const listed = await b.list('/big/');
        assert.equal(listed.length, keys.length);
        assert.deepEqual(
          listed.map((i) => i.key),
          keys,
        );
      }),
    );

    test(
      'an item with a TTL disappears after it',
      withBackend(async (b) => {
        await b.put('/ttl', 'x', { ttlMs: 1000 });
        assert.equal((await b.get('/ttl'))?.value, 'x');
        // Gone soon after its second (etcd grants at least about 2 s), polled rather than slept past.
        await waitFor('the item to expire', async () => (await b.get('/ttl')) === undefined || undefined, { timeoutMs: 3000 });
        assert.deepEqual(await b.list('/ttl'), []);
        assert.ok(await b.create('/ttl', 'again'), 'an expired key can be created again');
      }),
    );

    test(
      'lease-bound items live while the lease is kept alive and go when it lapses or is revoked',
      withBackend(async (b) => {
        const lease = await b.grantLease(1000);
        await b.put('/lease/a', 'x', { lease: lease.id });
        await sleep(600);
        assert.equal(await lease.keepAlive(), true);
        await sleep(600);
        assert.equal((await b.get('/lease/a'))?.value, 'x', 'kept alive');
        await waitFor('the lease to lapse', async () => (await b.get('/lease/a')) === undefined || undefined, { timeoutMs: 3000 });
        assert.equal(await lease.keepAlive(), false);
        await assert.rejects(b.put('/lease/b', 'x', { lease: lease.id }), LeaseExpiredError);
        const second = await b.grantLease(10_000);
        await b.put('/lease/c', 'x', { lease: second.id });
        await second.revoke();
        assert.equal(await b.get('/lease/c'), undefined, 'revoked');
      }),
    );

    test(
      'a lease named by its id is kept alive and revoked as the one granted (what another server does for an agent)',
      withBackend(async (b) => {
        const granted = await b.grantLease(1000);
        await b.put('/byid/a', 'x', { lease: granted.id });
        const named = b.leaseById(granted.id, granted.ttlMs);
        await sleep(600);
        assert.equal(await named.keepAlive(), true);
        await sleep(600);
        assert.equal((await b.get('/byid/a'))?.value, 'x', 'kept alive through its id');
        await named.revoke();
        assert.equal(await b.get('/byid/a'), undefined, 'revoked through its id');
        assert.equal(await named.keepAlive(), false, 'a revoked lease is not alive');
        assert.equal(await granted.keepAlive(), false, 'nor through the handle that granted it');
        await assert.rejects(b.put('/byid/b', 'x', { lease: granted.id }), LeaseExpiredError);
      }),
    );

    test(
      'fenced writes happen only while the fence key holds the claim',
      withBackend(async (b) => {
        const fence = { key: '/leader', value: 'me' };
        await assert.rejects(b.put('/f/a', 'x', { fence }), FencedOutError, 'no claim yet');
        await b.put('/leader', 'me');
        const a = await b.put('/f/a', '1', { fence });
        assert.ok(await b.compareAndSwap('/f/a', '2', a.revision, { fence }));
        assert.equal(await b.compareAndSwap('/f/a', '3', a.revision, { fence }), undefined, 'a stale revision still loses');
        assert.ok(await b.create('/f/b', '1', { fence }));
        assert.equal(await b.create('/f/b', '1', { fence }), undefined);
        await b.put('/leader', 'successor');
        await assert.rejects(b.put('/f/a', '4', { fence }), FencedOutError);
        await assert.rejects(b.create('/f/c', '1', { fence }), FencedOutError);
        await assert.rejects(b.delete('/f/b', undefined, { fence }), FencedOutError);
        const current = await b.get('/f/a');
        await assert.rejects(b.compareAndSwap('/f/a', '5', current!.revision, { fence }), FencedOutError);
        assert.equal((await b.get('/f/a'))?.value, '2');
        assert.ok(await b.get('/f/b'));
        assert.equal(await b.get('/f/c'), undefined);
        assert.equal(await b.delete('/f/b', undefined, { fence: { key: '/leader', value: 'successor' } }), true);
      }),
    );

    test(
      'watch reports puts and deletes under the prefix, in order',
      withBackend(async (b) => {
        const controller = new AbortController();
        const events: WatchEvent[] = [];
        const watching = (async () => {
          for await (const e of b.watch('/w/', controller.signal)) {
            events.push(e);
            if (events.length === 3) controller.abort();
          }
        })();
        await sleep(300);
        await b.put('/w/a', '1');
        await b.put('/other', 'ignored');
        await b.put('/w/b', '2');
        await b.delete('/w/a');
        await Promise.race([watching, sleep(5000).then(() => controller.abort())]);
        await watching;
        assert.deepEqual(
          events.map((e) => (e.type === 'put' ? `put ${e.item.key}=${e.item.value}` : `delete ${e.key}`)),
          ['put /w/a=1', 'put /w/b=2', 'delete /w/a'],
        );
      }),
    );

    test(
      'a snapshot is the state at its revision: its items at or below it, every later write and delete (as the watch reports them) above it',
      withBackend(async (b) => {
        await b.put('/s/a', '1');
        await b.put('/s/b', '2');
        await b.put('/elsewhere', 'x');
        const controller = new AbortController();
        const events: WatchEvent[] = [];
        let opened!: () => void;
        const isOpen = new Promise<void>((resolve) => (opened = resolve));
        const watching = (async () => {
          for await (const e of b.watch('/s/', controller.signal, opened)) {
            events.push(e);
            if (events.length === 2) controller.abort();
          }
        })();
        // Called once the watch is in place: no sleep needed before writing.
        await isOpen;
        const snap = await b.snapshot('/s/');
        assert.deepEqual(
          snap.items.map((i) => i.key),
          ['/s/a', '/s/b'],
        );
        assert.deepEqual(snap.items, await b.list('/s/'));
        const top = Math.max(...snap.items.map((i) => i.revision));
        assert.ok(top <= snap.revision, `items at ${top}, snapshot at ${snap.revision}`);
        // A write elsewhere counts too: the revision is the store's, not the prefix's.
        const elsewhere = await b.put('/elsewhere', 'y');
        assert.ok((await b.snapshot('/s/')).revision >= elsewhere.revision);
        const put = await b.put('/s/a', '3');
        await b.delete('/s/b');
        await Promise.race([watching, sleep(5000).then(() => controller.abort())]);
        await watching;
        assert.equal(events.length, 2, 'both writes reported');
        const [update, removal] = events;
        assert.ok(update?.type === 'put' && update.item.revision === put.revision && put.revision > snap.revision);
        assert.ok(removal?.type === 'delete' && removal.revision > put.revision, 'a delete is reported at its own, newer revision');
        assert.ok((await b.snapshot('/s/')).revision >= (removal as { revision: number }).revision);
      }),
    );

    if (target.shared) {
      test('10 processes x 200 compare-and-swap increments on one key end at exactly 2,000', { timeout: 180_000 }, async () => {
        const store = await target.shared!();
        const worker = join(here, 'cas-worker.ts');
        const results = await Promise.all(
          Array.from({ length: 10 }, () => run(process.execPath, [worker, store.arg, '/counter', '200'], { maxBuffer: 1 << 20 })),
        );
        const backend = await store.open();
        try {
          assert.equal((await backend.get('/counter'))?.value, '2000');
        } finally {
          await backend.close();
        }
        // Every worker finished its 200 increments; lost updates would show as a total below 2,000.
        assert.equal(results.length, 10);
      });
    }
  });
}
