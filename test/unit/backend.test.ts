import { mkdtempSync } from 'node:fs';
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
