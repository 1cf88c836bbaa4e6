// The pure parts of the server's connection limits (issue 18); the limits themselves are tried
// against a real server in test/integration/network-limits.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyBudget, Counter, RateLimiter, sourceKey } from '../../src/server/call/limits.ts';

test('sourceKey: an IPv4 address (also as IPv4-mapped IPv6) is itself; an IPv6 address counts as its /64', () => {
  assert.equal(sourceKey('203.0.113.7'), '203.0.113.7');
  assert.equal(sourceKey('::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey(undefined), '?');
});

test('RateLimiter: a burst, then one per average interval, per key; says when to come back', () => {
  let now = 0;
  const limiter = new RateLimiter({ periodMs: 60_000, average: 60, burst: 3 }, () => now);
  assert.deepEqual(
    [1, 2, 3].map(() => limiter.take('a').ok),
    [true, true, true],
  );
  const refused = limiter.take('a');
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.retryAfterMs, 1000);
  assert.equal(limiter.take('b').ok, true, 'another source has its own bucket');
  now += 1000;
  assert.equal(limiter.take('a').ok, true);
  assert.equal(limiter.take('a').ok, false);
  now += 3_600_000;
  assert.deepEqual(
    [1, 2, 3, 4].map(() => limiter.take('a').ok),
    [true, true, true, false],
    'refills only up to the burst',
  );
});

test('BodyBudget: refuses what would pass the limit, takes back what is released', () => {
  const budget = new BodyBudget(100);
  assert.equal(budget.reserve(60), true);
  assert.equal(budget.reserve(50), false);
  assert.equal(budget.used, 60);
  budget.release(60);
  assert.equal(budget.reserve(100), true);
});

test('Counter: a cap per key and in total; released slots are reused', () => {
  const counter = new Counter(2, 3);
  assert.deepEqual(
    ['a', 'a', 'a'].map((k) => counter.acquire(k)),
    ['ok', 'ok', 'per_source'],
  );
  assert.equal(counter.acquire('b'), 'ok');
  assert.equal(counter.acquire('c'), 'total');
  counter.release('a');
  assert.equal(counter.acquire('c'), 'ok');
  counter.release('zzz');
  assert.equal(counter.acquire('d'), 'total', 'releasing what was never acquired frees nothing');
});
