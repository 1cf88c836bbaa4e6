import { join } from 'node:path';
import type { StorageConfig } from '../config/schema.ts';
import type { Backend } from './backend.ts';

/** Opens the backend the configuration names; etcd is loaded only when asked for. */
export async function openBackend(storage: StorageConfig, dataDir: string): Promise<Backend> {
  if (storage.type === 'sqlite') {
    const { SqliteBackend } = await import('./sqlite.ts');
    return SqliteBackend.open(storage.path ?? join(dataDir, 'kport.db'));
  }
  const { EtcdBackend } = await import('./etcd.ts');
  return EtcdBackend.connect(storage);
}
