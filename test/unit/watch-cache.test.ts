// The server's watch-fed caches (src/server/cache/watch-cache.ts) on the in-process backends; the etcd
// run of the same contract is in test/integration/backend-etcd.test.ts.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { watchCacheContract } from '../helpers/watch-cache-contract.ts';

watchCacheContract('memory', async () => new MemoryBackend());
watchCacheContract('sqlite', async () => SqliteBackend.open(join(mkdtempSync(join(tmpdir(), 'kport-cache-')), 'kport.db'), { pollMs: 20 }));
