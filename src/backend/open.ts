import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkTrusted } from '../core/file-trust.ts';
import type { StorageConfig } from '../config/schema.ts';
import type { Backend } from './backend.ts';

/** Opens the backend the configuration names; etcd is loaded only when asked for. */
export async function openBackend(storage: StorageConfig, dataDir: string): Promise<Backend> {
  if (storage.type === 'sqlite') {
    const path = storage.path ?? join(dataDir, 'kport.db');
    checkStoreFile(path);
    const { SqliteBackend } = await import('./sqlite.ts');
    return SqliteBackend.open(path);
  }
  const { EtcdBackend } = await import('./etcd.ts');
  return EtcdBackend.connect(storage);
}

/**
 * The store decides who may do what (roles, users, tokens) and holds the sealed CAs: a store file
 * or directory of another user is refused, as is one others can write (SQLite also makes its -wal
 * and -shm files in that directory). Checked after the directory exists, so what is checked is
 * what opens; a directory that cannot be made is left for SQLite's own sentence.
 */
function checkStoreFile(path: string): void {
  if (path === ':memory:') return;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch {}
  checkTrusted(dirname(path), { what: 'the store\'s directory', harm: 'replace the store or its journal in it' });
  checkTrusted(path, { what: 'the store', harm: 'change the roles, users and tokens in it' });
}
