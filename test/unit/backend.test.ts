import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
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
    // 300 writes of 64 KiB (19 MiB), the last at revision 300, where the history is checked.
    for (let i = 0; i < 300; i++) await backend.put('/resources/kube_server/flood', value);
    const db = new DatabaseSync(path);
    const { kept, events } = db.prepare('SELECT SUM(octet_length(value)) AS kept, COUNT(*) AS events FROM events').get() as { kept: number; events: number };
    db.close();
    // Trimmed as revision 300 was taken, before its own event was added.
    assert.ok(kept <= budget + value.length, `${kept} bytes in ${events} events kept`);
    // The newest events are the ones kept, and the store still works for a watcher.
    assert.equal((await backend.get('/resources/kube_server/flood'))?.revision, 300);
    await backend.close();
  });
});
