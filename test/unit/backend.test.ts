import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { DatabaseSync, StatementSync } from 'node:sqlite';
import { describe, test, type TestContext } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { backendContract } from '../helpers/backend-contract.ts';

backendContract('memory', { open: async () => new MemoryBackend() });

backendContract('sqlite', {
  open: async () => SqliteBackend.open(join(mkdtempSync(join(tmpdir(), 'kport-sqlite-')), 'kport.db'), { pollMs: 50 }),
  shared: async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kport-sqlite-')), 'kport.db');
    return { arg: `sqlite:${path}`, open: () => SqliteBackend.open(path) };
  },
});

describe('sqlite watch history', () => {
  test('is bounded in bytes as well as revisions: a value rewritten in a loop keeps at most the byte budget of copies', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kport-sqlite-')), 'kport.db');
    const budget = 1 << 20;
    const backend = await SqliteBackend.open(path, { eventHistoryBytes: budget });
    const value = 'x'.repeat(64 * 1024);
    // 300 writes of 64 KiB (19 MiB), each over a 64th of the budget, so the history is checked before each is added.
    for (let i = 0; i < 300; i++) await backend.put('/resources/kube_server/flood', value);
    const db = new DatabaseSync(path);
    const { kept, events } = db.prepare('SELECT SUM(octet_length(value)) AS kept, COUNT(*) AS events FROM events').get() as { kept: number; events: number };
    db.close();
    // Trimmed as revision 300 was written, before its own event was added.
    assert.ok(kept <= budget + value.length, `${kept} bytes in ${events} events kept`);
    // The newest events are the ones kept, and the store still works for a watcher.
    assert.equal((await backend.get('/resources/kube_server/flood'))?.revision, 300);
    await backend.close();
  });

  // Spies on the statements of this one module: which revisions a watcher's poll asks for, and how
  // often the history's byte budget is checked (a scan of the whole history each time).
  function spyStatements(t: TestContext, method: 'all' | 'run', sql: string): unknown[][] {
    const calls: unknown[][] = [];
    const original = StatementSync.prototype[method];
    t.mock.method(StatementSync.prototype, method, function (this: StatementSync, ...args: never[]) {
      if (this.sourceSQL.includes(sql)) calls.push(args);
      return (original as (...a: never[]) => unknown).apply(this, args);
    });
    return calls;
  }

  test('a watcher reads each revision once: the writes of other prefixes are not scanned again at every poll, and its own events still come', async (t) => {
    const polls = spyStatements(t, 'all', 'FROM events WHERE revision >');
    const backend = await SqliteBackend.open(join(mkdtempSync(join(tmpdir(), 'kport-sqlite-')), 'kport.db'), { pollMs: 10 });
    const stop = new AbortController();
    const seen: string[] = [];
    const watching = (async () => {
      for await (const e of backend.watch('/resources/kube_server/', stop.signal)) seen.push(e.type === 'put' ? e.item.key : e.key);
    })();
    t.after(async () => {
      stop.abort();
      await watching;
      await backend.close();
    });
    // 500 audit events, as 500 proxied requests write them, none under the watched prefix.
    for (let i = 0; i < 5; i++)
      assert.ok(await backend.transact(Array.from({ length: 100 }, (_, j) => ({ key: `/resources/audit_event/e${i * 100 + j}`, revision: 0, value: '{}' }))));
    const from = () => Number(polls.at(-1)?.[0] ?? 0);
    const deadline = Date.now() + 10_000;
    while (from() < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(from() >= 500, `the watcher's polls still start at revision ${from()}: each rescans the ${500 - from()} events of other prefixes`);
    await backend.put('/resources/kube_server/a', '{}');
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, ['/resources/kube_server/a']);
  });

  test('the byte budget is checked per bytes written (a 64th of it), not every 100 revisions: 1,000 small audit events make no check', async (t) => {
    const checks = spyStatements(t, 'run', 'SUM(octet_length(value))');
    const backend = await SqliteBackend.open(join(mkdtempSync(join(tmpdir(), 'kport-sqlite-')), 'kport.db'));
    for (let i = 0; i < 10; i++)
      assert.ok(
        await backend.transact(Array.from({ length: 100 }, (_, j) => ({ key: `/resources/audit_event/e${i * 100 + j}`, revision: 0, value: 'x'.repeat(600) }))),
      );
    assert.equal(checks.length, 0, `${checks.length} scans of the whole history for 600 KB written`);
    // 1 MiB more (a 64th of the 64 MiB budget): one check.
    for (let i = 0; i < 17; i++) await backend.put('/resources/kube_server/big', 'x'.repeat(64 * 1024));
    assert.equal(checks.length, 1);
    await backend.close();
  });
});
