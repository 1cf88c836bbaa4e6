// The audit query's filter and the time prefixes that keep `--since 1h` from reading a month of events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { ServerAudit } from '../../src/server/events/audit.ts';
import { parseAuditQuery, queryAudit, timePrefixes } from '../../src/server/events/audit-query.ts';

const HOUR = 3_600_000;

test('timePrefixes: every hour the span touches for two days or less, days beyond, everything past a year', () => {
  const now = Date.parse('2026-03-02T01:30:00Z');
  assert.deepEqual(timePrefixes(now - HOUR, now), ['2026-03-02T00', '2026-03-02T01']);
  assert.deepEqual(timePrefixes(now - 2 * HOUR, now), ['2026-03-01T23', '2026-03-02T00', '2026-03-02T01']);
  assert.equal(timePrefixes(now - 48 * HOUR, now).length, 49);
  assert.deepEqual(timePrefixes(now - 3 * 24 * HOUR, now), ['2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02']);
  assert.deepEqual(timePrefixes(now - 400 * 24 * HOUR, now), ['']);
});

test('queryAudit keeps what since, user and cluster select, oldest first, and reads only the hours since covers', async () => {
  const backend = new MemoryBackend();
  let at = Date.parse('2026-03-02T01:30:00Z');
  const now = at;
  const audit = new ServerAudit(backend, { log: () => {}, now: () => new Date(at) });
  const add = async (agoMs: number, user: string, cluster?: string) => {
    at = now - agoMs;
    await audit.record({ type: 'kube.request', outcome: 'allowed', user, ...(cluster && { cluster }), action: `${user}@${cluster ?? '-'}-${agoMs}` });
  };
  await add(10 * 60_000, 'alice', 'prod');
  await add(20 * 60_000, 'alice', 'dev');
  await add(30 * 60_000, 'bob', 'prod');
  await add(5 * HOUR, 'alice', 'prod');
  await add(30 * 24 * HOUR, 'alice', 'prod');
  const listed: string[] = [];
  const list = backend.list.bind(backend);
  backend.list = (prefix) => (listed.push(prefix), list(prefix));
  const actions = async (body: unknown) => (await queryAudit(backend, parseAuditQuery(body), now)).events.map((e) => e.spec.action);
  assert.deepEqual(await actions({ since: new Date(now - HOUR).toISOString(), user: 'alice', cluster: 'prod' }), [`alice@prod-${10 * 60_000}`]);
  assert.deepEqual(listed, ['/resources/audit_event/2026-03-02T00', '/resources/audit_event/2026-03-02T01']);
  assert.deepEqual(await actions({ cluster: 'prod' }), [
    `alice@prod-${30 * 24 * HOUR}`,
    `alice@prod-${5 * HOUR}`,
    `bob@prod-${30 * 60_000}`,
    `alice@prod-${10 * 60_000}`,
  ]);
  assert.deepEqual(await actions({ user: 'bob' }), [`bob@prod-${30 * 60_000}`]);
  await add(40 * 60_000, 'Bob', 'dev');
  await add(50 * 60_000, 'BOB', 'dev');
  assert.deepEqual(
    await actions({ user: 'bob' }),
    [`BOB@dev-${50 * 60_000}`, `Bob@dev-${40 * 60_000}`, `bob@prod-${30 * 60_000}`],
    'user names match whatever their case',
  );
  assert.deepEqual(await actions({ user: 'bOb', cluster: 'prod' }), [`bob@prod-${30 * 60_000}`]);
  assert.throws(() => parseAuditQuery({ since: 'yesterday' }), /since is an RFC 3339 time/);
  assert.throws(() => parseAuditQuery({ user: 7 }), /user is a name of at most 256 characters/);
});
