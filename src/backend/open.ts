import { basename, dirname, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { checkTrusted } from '../core/file-trust.ts';
import { trustedPath } from '../core/trusted-path.ts';
import type { Backend } from './backend.ts';
import type { StorageConfig } from './storage-config.ts';

/** Opens the backend the configuration names; etcd is loaded only when asked for. */
export async function openBackend(storage: StorageConfig, dataDir: string): Promise<Backend> {
  if (storage.type === 'sqlite') {
    const path = checkStoreFile(storage.path ?? join(dataDir, 'kport.db'));
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
 * what opens; a directory that cannot be made is left for SQLite's own sentence. Returns the path
 * to open: in the real path of its directory, which no link of another user leads to (trusted-path.ts).
 */
function checkStoreFile(given: string): string {
  if (given === ':memory:') return given;
  const rule = { what: "the store's directory" };
  let dir: string;
  try {
    dir = trustedPath(dirname(given), rule, { create: true });
  } catch (err) {
    if (err instanceof UserError) throw err;
    dir = trustedPath(dirname(given), rule);
  }
  const path = join(dir, basename(given));
  checkTrusted(dir, { what: "the store's directory", harm: 'replace the store or its journal in it' });
  checkTrusted(path, { what: 'the store', harm: 'change the roles, users and tokens in it' });
  return path;
}
