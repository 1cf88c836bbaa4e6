// The diagnostics' parts on their own (src/server/diag/): readiness's verdicts and its one store read
// shared by concurrent checks, the store latency wrapper, and the metrics registry of each server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { MeteredBackend } from '../../src/server/diag/metered-backend.ts';
import { ServerMetrics } from '../../src/server/diag/metrics.ts';
import { Readiness } from '../../src/server/diag/readiness.ts';
import { metricValue } from '../helpers/diag.ts';

test('readiness: draining, a store that hangs or fails, caches not loaded each say why in one line; ready only when none holds', async () => {
  const state = { draining: false, loaded: true, read: (): Promise<unknown> => Promise.resolve(undefined) };
  const readiness = () => new Readiness({ read: () => state.read(), loaded: () => state.loaded, draining: () => state.draining, probeMs: 50 });
  assert.deepEqual(await readiness().check(), { ready: true });
  state.draining = true;
  state.read = () => assert.fail('a draining server is not ready whatever the store says: no read');
  assert.deepEqual(await readiness().check(), { ready: false, why: 'draining' });
  state.draining = false;
  state.read = () => new Promise(() => {});
  assert.deepEqual(await readiness().check(), { ready: false, why: 'the store did not answer within 0.05 s' });
  state.read = () => Promise.reject(new Error('14 UNAVAILABLE: No connection established\nmore detail'));
  assert.deepEqual(await readiness().check(), { ready: false, why: 'the store failed a read: 14 UNAVAILABLE: No connection established' });
  state.read = () => Promise.resolve(undefined);
  state.loaded = false;
  assert.deepEqual(await readiness().check(), { ready: false, why: 'the caches are still loading from the store' });
});

test('readiness: concurrent checks share one store read, and a check within a second of it reuses its answer', async () => {
  let reads = 0;
  const readiness = new Readiness({ read: async () => void reads++, loaded: () => true, draining: () => false });
  const verdicts = await Promise.all(Array.from({ length: 50 }, () => readiness.check()));
  assert.ok(verdicts.every((v) => v.ready));
  await readiness.check();
  assert.equal(reads, 1);
});

test('the metered store times every call by operation and outcome; two servers in one process keep their own metrics', async () => {
  const metrics = new ServerMetrics();
  const other = new ServerMetrics();
  const store = new MeteredBackend(new MemoryBackend(), (op, s, ok) => metrics.storeCall(op, s, ok));
  await store.put('/a', '1');
  await store.get('/a');
  await store.list('/');
  assert.equal(await store.create('/a', '2'), undefined);
  // A call that fails is timed too, as an error.
  const failing = new MeteredBackend({ get: () => Promise.reject(new Error('down')) } as never, (op, s, ok) => metrics.storeCall(op, s, ok));
  await assert.rejects(failing.get('/a'), /down/);
  const text = (await metrics.scrape()).text;
  for (const op of ['put', 'get', 'list', 'create']) assert.equal(metricValue(text, `kport_store_call_seconds_count{op="${op}",outcome="ok"}`), 1, op);
  assert.equal(metricValue(text, 'kport_store_call_seconds_count{op="get",outcome="error"}'), 1);
  metrics.request('ping', 200);
  metrics.kubeRequest(403);
  metrics.kubeRequest(undefined);
  const after = (await metrics.scrape()).text;
  assert.equal(metricValue(after, 'kport_http_requests_total{route="ping",code="200"}'), 1);
  assert.equal(metricValue(after, 'kport_kube_requests_total{outcome="4xx"}'), 1);
  assert.equal(metricValue(after, 'kport_kube_requests_total{outcome="aborted"}'), 1);
  const untouched = (await other.scrape()).text;
  assert.equal(metricValue(untouched, 'kport_http_requests_total{route="ping",code="200"}'), undefined);
  assert.equal(metricValue(untouched, 'kport_store_call_seconds_count{op="put",outcome="ok"}'), undefined);
  assert.match(untouched, /^process_cpu_user_seconds_total /m);
});
